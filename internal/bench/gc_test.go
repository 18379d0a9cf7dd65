package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley/parleytest"
)

// TestGCBudgetFlag: --gc-budget takes GOMEMLIMIT's forms; a malformed or
// too small size is a flag error naming the flag, as the other flags' are.
func TestGCBudgetFlag(t *testing.T) {
	parse := func(args ...string) (Config, error) {
		cfg := DefaultConfig()
		err := Flags(&cfg, io.Discard).Parse(args)
		return cfg, err
	}
	cfg, err := parse()
	require.NoError(t, err)
	assert.Zero(t, cfg.GCBudget, "not given: the environment's collector")

	cfg, err = parse("--gc-budget", "8GiB")
	require.NoError(t, err)
	assert.Equal(t, int64(8<<30), cfg.GCBudget)
	require.NoError(t, cfg.check())

	for _, bad := range []string{"8GB", "8 GiB", "-1GiB", "lots", "", "0", "8", "1MiB"} {
		_, err := parse("--gc-budget", bad)
		require.Error(t, err, "%q", bad)
		assert.Contains(t, err.Error(), "gc-budget", "%q", bad)
	}
	_, err = parse("--gc-budget", "8")
	assert.ErrorContains(t, err, "below the minimum, 64MiB (a number without a suffix is bytes)")
	_, err = parse("--gc-budget", "8GB")
	assert.ErrorContains(t, err, "suffix B, KiB, MiB, GiB or TiB")

	// A Config built in code is held to the same minimum.
	cfg = DefaultConfig()
	cfg.GCBudget = MinGCBudget - 1
	assert.ErrorIs(t, cfg.check(), ErrConfig)
	cfg.GCBudget = MinGCBudget
	assert.NoError(t, cfg.check())
}

// gcPercent reads the collector's GOGC setting.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

func TestSetGCBudget(t *testing.T) {
	percent0, limit0 := gcPercent(), debug.SetMemoryLimit(-1)

	setGCBudget(0)()
	assert.Equal(t, percent0, gcPercent(), "no budget: nothing changes")
	assert.Equal(t, limit0, debug.SetMemoryLimit(-1))

	restore := setGCBudget(1 << 30)
	assert.Equal(t, -1, gcPercent(), "GOGC off")
	assert.Equal(t, int64(1<<30), debug.SetMemoryLimit(-1))
	restore()
	assert.Equal(t, percent0, gcPercent(), "restored")
	assert.Equal(t, limit0, debug.SetMemoryLimit(-1), "restored")
}

func TestGCEnv(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	assert.Empty(t, gcEnv(), "an empty variable is unset, as the runtime takes it")
	t.Setenv("GOGC", "off")
	assert.Equal(t, "GOGC=off", gcEnv())
	t.Setenv("GOMEMLIMIT", "8GiB")
	assert.Equal(t, "GOGC=off GOMEMLIMIT=8GiB", gcEnv())
}

// TestReadGC: the runtime/metrics names are right, and a collection
// moves both figures.
func TestReadGC(t *testing.T) {
	g0 := readGC()
	runtime.GC()
	d := readGC().since(g0)
	assert.GreaterOrEqual(t, d.cycles, uint64(1))
	assert.Positive(t, d.cpuSeconds)
}

// gcSummary is a rooms-mode summary with the load process's collector
// figures.
func gcSummary(cycles int64, cpu float64) *Summary {
	return &Summary{
		Mode: ModeRooms, URL: "ws://127.0.0.1:7880/rtc", Phase: phaseDone,
		Settings: Settings{Members: 10, RoomSize: 5, Rooms: 2, Engines: 10, Rate: 5, Payload: 64, DurationSeconds: 30},
		Load:     LoadSummary{Engines: 10, GOMAXPROCS: 2, GCCycles: cycles, GCCPUSeconds: cpu},
	}
}

func TestSummaryGCFigures(t *testing.T) {
	for _, tc := range []struct {
		cycles int64
		cpu    float64
		text   string
	}{
		{6, 1.2, "; 6 collections (1.2s of gc cpu) while measuring\n"},
		{1, 0.0042, "; 1 collection (4ms of gc cpu) while measuring\n"},
		{0, 0, "; 0 collections (0s of gc cpu) while measuring\n"},
	} {
		s := gcSummary(tc.cycles, tc.cpu)
		var text bytes.Buffer
		require.NoError(t, s.WriteText(&text))
		line := lineStarting(text.String(), "load process")
		assert.True(t, strings.HasSuffix(line, tc.text), "%q", line)

		var js bytes.Buffer
		require.NoError(t, s.WriteJSON(&js))
		var out struct {
			Load map[string]any `json:"load"`
		}
		require.NoError(t, json.Unmarshal(js.Bytes(), &out))
		assert.Equal(t, float64(tc.cycles), out.Load["gc_cycles"], js.String())
		assert.Equal(t, tc.cpu, out.Load["gc_cpu_seconds"], js.String())
	}
}

// lineStarting is text's line that starts with prefix, with its newline;
// "" if none does.
func lineStarting(text, prefix string) string {
	for _, l := range strings.SplitAfter(text, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// TestGCWarning: summarise warns when the load process collected while
// measuring, and tells how to keep its pauses out; not when it did not.
func TestGCWarning(t *testing.T) {
	summarise := func(cycles int64, budget int64) *Summary {
		cfg := DefaultConfig()
		cfg.GCBudget = budget
		r := &runner{cfg: cfg, rec: newRecorder(clock{base: time.Now()}), joins: newJoinRecorder()}
		s := gcSummary(cycles, 0.5*float64(cycles))
		r.summarise(s, 0, 0, nil)
		return s
	}

	s := summarise(3, 0)
	require.Len(t, s.Warnings, 1)
	w := s.Warnings[0]
	assert.Contains(t, w, "the load process ran 3 collections while measuring (1.5s of gc cpu)")
	assert.Contains(t, w, "in the latencies")
	assert.Contains(t, w, "--gc-budget 8GiB")
	assert.Contains(t, w, "RSS grows up to it")
	var text bytes.Buffer
	require.NoError(t, s.WriteText(&text))
	assert.Contains(t, text.String(), "\nwarning: "+w+"\n")

	s = summarise(1, 4<<30)
	require.Len(t, s.Warnings, 1)
	assert.Contains(t, s.Warnings[0], "1 collection while")
	assert.Contains(t, s.Warnings[0], "its heap reached --gc-budget 4GiB", "with a budget, the advice is a larger one")

	assert.Empty(t, summarise(0, 0).Warnings, "no collections, no warning")
	assert.Empty(t, summarise(0, 4<<30).Warnings)
}

// TestGCEcho: the header line says how the load process's collector was
// set, and that --gc-budget overrides the environment's.
func TestGCEcho(t *testing.T) {
	for _, tc := range []struct {
		budget int64
		env    string
		want   string
	}{
		{0, "", "GOMAXPROCS 2\n"},
		{0, "GOGC=off GOMEMLIMIT=8GiB", "GOMAXPROCS 2, GOGC=off GOMEMLIMIT=8GiB\n"},
		{8 << 30, "", "GOMAXPROCS 2, gc budget 8GiB (--gc-budget)\n"},
		{8 << 30, "GOGC=50", "GOMAXPROCS 2, gc budget 8GiB (--gc-budget, overriding GOGC=50)\n"},
	} {
		s := gcSummary(0, 0)
		s.Settings.GCBudgetBytes, s.Settings.GCEnv = tc.budget, tc.env
		var text bytes.Buffer
		require.NoError(t, s.WriteText(&text))
		assert.True(t, strings.HasSuffix(lineStarting(text.String(), "server "), tc.want), text.String())
	}
}

// gcWriter forces a collection at every progress line of the measurement,
// so that a run has collections in its window for certain.
type gcWriter struct{ syncBuffer }

func (w *gcWriter) Write(p []byte) (int, error) {
	if bytes.HasPrefix(p, []byte(phaseMeasure)) {
		runtime.GC()
	}
	return w.syncBuffer.Write(p)
}

// TestRunCountsGC: a run counts the collections of its measurement
// window, and warns; with --gc-budget it collects none (the heap of a
// short test run stays far below 1 GiB), echoes the budget, and puts the
// collector's settings back when it returns.
func TestRunCountsGC(t *testing.T) {
	srv := parleytest.NewServer(t)
	cfg := testConfig(srv)
	cfg.Members, cfg.RoomSize = 6, 3
	cfg.MetricsURL = ""
	w := &gcWriter{}
	s := runJSON(t, context.Background(), cfg, Progress{W: w, PlainInterval: 200 * time.Millisecond})
	require.Contains(t, w.String(), "measure", "progress lines in the measurement forced collections")
	assert.GreaterOrEqual(t, s.Load.GCCycles, int64(1))
	assert.Positive(t, s.Load.GCCPUSeconds)
	assert.Contains(t, strings.Join(s.Warnings, "\n"), "--gc-budget")
	assert.Zero(t, s.Settings.GCBudgetBytes)

	percent0, limit0 := gcPercent(), debug.SetMemoryLimit(-1)
	cfg.GCBudget = 1 << 30
	s = runJSON(t, context.Background(), cfg, Progress{})
	assert.Zero(t, s.Load.GCCycles, "no collection below the budget")
	assert.NotContains(t, strings.Join(s.Warnings, "\n"), "collection")
	assert.Equal(t, int64(1<<30), s.Settings.GCBudgetBytes)
	assert.Equal(t, percent0, gcPercent(), "Run puts GOGC back")
	assert.Equal(t, limit0, debug.SetMemoryLimit(-1), "Run puts the memory limit back")
}
