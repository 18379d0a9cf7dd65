package parleyd

import (
	"math"
	"runtime/debug"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// gcNow reads the collector's GOGC and soft memory limit without changing
// them.
func gcNow() (percent int, limit int64) {
	percent = debug.SetGCPercent(100)
	debug.SetGCPercent(percent)
	return percent, debug.SetMemoryLimit(-1)
}

// cgroupV1 and cgroupV2 are the files of a process in a container whose
// memory is limited to limit ("max": none).
func cgroupV1(limit string) fstest.MapFS {
	return fstest.MapFS{
		"proc/self/cgroup": {Data: []byte("12:cpu,cpuacct:/\n4:memory:/docker/abc\n0::/\n")},
		"sys/fs/cgroup/memory/docker/abc/memory.limit_in_bytes": {Data: []byte(limit + "\n")},
	}
}

func cgroupV2(limit string) fstest.MapFS {
	return fstest.MapFS{
		"proc/self/cgroup": {Data: []byte("0::/system.slice/parleyd.service\n")},
		"sys/fs/cgroup/system.slice/parleyd.service/memory.max": {Data: []byte(limit + "\n")},
	}
}

// TestSetGC: parleyd runs its collector at gc_percent, else
// DefaultGCPercent, with memory_limit, else 80% of its cgroup's memory
// limit, else none; GOGC and GOMEMLIMIT in the environment win. The
// restore function puts back what was there.
func TestSetGC(t *testing.T) {
	percent0, limit0 := gcNow()
	noCgroup := fstest.MapFS{}
	for _, c := range []struct {
		name        string
		cfg         Config
		env         map[string]string
		root        fstest.MapFS
		wantPercent int
		wantLimit   int64
		wantFields  map[string]any
	}{
		{"defaults", Config{}, nil, noCgroup, DefaultGCPercent, limit0,
			map[string]any{"gogc": "450", "gogc_from": "parleyd's default", "memory_limit": "none"}},
		{"keys", Config{GCPercent: 250, MemoryLimit: "3GiB"}, nil, cgroupV1("1073741824"), 250, 3 << 30,
			map[string]any{"gogc": "250", "gogc_from": "gc_percent", "memory_limit": "3GiB", "memory_limit_from": "memory_limit"}},
		{"environment wins", Config{GCPercent: 250, MemoryLimit: "3GiB"}, map[string]string{"GOGC": "150", "GOMEMLIMIT": "2GiB"}, cgroupV1("1073741824"),
			percent0, limit0,
			map[string]any{"gogc": "150", "gogc_from": "GOGC in the environment", "memory_limit": "2GiB", "memory_limit_from": "GOMEMLIMIT in the environment"}},
		{"cgroup v1", Config{}, nil, cgroupV1("10737418240"), DefaultGCPercent, 8 << 30,
			map[string]any{"gogc": "450", "gogc_from": "parleyd's default", "memory_limit": "8GiB", "memory_limit_from": "80% of the cgroup's limit, 10GiB"}},
		{"cgroup v1 unlimited", Config{}, nil, cgroupV1("9223372036854771712"), DefaultGCPercent, limit0,
			map[string]any{"gogc": "450", "gogc_from": "parleyd's default", "memory_limit": "none"}},
		{"cgroup v2", Config{}, nil, cgroupV2("5368709120"), DefaultGCPercent, 4 << 30,
			map[string]any{"gogc": "450", "gogc_from": "parleyd's default", "memory_limit": "4GiB", "memory_limit_from": "80% of the cgroup's limit, 5GiB"}},
		{"cgroup v2 max", Config{}, nil, cgroupV2("max"), DefaultGCPercent, limit0,
			map[string]any{"gogc": "450", "gogc_from": "parleyd's default", "memory_limit": "none"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			core, logs := observer.New(zap.InfoLevel)
			restore := setGC(c.cfg, gcSettings{getenv: func(name string) string { return c.env[name] }, root: c.root}, zap.New(core))
			percent, limit := gcNow()
			restore()
			p, l := gcNow()
			require.Equal(t, percent0, p, "GOGC restored")
			require.Equal(t, limit0, l, "memory limit restored")
			require.Equal(t, c.wantPercent, percent, "GOGC")
			require.Equal(t, c.wantLimit, limit, "memory limit")
			entries := logs.FilterMessage("garbage collector").AllUntimed()
			require.Len(t, entries, 1)
			require.Equal(t, c.wantFields, entries[0].ContextMap())
		})
	}
	require.Equal(t, int64(math.MaxInt64), limit0, "the test process has no memory limit of its own")
}

// TestMemoryLimitKey: memory_limit takes GOMEMLIMIT's forms; gc_percent is
// not negative.
func TestMemoryLimitKey(t *testing.T) {
	cfg := defaultConfig()
	cfg.Apps = []App{{testAppID, testAppKey}}
	cfg.MemoryLimit = "4GiB"
	require.NoError(t, cfg.check())
	cfg.MemoryLimit = "4GB"
	require.ErrorContains(t, cfg.check(), `memory_limit "4GB"`)
	cfg.MemoryLimit = ""
	cfg.GCPercent = -1
	require.ErrorContains(t, cfg.check(), "gc_percent is negative")
}
