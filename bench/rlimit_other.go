//go:build !(linux || darwin || freebsd || netbsd || openbsd)

package bench

// raiseOpenFileLimit is not supported here; 0 means unknown.
func raiseOpenFileLimit() (uint64, error) { return 0, nil }
