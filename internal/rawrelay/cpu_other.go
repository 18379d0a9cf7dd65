//go:build !unix

package rawrelay

import "time"

// processCPU is unknown here: the CPU figures read 0.
func processCPU() time.Duration { return 0 }
