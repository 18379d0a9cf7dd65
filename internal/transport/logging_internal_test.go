package transport

import (
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// TestLoggerPerScope: pion's objects of one scope share one logger, made
// once, and a level raised later gives the loggers asked for after it
// pion's debug logs.
func TestLoggerPerScope(t *testing.T) {
	level := zap.NewAtomicLevelAt(zapcore.InfoLevel)
	core, logs := observer.New(level)
	f := newLoggerFactory(zap.New(core))

	ice, ice2, dtls := f.NewLogger("ice"), f.NewLogger("ice"), f.NewLogger("dtls")
	require.Equal(t, ice, ice2, "one logger for the scope")
	require.NotEqual(t, ice, dtls)
	allocs := testing.AllocsPerRun(100, func() { f.NewLogger("ice") })
	require.Zero(t, allocs, "a scope's logger is made once")

	level.SetLevel(zapcore.DebugLevel)
	debug := f.NewLogger("ice")
	require.NotEqual(t, ice, debug, "a logger that takes Debug")
	ice.Debug("before")
	debug.Debug("after")
	require.Equal(t, 1, logs.Len())
	e := logs.All()[0]
	require.Equal(t, "after", e.Message)
	require.Equal(t, "ice", e.ContextMap()["scope"])
	require.Equal(t, "pion", e.LoggerName)
}
