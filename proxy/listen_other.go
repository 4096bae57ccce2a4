//go:build !linux

package proxy

import "time"

// setUserTimeout is Linux-only; elsewhere keepalives alone reap dead peers.
func setUserTimeout(uintptr, time.Duration) error { return nil }
