package parley_test

import (
	"context"
	"net"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
)

// TestServerRestart: the server stops and starts again on the same ports;
// the Engines reconnect, find their sessions gone, join their rooms again
// (JoinTypeReconnected) and log in again, by themselves.
func TestServerRestart(t *testing.T) {
	first, _ := startServerAt(t, "127.0.0.1:0", 0)
	addr, udp := first.Addr().String(), first.UDPAddr().(*net.UDPAddr).Port
	restartScenario(t, first.URL(), func() {
		require.NoError(t, first.Shutdown(context.Background()))
	}, func() {
		startServerAt(t, addr, udp)
	})
}

// TestServerKill: the server crashes (Kill: no GoAway, no close frame,
// its state lost) and a new one starts on the same ports. The Engines see
// their connection drop and reconnect, nobody was told anybody left, and
// they come back as after a restart: their sessions are unknown to the
// new server, so they join their rooms and log in again by themselves.
func TestServerKill(t *testing.T) {
	first, _ := startServerAt(t, "127.0.0.1:0", 0)
	addr, udp := first.Addr().String(), first.UDPAddr().(*net.UDPAddr).Port
	restartScenario(t, first.URL(), func() {
		require.NoError(t, first.Kill())
	}, func() {
		startServerAt(t, addr, udp)
	})
}

// restartScenario runs two Engines, each in room1 and logged in, on the
// server at url; stops it with stop and, once both know, starts it again
// with restart; and checks that both come back by themselves, and that
// their handlers' pictures of the room are exact.
func restartScenario(t *testing.T, url string, stop, restart func()) {
	cfg := parley.EngineConfig{AppID: restartAppID, ServerURL: url}

	peers := map[string]*peer{}
	for _, user := range []string{"alice", "bob"} {
		m := newPeerAt(t, nil, cfg, "room1", parley.UserInfo{UserID: user})
		require.NoError(t, m.room.JoinRoom(restartToken(t, "room1", user), m.info, parley.RoomConfig{}))
		requireState(t, m.rec, 0)
		require.NoError(t, m.e.Login(restartToken(t, "", user), user))
		require.Equal(t, parley.LoginErrorCodeSuccess, parleytest.NextOf[parleytest.LoginResult](t, m.eng).Code)
		peers[user] = m
	}
	alice, bob := peers["alice"], peers["bob"]
	requireJoined(t, alice.rec, bob.info)
	requireJoined(t, bob.rec, alice.info)

	stop()
	for _, p := range peers {
		p.eng.WaitState(t, parley.ConnectionStateReconnecting)
		// A server that stops, gracefully or not, removes its members
		// silently: what it sent before the connection ended is recorded
		// by now, and it holds no leave.
		requireNone[parleytest.UserLeave](t, p.rec, p.info.UserID+" while the server is down")
	}
	restart()

	for _, p := range peers {
		p.eng.WaitState(t, parley.ConnectionStateReconnected)
		requireRejoined(t, p.rec)
		require.Equal(t, parley.LoginErrorCodeSuccess, parleytest.NextOf[parleytest.LoginResult](t, p.eng).Code, "re-login of %s", p.info.UserID)
	}
	// They are together again, and each handler's picture of the room is
	// exact: whoever rejoined first did not find the other (OnUserLeave
	// Dropped) until it came back (OnUserJoined); the second found the
	// first already there and heard nothing. Two rejoins that the room
	// handles in one presence batch find each other there, and neither
	// hears anything. A newcomer ends both records.
	carol := newPeerAt(t, nil, cfg, "room1", parley.UserInfo{UserID: "carol"})
	require.NoError(t, carol.room.JoinRoom(restartToken(t, "room1", "carol"), carol.info, parley.RoomConfig{}))
	requireState(t, carol.rec, 0)
	var sawGap int
	for name, p := range peers {
		other := map[string]string{"alice": "bob", "bob": "alice"}[name]
		ev := p.rec.Next(t)
		if ev == (parleytest.UserLeave{UserID: other, Reason: parley.UserOfflineReasonDropped}) {
			sawGap++
			requireJoined(t, p.rec, parley.UserInfo{UserID: other})
			ev = p.rec.Next(t)
		}
		require.Equal(t, parleytest.UserJoined{User: carol.info}, ev, "%s's next event", name)
	}
	require.LessOrEqual(t, sawGap, 1, "at most one of them rejoined before the other")
}
