package server

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	pb "github.com/parleyhq/parley/proto/parley/v1"
	"github.com/parleyhq/parley/token"
)

// startObserved runs a loopback server with one app whose logs the test
// reads.
func startObserved(t *testing.T, cfg Config) (*Server, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	cfg.Listen = "127.0.0.1:0"
	cfg.Apps = map[string]string{testAppID: testAppKey}
	cfg.LoopbackOnly = true
	cfg.Logger = zap.New(core)
	s, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, s.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		require.NoError(t, s.Shutdown(ctx))
	})
	return s, logs
}

// tokenOf is a token of app signed with key for room and user, expiring
// at expire.
func tokenOf(t *testing.T, app, key, room, user string, expire time.Time) string {
	t.Helper()
	tok := token.New(app, key, room, user)
	tok.ExpireTime(expire)
	raw, err := tok.Serialize()
	require.NoError(t, err)
	return raw
}

// logged returns the "reason" fields of the log lines whose message is
// msg.
func logged(logs *observer.ObservedLogs, msg string) []string {
	var out []string
	for _, e := range logs.FilterMessage(msg).All() {
		r, _ := e.ContextMap()["reason"].(string)
		out = append(out, r)
	}
	return out
}

// TestRefusalIsNoOracle: a token of an app the server does not know and a
// token of a known app with a bad signature get the same code and reason,
// expired or not, for a join and for a login, so that a client cannot
// find out which AppIDs exist; the log tells them apart.
func TestRefusalIsNoOracle(t *testing.T) {
	s, logs := startObserved(t, Config{})
	unknownApp := "ffffffffffffffffffffffff"
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	cases := []struct{ name, app, token string }{
		{"unknown app", unknownApp, tokenOf(t, unknownApp, "some-key", "room1", "alice", future)},
		{"bad signature", testAppID, tokenOf(t, testAppID, "wrong-key", "room1", "alice", future)},
		{"unknown app, expired", unknownApp, tokenOf(t, unknownApp, "some-key", "room1", "alice", past)},
		{"bad signature, expired", testAppID, tokenOf(t, testAppID, "wrong-key", "room1", "alice", past)},
	}
	ws := dial(t, s)
	var joinReasons, loginReasons []string
	for i, c := range cases {
		write(t, ws, &pb.ClientFrame{RequestId: uint64(2*i + 1), Body: &pb.ClientFrame_Join{Join: &pb.JoinRequest{
			AppId: c.app, RoomId: "room1", UserId: "alice", Token: c.token,
		}}})
		jr := read(t, ws).GetJoin()
		require.NotNil(t, jr, c.name)
		require.Equal(t, int32(codeInvalidToken), jr.Code, c.name)
		joinReasons = append(joinReasons, jr.Reason)

		write(t, ws, &pb.ClientFrame{RequestId: uint64(2*i + 2), Body: &pb.ClientFrame_Login{Login: &pb.LoginRequest{
			AppId: c.app, UserId: "alice", Token: c.token,
		}}})
		lr := read(t, ws).GetLogin()
		require.NotNil(t, lr, c.name)
		require.Equal(t, int32(loginInvalidToken), lr.Code, c.name)
		loginReasons = append(loginReasons, lr.Reason)
	}
	for i := range cases {
		require.Equal(t, reasonBadCredentials, joinReasons[i], cases[i].name)
		require.Equal(t, reasonBadCredentials, loginReasons[i], cases[i].name)
	}
	require.NotContains(t, joinReasons[0], unknownApp)

	// A token of a known app, correctly signed but expired, says so.
	write(t, ws, &pb.ClientFrame{RequestId: 100, Body: &pb.ClientFrame_Join{Join: &pb.JoinRequest{
		AppId: testAppID, RoomId: "room1", UserId: "alice", Token: tokenOf(t, testAppID, testAppKey, "room1", "alice", past),
	}}})
	require.Equal(t, "token: expired", read(t, ws).GetJoin().GetReason())

	// The log keeps the detail.
	lines := strings.Join(append(logged(logs, "join refused"), logged(logs, "login refused")...), "\n")
	require.Contains(t, lines, "unknown app ID")
	require.Contains(t, lines, "bad signature")
}
