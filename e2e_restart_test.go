package parley_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/server"
	"github.com/parleyhq/parley/token"
)

const restartAppID, restartAppKey = "restartrestartrestart001", "restart-key"

// TestServerRestart: the server stops and starts again on the same ports;
// the Engines reconnect, find their sessions gone, join their rooms again
// (JoinTypeReconnected) and log in again, by themselves.
func TestServerRestart(t *testing.T) {
	start := func(listen string, udp int) *server.Server {
		s, err := server.New(server.Config{Listen: listen, UDPPort: udp, Apps: map[string]string{restartAppID: restartAppKey}})
		require.NoError(t, err)
		require.NoError(t, s.Start())
		return s
	}
	first := start("127.0.0.1:0", 0)
	addr, udp := first.Addr().String(), first.UDPAddr().(*net.UDPAddr).Port
	restartScenario(t, first.URL(), func() {
		require.NoError(t, first.Shutdown(context.Background()))
	}, func() {
		second := start(addr, udp)
		t.Cleanup(func() { _ = second.Shutdown(context.Background()) })
	})
}

// restartScenario runs two Engines, each in room1 and logged in, on the
// server at url; stops it with stop and, once both know, starts it again
// with restart; and checks that both come back by themselves, and that
// their handlers' pictures of the room are exact.
func restartScenario(t *testing.T, url string, stop, restart func()) {
	mint := func(room, user string) string {
		tk := token.New(restartAppID, restartAppKey, room, user)
		tk.ExpireTime(time.Now().Add(time.Hour))
		raw, err := tk.Serialize()
		require.NoError(t, err)
		return raw
	}
	cfg := parley.EngineConfig{AppID: restartAppID, ServerURL: url}

	type peer struct {
		m      *member
		logins chan parley.LoginErrorCode
	}
	peers := map[string]*peer{}
	for _, user := range []string{"alice", "bob"} {
		m := &member{eng: newEngineRecorder(), rec: newRoomRecorder(), user: parley.UserInfo{UserID: user}}
		lr := &restartEngine{engineRecorder: m.eng, logins: make(chan parley.LoginErrorCode, 4)}
		m.e = newEngineFor(t, cfg, lr)
		room, err := m.e.CreateRoom("room1", m.rec)
		require.NoError(t, err)
		m.room = room
		require.NoError(t, room.JoinRoom(mint("room1", user), m.user, parley.RoomConfig{}))
		m.rec.requireState(t, 0)
		require.NoError(t, m.e.Login(mint("", user), user))
		require.Equal(t, parley.LoginErrorCodeSuccess, <-lr.logins)
		peers[user] = &peer{m, lr.logins}
	}
	alice, bob := peers["alice"], peers["bob"]
	alice.m.rec.requireJoined(t, bob.m.user)
	bob.m.rec.requireJoined(t, alice.m.user)

	stop()
	for _, p := range peers {
		p.m.eng.waitState(t, parley.ConnectionStateReconnecting)
	}
	restart()

	for _, p := range peers {
		p.m.eng.waitState(t, parley.ConnectionStateReconnected)
		sc := p.m.rec.requireState(t, 0)
		require.Equal(t, parley.JoinTypeReconnected, sc.Info.JoinType)
		select {
		case code := <-p.logins:
			require.Equal(t, parley.LoginErrorCodeSuccess, code, "re-login of %s", p.m.user.UserID)
		case <-time.After(15 * time.Second):
			t.Fatalf("%s did not log in again", p.m.user.UserID)
		}
	}
	// They are together again, and each handler's picture of the room is
	// exact: whoever rejoined first did not find the other (OnUserLeave
	// Dropped) until it came back (OnUserJoined); the second found the
	// first already there and heard nothing. A newcomer ends both records.
	carol := &member{eng: newEngineRecorder(), rec: newRoomRecorder(), user: parley.UserInfo{UserID: "carol"}}
	carol.e = newEngineFor(t, cfg, carol.eng)
	room, err := carol.e.CreateRoom("room1", carol.rec)
	require.NoError(t, err)
	require.NoError(t, room.JoinRoom(mint("room1", "carol"), carol.user, parley.RoomConfig{}))
	carol.rec.requireState(t, 0)
	var sawGap int
	for name, p := range peers {
		other := map[string]string{"alice": "bob", "bob": "alice"}[name]
		ev := p.m.rec.next(t)
		if ev == (userLeave{other, parley.UserOfflineReasonDropped}) {
			sawGap++
			p.m.rec.requireJoined(t, parley.UserInfo{UserID: other})
			ev = p.m.rec.next(t)
		}
		require.Equal(t, userJoined{carol.user}, ev, "%s's next event", name)
	}
	require.Equal(t, 1, sawGap, "exactly one of them rejoined before the other")
}

type restartEngine struct {
	*engineRecorder
	logins chan parley.LoginErrorCode
}

func (r *restartEngine) OnLoginResult(_ string, code parley.LoginErrorCode, _ time.Duration) {
	r.logins <- code
}
