package bench

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley/parleytest"
)

// TestPretouchBytes: 90% of the budget, but at most three quarters of
// the memory available or of the cgroup's limit, whichever is less, and
// the summary says why.
func TestPretouchBytes(t *testing.T) {
	meminfo := func(kB string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte("MemTotal: 24570408 kB\nMemAvailable: " + kB + " kB\n")}
	}
	n, note := pretouchBytes(256<<20, fstest.MapFS{})
	assert.Equal(t, int64(241591910), n, "90% of 256 MiB; nothing known of the machine")
	assert.Empty(t, note)

	roomy := fstest.MapFS{"proc/meminfo": meminfo("16777216")} // 16 GiB
	n, note = pretouchBytes(8<<30, roomy)
	assert.Equal(t, int64(7730941132), n, "90% of 8 GiB")
	assert.Empty(t, note)

	tight := fstest.MapFS{"proc/meminfo": meminfo("4194304")} // 4 GiB
	n, note = pretouchBytes(8<<30, tight)
	assert.Equal(t, int64(3<<30), n)
	assert.Contains(t, note, "capped at 75% of the memory available (4.00 GiB)")

	tight["proc/self/cgroup"] = &fstest.MapFile{Data: []byte("0::/bench\n")}
	tight["sys/fs/cgroup/bench/memory.max"] = &fstest.MapFile{Data: []byte("2147483648\n")}
	n, note = pretouchBytes(8<<30, tight)
	assert.Equal(t, int64(3<<29), n, "the cgroup's 2 GiB is less")
	assert.Contains(t, note, "of the cgroup's memory limit (2.00 GiB)")
}

// TestPretouchStops: an ended context stops the pre-touch at the next
// chunk; a live one maps it all.
func TestPretouchStops(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	touched, _ := pretouch(ctx, 4*pretouchChunk)
	assert.Zero(t, touched)
	touched, took := pretouch(context.Background(), pretouchChunk+4096)
	assert.Equal(t, int64(pretouchChunk+4096), touched)
	assert.Positive(t, took)
}

// TestRunPretouch: with --gc-budget a run pre-touches 90% of it before
// the joins and says so; --pretouch=false does not.
func TestRunPretouch(t *testing.T) {
	flags := DefaultConfig()
	assert.True(t, flags.Pretouch, "on by default")
	require.NoError(t, Flags(&flags, io.Discard).Parse([]string{"--pretouch=false"}))
	assert.False(t, flags.Pretouch)

	srv := parleytest.NewServer(t)
	cfg := testConfig(srv)
	cfg.Members, cfg.RoomSize = 4, 2
	cfg.MetricsURL = ""
	cfg.GCBudget = 256 << 20
	cfg.Pretouch = true
	s, err := Run(context.Background(), cfg, Progress{})
	require.NoError(t, err)
	n, _ := pretouchBytes(256<<20, os.DirFS("/"))
	assert.Equal(t, n, s.Load.PretouchBytes)
	assert.Positive(t, s.Load.PretouchSeconds)
	var text strings.Builder
	require.NoError(t, s.WriteText(&text))
	assert.Contains(t, text.String(), "pre-touched "+bytesIEC(float64(n))+" of the gc budget")
	assert.Zero(t, s.Load.GCCycles)

	cfg.Pretouch = false
	s, err = Run(context.Background(), cfg, Progress{})
	require.NoError(t, err)
	assert.Zero(t, s.Load.PretouchBytes)
	assert.Zero(t, s.Load.PretouchSeconds)
}
