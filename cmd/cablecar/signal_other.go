//go:build !unix

package main

import "os"

// debugSignal is nil where there is no SIGUSR1 (Windows): the level is
// changed with PUT /loglevel only.
func debugSignal() os.Signal { return nil }
