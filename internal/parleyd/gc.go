package parleyd

import (
	"fmt"
	"io/fs"
	"runtime/debug"
	"strconv"

	"go.uber.org/zap"

	"github.com/parleyhq/parley/internal/bytesize"
	"github.com/parleyhq/parley/internal/memlimit"
)

// DefaultGCPercent is parleyd's GOGC unless gc_percent or the environment
// says otherwise: 450, not Go's 100.
//
// A server's heap is mostly per-connection state that lives as long as its
// connection (pion's PeerConnections, the sessions), and every collection
// marks all of it: at 1,000 members a mark phase takes about 90 ms on one
// core, and the deliveries caught in it wait for the collector's assists.
// At Go's default the server collects every 2–3 s under load (1,000
// members in rooms of 5, 10 broadcasts/s per room), and those phases are
// the latency's p99 (43–59 ms). The p99 is at a knee: at 400 collections
// came every 13 s, and a 30 s window held two or three of them, p99 1–5
// ms with two and 8–13 ms with three; at 450 they come every 15 s, p99
// 1–5 ms. The price is memory: the heap grows to 5.5 times what is live
// instead of twice, about 730 KiB of RSS per member at 1,000 members
// instead of 310 KiB. Where memory is short, set gc_percent lower, or a
// memory limit (memory_limit, or the automatic one under a cgroup's
// limit): the collector then keeps the heap under it.
const DefaultGCPercent = 450

// cgroupShare is the share of its cgroup's memory limit parleyd gives its
// collector as a soft limit when nothing else sets one: with GOGC at 450,
// a heap allowed 5.5 times what is live would meet the container's
// limit, and the kernel's OOM killer, long before the collector thought it
// time to run. The rest is for what the limit counts and Go's does not
// (the kernel's socket buffers, the binary).
const cgroupShare = 0.8

// gcSettings is what setGC read: the environment and the cgroup.
type gcSettings struct {
	getenv func(string) string
	root   fs.FS // the file system holding /proc and /sys
}

// setGC sets the collector's GOGC from cfg (gc_percent, else
// DefaultGCPercent) and its soft memory limit (memory_limit, else
// cgroupShare of the cgroup's memory limit, else none), unless GOGC or
// GOMEMLIMIT is in the environment: Go's runtime has taken that one
// already, as every Go program does, and it wins. cfg was checked. It logs
// what the collector runs with and where that came from, and returns the
// function that puts back what it changed (serve runs in tests' processes
// too).
func setGC(cfg Config, env gcSettings, log *zap.Logger) (restore func()) {
	var undo []func()
	fields := make([]zap.Field, 0, 4)

	if v := env.getenv("GOGC"); v != "" {
		fields = append(fields, zap.String("gogc", v), zap.String("gogc_from", "GOGC in the environment"))
	} else {
		percent, from := cfg.GCPercent, "gc_percent"
		if percent == 0 {
			percent, from = DefaultGCPercent, "parleyd's default"
		}
		prev := debug.SetGCPercent(percent)
		undo = append(undo, func() { debug.SetGCPercent(prev) })
		fields = append(fields, zap.String("gogc", strconv.Itoa(percent)), zap.String("gogc_from", from))
	}

	limit, from := int64(0), ""
	switch v := env.getenv("GOMEMLIMIT"); {
	case v != "":
		fields = append(fields, zap.String("memory_limit", v), zap.String("memory_limit_from", "GOMEMLIMIT in the environment"))
	case cfg.MemoryLimit != "":
		limit, _ = bytesize.Parse(cfg.MemoryLimit) // checked
		from = "memory_limit"
	default:
		if cg, ok := memlimit.Cgroup(env.root); ok {
			limit = int64(float64(cg) * cgroupShare)
			from = fmt.Sprintf("%.0f%% of the cgroup's limit, %s", cgroupShare*100, bytesize.Format(cg))
		} else {
			fields = append(fields, zap.String("memory_limit", "none"))
		}
	}
	if from != "" {
		prev := debug.SetMemoryLimit(limit)
		undo = append(undo, func() { debug.SetMemoryLimit(prev) })
		fields = append(fields, zap.String("memory_limit", bytesize.Format(limit)), zap.String("memory_limit_from", from))
	}
	log.Info("garbage collector", fields...)
	return func() {
		for _, f := range undo {
			f()
		}
	}
}
