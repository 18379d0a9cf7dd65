package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// minorFaults is the process's page faults so far that read no disk.
func minorFaults(t *testing.T) int64 {
	var ru syscall.Rusage
	require.NoError(t, syscall.Getrusage(syscall.RUSAGE_SELF, &ru))
	return ru.Minflt
}

// TestPretouch: after pretouch and setGCBudget, the heap's growth reuses
// the pages pretouch mapped instead of faulting a page at a time; the
// same growth without it faults once a page (the control). Each runs in
// a process of its own: in this one, earlier tests have left pages the
// allocator would take first. Not under the race detector, whose shadow
// memory faults on its own.
func TestPretouch(t *testing.T) {
	const grow = 64 << 20 // in 8 KiB objects, each written, kept alive
	if mode := os.Getenv("PARLEY_TEST_PRETOUCH"); mode != "" {
		if mode == "pretouch" {
			pretouch(context.Background(), 4*grow)
		}
		defer setGCBudget(1 << 30)()
		keep := make([][]byte, 0, grow/8192)
		f0 := minorFaults(t)
		for range cap(keep) {
			b := make([]byte, 8192)
			b[0], b[4096] = 1, 1 // fresh memory is not zeroed, so only a write maps it
			keep = append(keep, b)
		}
		fmt.Printf("faults %d\n", minorFaults(t)-f0)
		runtime.KeepAlive(keep)
		return
	}
	if raceEnabled {
		t.Skip("the race detector's shadow memory page-faults as the heap grows")
	}
	faults := func(mode string) int64 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestPretouch$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "PARLEY_TEST_PRETOUCH="+mode)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		m := regexp.MustCompile(`(?m)^faults (\d+)$`).FindSubmatch(out)
		require.NotNil(t, m, "%s", out)
		n, err := strconv.ParseInt(string(m[1]), 10, 64)
		require.NoError(t, err)
		return n
	}
	pages := int64(grow / os.Getpagesize())
	cold, warm := faults("control"), faults("pretouch")
	t.Logf("%d pages written: %d faults cold, %d after a pre-touch", pages, cold, warm)
	assert.Greater(t, cold, pages/2, "control: a fresh heap faults about once a page")
	assert.Less(t, warm, pages/8, "after the pre-touch, few faults")
}
