package transport_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/internal/transport"
	"github.com/parleyhq/parley/parleytest"
)

// roomWatch records what a test waits for in a room.
type roomWatch struct {
	parley.NopRoomEventHandler
	states chan int
	left   chan struct{}
	joined chan string
	gone   chan string
}

func newRoomWatch() *roomWatch {
	return &roomWatch{states: make(chan int, 8), left: make(chan struct{}, 8), joined: make(chan string, 8), gone: make(chan string, 8)}
}

func (w *roomWatch) OnRoomStateChanged(_, _ string, state int, _ parley.RoomStateInfo) {
	w.states <- state
}
func (w *roomWatch) OnLeaveRoom(parley.RoomStats)                      { w.left <- struct{}{} }
func (w *roomWatch) OnUserJoined(u parley.UserInfo)                    { w.joined <- u.UserID }
func (w *roomWatch) OnUserLeave(id string, _ parley.UserOfflineReason) { w.gone <- id }

func recv[T any](t *testing.T, c chan T, what string) T {
	t.Helper()
	select {
	case v := <-c:
		return v
	case <-time.After(15 * time.Second):
		t.Fatalf("no %s within 15s", what)
	}
	panic("unreachable")
}

// TestJoinLeaveLogsNoWarn: with every log of the server and of two
// Engines on, a normal join, a LeaveRoom, another join and an Engine.Close
// log nothing at Warn or above: pion's routine warnings of a join and a
// leave are Debug.
func TestJoinLeaveLogsNoWarn(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(core)
	srv := parleytest.NewServer(t, parleytest.WithLogger(log.Named("server")))
	newEngine := func(name string) *parley.Engine {
		e, err := parley.NewEngine(parley.EngineConfig{AppID: srv.AppID, ServerURL: srv.URL}, nil,
			parley.WithLoopbackOnly(), parley.WithLogger(log.Named(name)))
		require.NoError(t, err)
		return e
	}
	bob := newEngine("bob")
	bw := newRoomWatch()
	br, err := bob.CreateRoom("r", bw)
	require.NoError(t, err)
	require.NoError(t, br.JoinRoom(srv.Token("r", "bob"), parley.UserInfo{UserID: "bob"}, parley.RoomConfig{}))
	require.Equal(t, 0, recv(t, bw.states, "bob's join"))

	for _, leave := range []string{"LeaveRoom", "Engine.Close"} {
		alice := newEngine("alice")
		aw := newRoomWatch()
		ar, err := alice.CreateRoom("r", aw)
		require.NoError(t, err)
		require.NoError(t, ar.JoinRoom(srv.Token("r", "alice"), parley.UserInfo{UserID: "alice"}, parley.RoomConfig{}))
		require.Equal(t, 0, recv(t, aw.states, "alice's join"))
		require.Equal(t, "bob", recv(t, aw.joined, "bob seen by alice"))
		require.Equal(t, "alice", recv(t, bw.joined, "alice seen by bob"))
		if leave == "LeaveRoom" {
			require.NoError(t, ar.LeaveRoom())
			recv(t, aw.left, "alice's OnLeaveRoom")
		}
		require.NoError(t, alice.Close())
		<-alice.Done()
		require.Equal(t, "alice", recv(t, bw.gone, "alice's leave seen by bob"))
	}
	require.NoError(t, bob.Close())
	<-bob.Done()
	srv.Close() // waits for the server's goroutines, pion's included

	require.Positive(t, logs.FilterLoggerName("bob.pion").Len(), "pion's logs reach the Engine's logger")
	for _, e := range logs.AllUntimed() {
		if e.Level >= zapcore.WarnLevel {
			t.Errorf("%s %s: %s %v", e.Level, e.LoggerName, e.Message, e.ContextMap())
		}
	}
}

// TestPionWarningLevels: the routine warnings are Debug, and the
// warnings next to them that tell of trouble stay Warn.
func TestPionWarningLevels(t *testing.T) {
	for _, c := range []struct {
		scope, msg string
		want       zapcore.Level
	}{
		{"mux", "Warning: mux: no endpoint for packet starting with 23, adding to queue size(0)", zapcore.DebugLevel},
		{"mux", "Warning: mux: no endpoint for packet starting with 23, not adding to queue size(100)", zapcore.WarnLevel},
		{"ice", "Failed to ping without candidate pairs. Connection is not possible yet.", zapcore.DebugLevel},
		{"ice", "Failed to read from candidate udp4 host 127.0.0.1:7882: io: read/write on closed pipe", zapcore.DebugLevel},
		{"ice", "Failed to read from candidate udp4 host 127.0.0.1:7882: connection refused", zapcore.WarnLevel},
		{"sctp", "[0xc000123] failed to write packets on netConn: dtls fatal: conn is closed", zapcore.DebugLevel},
		{"sctp", "[0xc000123] failed to write packets on netConn: dtls fatal: use of closed network connection", zapcore.DebugLevel},
		{"sctp", "[0xc000123] failed to write packets on netConn: sendmsg: no buffer space available", zapcore.WarnLevel},
		{"dtls", "Failed to ping without candidate pairs. Connection is not possible yet.", zapcore.WarnLevel}, // another scope
	} {
		core, logs := observer.New(zapcore.DebugLevel)
		l := transport.NewLogger(zap.New(core), c.scope)
		l.Warn(c.msg)
		l.Warnf("%s", c.msg)
		require.Equal(t, 2, logs.Len())
		for _, e := range logs.AllUntimed() {
			require.Equal(t, c.want, e.Level, "%s: %s", c.scope, c.msg)
			require.Equal(t, c.msg, e.Message)
		}
	}
	// pion's UDP mux logs a packet for a pipe that just closed as an
	// error: routine too; other errors stay errors.
	for _, c := range []struct {
		msg  string
		want zapcore.Level
	}{
		{"Failed to write packet: io: read/write on closed pipe", zapcore.DebugLevel},
		{"Failed to write packet: buffer too short", zapcore.ErrorLevel},
	} {
		core, logs := observer.New(zapcore.DebugLevel)
		l := transport.NewLogger(zap.New(core), "ice")
		l.Error(c.msg)
		l.Errorf("%s", c.msg)
		require.Equal(t, 2, logs.Len())
		for _, e := range logs.AllUntimed() {
			require.Equal(t, c.want, e.Level, c.msg)
			require.Equal(t, c.msg, e.Message)
		}
	}
}

// TestPionDebugFollowsLevel: pion's trace, debug and info logs reach a
// logger that takes Debug, as Debug, and nothing of them reaches one that
// does not.
func TestPionDebugFollowsLevel(t *testing.T) {
	for _, level := range []zapcore.Level{zapcore.DebugLevel, zapcore.InfoLevel} {
		core, logs := observer.New(level)
		l := transport.NewLogger(zap.New(core), "sctp")
		l.Trace("t")
		l.Tracef("t%d", 1)
		l.Debug("d")
		l.Debugf("d%d", 1)
		l.Info("i")
		l.Infof("i%d", 1)
		want := 0
		if level == zapcore.DebugLevel {
			want = 6
		}
		require.Equal(t, want, logs.FilterLevelExact(zapcore.DebugLevel).Len(), "at %v", level)
		require.Equal(t, want, logs.Len(), "at %v", level)
	}
}
