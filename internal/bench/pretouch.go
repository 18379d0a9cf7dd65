package bench

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"time"
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

// pretouchBytes is how much of budget pretouch takes.
func pretouchBytes(budget int64) int64 {
	return int64(float64(budget) * pretouchShare)
}

// pretouch maps n bytes of heap into the process and frees them for the
// allocator to reuse, and returns how long that took. Call setGCBudget
// right after it: until then the scavenger may return the pages.
func pretouch(n int64) time.Duration {
	t0 := time.Now()
	percent, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	touch(make([]byte, n))
	runtime.GC() // frees it, nothing refers to it any more, at a small heap goal
	debug.SetGCPercent(percent)
	debug.SetMemoryLimit(limit)
	return time.Since(t0)
}

// touch maps b's pages: populated, then written a byte a page (under
// shadow page tables, populating alone still leaves a cheaper fault a
// page to the first write).
func touch(b []byte) {
	populate(b)
	page := os.Getpagesize()
	for i := 0; i < len(b); i += page {
		b[i] = 1
	}
}
