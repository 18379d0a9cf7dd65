package bench

import (
	"fmt"
	"os"
	"runtime/debug"
	"runtime/metrics"
	"strings"

	"github.com/parleyhq/parley/internal/bytesize"
)

// The load process's own garbage collector. Thousands of Engines in one
// process make a large heap, and the collector's pauses and mark assists
// delay the receipt of deliveries: they show up in the latencies as if
// the server had been slow. The summary counts the collections of the
// measurement window, warns when there were any, and --gc-budget keeps
// them out (collect only when the heap reaches the budget).

// MinGCBudget is the smallest --gc-budget: a smaller one would have the
// load process collect all the time, and is more likely a missing suffix
// ("8" for "8GiB") than a wish.
const MinGCBudget = 64 << 20

// byteSize is the flag.Value of --gc-budget; 0 is "not given".
type byteSize int64

func (b *byteSize) String() string {
	if b == nil || *b == 0 {
		return ""
	}
	return bytesize.Format(int64(*b))
}

func (b *byteSize) Set(s string) error {
	n, err := bytesize.Parse(s)
	if err == nil {
		err = checkGCBudget(n)
	}
	if err != nil {
		return err
	}
	*b = byteSize(n)
	return nil
}

// checkGCBudget reports a budget below MinGCBudget.
func checkGCBudget(n int64) error {
	if n < MinGCBudget {
		return fmt.Errorf("%s is below the minimum, %s (a number without a suffix is bytes)", bytesize.Format(n), bytesize.Format(MinGCBudget))
	}
	return nil
}

// gcEnv is how the environment configured the collector, as the runtime
// read it at start: "GOGC=off GOMEMLIMIT=8GiB", or "" when neither
// variable is set (Go's defaults).
func gcEnv() string {
	var parts []string
	for _, name := range []string{"GOGC", "GOMEMLIMIT"} {
		if v := os.Getenv(name); v != "" {
			parts = append(parts, name+"="+v)
		}
	}
	return strings.Join(parts, " ")
}

// setGCBudget turns the collector off until the heap reaches budget
// bytes, whatever GOGC and GOMEMLIMIT said, and returns the function
// that puts the previous settings back. budget 0 changes nothing.
func setGCBudget(budget int64) (restore func()) {
	if budget <= 0 {
		return func() {}
	}
	limit := debug.SetMemoryLimit(budget)
	percent := debug.SetGCPercent(-1)
	return func() {
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	}
}

// The runtime/metrics the summary reads. Both move when a cycle ends:
// the collector's CPU is a snapshot the runtime takes at the end of each
// cycle, so a window counts the cycles that ended in it, and their CPU.
const (
	metricGCCycles = "/gc/cycles/total:gc-cycles"
	metricGCCPU    = "/cpu/classes/gc/total:cpu-seconds" // pauses, mark workers and assists; the runtime's estimate
)

// gcSample is the collector's totals at one moment.
type gcSample struct {
	cycles     uint64
	cpuSeconds float64
}

// readGC reads the collector's totals.
func readGC() gcSample {
	s := []metrics.Sample{{Name: metricGCCycles}, {Name: metricGCCPU}}
	metrics.Read(s)
	var g gcSample
	if s[0].Value.Kind() == metrics.KindUint64 {
		g.cycles = s[0].Value.Uint64()
	}
	if s[1].Value.Kind() == metrics.KindFloat64 {
		g.cpuSeconds = s[1].Value.Float64()
	}
	return g
}

// since is what the collector did between s0 and s.
func (s gcSample) since(s0 gcSample) gcSample {
	return gcSample{cycles: s.cycles - s0.cycles, cpuSeconds: s.cpuSeconds - s0.cpuSeconds}
}

// gcWarning says, when the load process collected while measuring, that
// its pauses are in the latencies and how to keep them out; "" when it
// did not.
func gcWarning(l LoadSummary, budget int64) string {
	if l.GCCycles == 0 {
		return ""
	}
	did := fmt.Sprintf("the load process ran %s while measuring (%v of gc cpu): its own pauses delayed the receipt of deliveries, and they are in the latencies as if the server had been slow", collections(l.GCCycles), seconds(l.GCCPUSeconds))
	if budget > 0 {
		return did + fmt.Sprintf("; its heap reached --gc-budget %s: a larger budget, within the machine's free memory, keeps them out", bytesize.Format(budget))
	}
	return did + "; to keep them out, run it with --gc-budget SIZE, e.g. --gc-budget 8GiB within the machine's free memory: it then collects only when its heap reaches the budget, and its RSS grows up to it"
}

// collections is "1 collection" or "n collections".
func collections(n int64) string {
	if n == 1 {
		return "1 collection"
	}
	return fmt.Sprintf("%d collections", n)
}
