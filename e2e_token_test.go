package parley_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
	"github.com/parleyhq/parley/server"
)

// tokenRig is a server on a fake clock with alice joined to room1 on a
// token that expires in a minute, and bob there to watch.
type tokenRig struct {
	srv        *parleytest.Server
	clock      *parleytest.Clock
	alice, bob *peer
	aliceLog   *observer.ObservedLogs
}

func newTokenRig(t *testing.T) *tokenRig {
	clock := parleytest.NewClock(time.Now())
	srv := parleytest.NewServer(t, parleytest.WithClock(clock))
	rig := &tokenRig{srv: srv, clock: clock}
	rig.bob = joined(t, srv, "room1", "bob", "")
	core, logs := observer.New(zap.InfoLevel)
	rig.aliceLog = logs
	rig.alice = newPeerAt(t, srv, parley.EngineConfig{AppID: srv.AppID, ServerURL: srv.URL}, "room1", parley.UserInfo{UserID: "alice"}, parley.WithLogger(zap.New(core)))
	require.NoError(t, rig.alice.room.JoinRoom(srv.TokenExpiring("room1", "alice", clock.Now().Add(time.Minute)), rig.alice.info, parley.RoomConfig{}))
	requireState(t, rig.alice.rec, 0)
	requireJoined(t, rig.alice.rec, rig.bob.info)
	requireJoined(t, rig.bob.rec, rig.alice.info)
	return rig
}

func TestTokenWillExpireAndUpdate(t *testing.T) {
	rig := newTokenRig(t)
	rig.clock.Advance(29 * time.Second)
	// A join of another room on alice's connection comes back after
	// everything she sent before: the server has handled it all.
	rig.alice.enter(t, "sync1")
	requireNoEvent(t, rig.alice.rec) // not yet: 31 s left

	rig.clock.Advance(2 * time.Second) // 29 s left: inside the 30 s warning
	require.Equal(t, parleytest.TokenWillExpire{}, rig.alice.rec.Next(t))

	require.NoError(t, rig.alice.room.UpdateToken(rig.srv.TokenExpiring("room1", "alice", rig.clock.Now().Add(time.Hour))))
	rig.alice.enter(t, "sync2") // the update is in
	rig.clock.Advance(time.Minute)
	// Past the first token's expiry: still in. A newcomer proves nothing
	// came before it.
	carol := joined(t, rig.srv, "room1", "carol", "")
	requireJoined(t, rig.alice.rec, carol.info)
	requireJoined(t, rig.bob.rec, carol.info)
}

func TestTokenExpiredRemovesMember(t *testing.T) {
	rig := newTokenRig(t)
	rig.clock.Advance(61 * time.Second)
	require.Equal(t, parleytest.TokenWillExpire{}, rig.alice.rec.Next(t))
	requireState(t, rig.alice.rec, int(parley.ErrorCodeTokenExpired))
	requireLeave(t, rig.bob.rec, "alice", parley.UserOfflineReasonDropped)
	// The server left alice's PeerConnection for her to close: its end did
	// not overtake the reason and set off a rejoin.
	require.Zero(t, rig.aliceLog.FilterMessage("rejoining").Len(), "alice rejoined")
	// A fresh token joins again.
	require.NoError(t, rig.alice.room.JoinRoom(rig.srv.TokenExpiring("room1", "alice", rig.clock.Now().Add(time.Hour)), rig.alice.info, parley.RoomConfig{}))
	requireState(t, rig.alice.rec, 0)
}

func TestUpdateTokenInvalid(t *testing.T) {
	rig := newTokenRig(t)
	require.NoError(t, rig.alice.room.UpdateToken("garbage"))
	requireState(t, rig.alice.rec, int(parley.ErrorCodeUpdateTokenWithInvalidToken))
	require.NoError(t, rig.alice.room.UpdateToken(rig.srv.TokenExpiring("room1", "bob", rig.clock.Now().Add(time.Hour))))
	requireState(t, rig.alice.rec, int(parley.ErrorCodeUpdateTokenWithInvalidToken))
	// The old token still rules: it expires on time.
	rig.clock.Advance(61 * time.Second)
	require.Equal(t, parleytest.TokenWillExpire{}, rig.alice.rec.Next(t))
	requireState(t, rig.alice.rec, int(parley.ErrorCodeTokenExpired))
	requireLeave(t, rig.bob.rec, "alice", parley.UserOfflineReasonDropped)
}

// TestLoginTokenExpiredAtRelogin: a login token that expired is refused
// when the Engine logs in again by itself (its session was lost), and
// UpdateLoginToken recovers.
func TestLoginTokenExpiredAtRelogin(t *testing.T) {
	clock := parleytest.NewClock(time.Now())
	srv := parleytest.NewServer(t, parleytest.WithClock(clock), parleytest.WithConfig(func(c *server.Config) {
		c.GracePeriod = 100 * time.Millisecond
	}))
	proxy := newCutProxy(t, srv)
	alice := newPeerAt(t, srv, parley.EngineConfig{AppID: srv.AppID, ServerURL: proxy.URL()}, "", parley.UserInfo{UserID: "alice"})
	login := func() parley.LoginErrorCode { // the next login result, other events aside
		return parleytest.NextOf[parleytest.LoginResult](t, alice.eng).Code
	}
	require.NoError(t, alice.e.Login(srv.TokenExpiring("", "alice", clock.Now().Add(time.Minute)), "alice"))
	require.Equal(t, parley.LoginErrorCodeSuccess, login())

	clock.Advance(2 * time.Minute) // the login token expires; a login stays
	proxy.block()
	proxy.cut()
	watcher := loggedIn(t, srv, "watcher")
	require.Eventually(t, func() bool { // alice's session outlives its grace period
		return watcher.status(t, "alice") == parley.UserOnlineStatusOffline
	}, 15*time.Second, 20*time.Millisecond)
	proxy.unblock()
	require.Equal(t, parley.LoginErrorCodeInvalidToken, login(), "re-login with the expired token")
	require.NoError(t, alice.e.UpdateLoginToken(srv.TokenExpiring("", "alice", clock.Now().Add(time.Hour))))
	require.Equal(t, parley.LoginErrorCodeSuccess, login(), "login after UpdateLoginToken")
}
