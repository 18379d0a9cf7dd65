package parleyd

import (
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// gcPercent reads the collector's GOGC without changing it.
func gcPercent() int {
	p := debug.SetGCPercent(100)
	debug.SetGCPercent(p)
	return p
}

// TestSetGC: parleyd runs its collector at gc_percent, DefaultGCPercent
// when the key is absent, and leaves it alone when GOGC is in the
// environment; the restore function puts back what was there.
func TestSetGC(t *testing.T) {
	before := gcPercent()
	for _, c := range []struct {
		name     string
		cfg      Config
		env      string
		want     int
		wantFrom string
		wantGOGC string
	}{
		{"default", Config{}, "", DefaultGCPercent, "parleyd's default", "400"},
		{"gc_percent", Config{GCPercent: 250}, "", 250, "gc_percent", "250"},
		{"GOGC wins", Config{GCPercent: 250}, "150", before, "GOGC in the environment", "150"},
	} {
		t.Run(c.name, func(t *testing.T) {
			core, logs := observer.New(zap.InfoLevel)
			getenv := func(name string) string {
				require.Equal(t, "GOGC", name)
				return c.env
			}
			restore := setGC(c.cfg, getenv, zap.New(core))
			require.Equal(t, c.want, gcPercent())
			restore()
			require.Equal(t, before, gcPercent(), "restored")
			entries := logs.FilterMessage("garbage collector").AllUntimed()
			require.Len(t, entries, 1)
			fields := entries[0].ContextMap()
			require.Equal(t, c.wantGOGC, fields["gogc"])
			require.Equal(t, c.wantFrom, fields["from"])
		})
	}
	t.Run("negative", func(t *testing.T) {
		cfg := defaultConfig()
		cfg.Apps = []App{{testAppID, testAppKey}}
		cfg.GCPercent = -1
		require.ErrorContains(t, cfg.check(), "gc_percent is negative")
	})
}
