//go:build !linux

package bench

import "time"

func runqueueWait() (time.Duration, bool) { return 0, false }
