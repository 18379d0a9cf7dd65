//go:build unix

package bench

import (
	"fmt"
	"syscall"
	"time"
)

// raiseFileLimit makes sure the process may open need descriptors: it
// raises the RLIMIT_NOFILE soft limit to the hard limit if the soft one is
// lower than need. The note says what it found or did, and why it could
// not; ok is false when even the hard limit is below need.
func raiseFileLimit(need uint64) (lim FileLimit) {
	lim.Need = need
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		lim.Note = fmt.Sprintf("cannot read RLIMIT_NOFILE: %v", err)
		return lim
	}
	lim.Soft, lim.Hard = rl.Cur, rl.Max
	if rl.Cur < need && rl.Cur < rl.Max {
		raised := rl
		raised.Cur = rl.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			lim.Note = fmt.Sprintf("cannot raise the RLIMIT_NOFILE soft limit %d to the hard limit %d: %v", rl.Cur, rl.Max, err)
		} else {
			lim.Raised = true
			lim.Soft = rl.Max
		}
	}
	if lim.Soft < need && lim.Note == "" {
		lim.Note = fmt.Sprintf("RLIMIT_NOFILE %d (hard %d) is below the %d descriptors this run may need: raise the hard limit (ulimit -Hn) or expect failed joins", lim.Soft, lim.Hard, need)
	}
	return lim
}

// processCPU is the CPU time, user and system, this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// maxRSS is this process's peak resident memory in bytes.
func maxRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return int64(ru.Maxrss) * maxRSSUnit
}
