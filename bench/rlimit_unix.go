//go:build linux || darwin || freebsd || netbsd || openbsd

package bench

import "syscall"

// raiseOpenFileLimit lifts this process's soft RLIMIT_NOFILE to the hard
// limit and returns the soft limit in force afterwards.
func raiseOpenFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur < lim.Max {
		want := lim
		want.Cur = want.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err != nil {
			return uint64(lim.Cur), err
		}
		lim = want
	}
	return uint64(lim.Cur), nil
}
