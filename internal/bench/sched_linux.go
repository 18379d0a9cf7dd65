package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// runqueueWait is how long this process's threads have waited for a CPU,
// runnable but not running (the second field of each thread's
// /proc/self/task/*/schedstat, summed; threads that have exited are not
// counted). ok is false when the kernel does not tell.
func runqueueWait() (time.Duration, bool) {
	tasks, err := filepath.Glob("/proc/self/task/*/schedstat")
	if err != nil || len(tasks) == 0 {
		return 0, false
	}
	var sum int64
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // the thread exited
		}
		f := bytes.Fields(b)
		if len(f) < 2 {
			return 0, false
		}
		ns, err := strconv.ParseInt(string(f[1]), 10, 64)
		if err != nil {
			return 0, false
		}
		sum += ns
	}
	return time.Duration(sum), true
}
