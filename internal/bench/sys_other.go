//go:build !unix

package bench

import "time"

func raiseFileLimit(need uint64) FileLimit {
	return FileLimit{Need: need, Note: "descriptor limits are not checked on this system"}
}

func processCPU() time.Duration { return 0 }

func maxRSS() int64 { return 0 }
