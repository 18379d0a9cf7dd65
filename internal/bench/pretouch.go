package bench

import (
	"context"
	"fmt"
	"io/fs"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/parleyhq/parley/internal/memlimit"
)

// Pre-touching the budget. With --gc-budget the load process's heap only
// grows, into memory the kernel has never mapped, and the first write to
// each 4 KiB page is a page fault. Where that is cheap (a fraction of a
// microsecond on bare metal) nobody notices; on a VM with shadow page
// tables it is not: 11–14 µs a page on the two-core Firecracker VM of
// docs/performance.md, where the thousand Engines of the 1,000-member row
// faulted 8,000 times a second, a tenth of the load process's core, and
// the joins of a room of 2,000 twice as long as without. So before the
// joins the tool takes most of the budget from the kernel at once, as the
// JVM's -XX:+AlwaysPreTouch does: one large allocation, populated
// (MADV_POPULATE_WRITE on Linux) and written a byte a page, then freed.
// Its pages stay with the process and the run's allocations reuse them
// instead of faulting, as long as the runtime's scavenger does not hand
// them back to the kernel. The scavenger keeps what the heap held at the
// last collection, scaled by how much the heap goal grew since: so the
// collection that frees the large allocation runs at GOGC=100, with a
// heap goal of a few MiB, and setGCBudget's goal of the whole budget
// after it lets the scavenger keep about the budget.

// pretouchShare is the part of the budget pre-touched: what is left is
// for the runtime's own memory (stacks, metadata), which the memory limit
// counts too, so that the large allocation never starts a collection.
const pretouchShare = 0.9

// pretouchAvailableShare bounds the pre-touch by what the machine has: a
// budget set beyond its free memory would otherwise have the process
// killed at start, where without the pre-touch it would have grown into
// only what the run needs.
const pretouchAvailableShare = 0.75

// pretouchBytes is how much of budget pretouch takes: pretouchShare of
// it, but at most pretouchAvailableShare of the memory available (the
// machine's MemAvailable, and the process's cgroup limit), read in root
// (the file system at /). note says so when that capped it.
func pretouchBytes(budget int64, root fs.FS) (n int64, note string) {
	n = int64(float64(budget) * pretouchShare)
	avail, ok := memlimit.Available(root)
	what := "the memory available"
	if cg, cgOK := memlimit.Cgroup(root); cgOK && (!ok || cg < avail) {
		avail, ok, what = cg, true, "the cgroup's memory limit"
	}
	if !ok {
		return n, ""
	}
	if most := int64(float64(avail) * pretouchAvailableShare); n > most {
		return most, fmt.Sprintf("capped at %.0f%% of %s (%s): the rest of the budget is grown into as the run needs it", 100*pretouchAvailableShare, what, bytesIEC(float64(avail)))
	}
	return n, ""
}

// pretouchChunk is how much pretouch maps between two looks at its
// context: a SIGINT stops it within a fraction of a second.
const pretouchChunk = 64 << 20

// pretouch maps n bytes of heap into the process and frees them for the
// allocator to reuse, and returns how many it mapped (fewer when ctx
// ended first) and how long that took. Call setGCBudget right after it:
// until then the scavenger may return the pages.
func pretouch(ctx context.Context, n int64) (touched int64, took time.Duration) {
	t0 := time.Now()
	percent, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	touched = touch(ctx, make([]byte, n))
	runtime.GC() // frees it, nothing refers to it any more, at a small heap goal
	debug.SetGCPercent(percent)
	debug.SetMemoryLimit(limit)
	return touched, time.Since(t0)
}

// touch maps b's pages, a chunk at a time until ctx ends: populated, then
// written a byte a page (under shadow page tables, populating alone still
// leaves a cheaper fault a page to the first write). It returns how many
// bytes it mapped.
func touch(ctx context.Context, b []byte) int64 {
	page := os.Getpagesize()
	var done int
	for done < len(b) && ctx.Err() == nil {
		chunk := b[done:min(done+pretouchChunk, len(b))]
		populate(chunk)
		for i := 0; i < len(chunk); i += page {
			chunk[i] = 1
		}
		done += len(chunk)
	}
	return int64(done)
}
