package parley_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
	"github.com/parleyhq/parley/server"
	"github.com/parleyhq/parley/token"
)

// TestJoin checks a first join's state 0 and its RoomStateInfo, and the
// order of the membership events: a joiner hears state 0 first, then one
// OnUserJoined per member already present, in join order, with their
// ExtraInfo; the members present hear about the joiner once.
func TestJoin(t *testing.T) {
	srv := parleytest.NewServer(t)

	alice := newMember(t, srv, "room1", parley.UserInfo{UserID: "alice", ExtraInfo: "a's info"})
	before := time.Now()
	sc := alice.join(t)
	elapsedMax := time.Since(before)
	require.Equal(t, parleytest.RoomStateChanged{
		RoomID: "room1", UserID: "alice", State: 0,
		Info: parley.RoomStateInfo{Elapsed: sc.Info.Elapsed, JoinType: parley.JoinTypeFirst},
	}, sc)
	require.Positive(t, sc.Info.Elapsed)
	require.LessOrEqual(t, sc.Info.Elapsed, elapsedMax, "Elapsed runs from the JoinRoom call to the join")
	var extra struct {
		Elapsed  *int64 `json:"elapsed"`
		JoinType *int   `json:"join_type"`
	}
	require.NoError(t, json.Unmarshal([]byte(sc.Info.String()), &extra), "RoomStateInfo.String() is JSON: %s", sc.Info)
	require.NotNil(t, extra.Elapsed)
	require.NotNil(t, extra.JoinType)
	require.Equal(t, sc.Info.Elapsed.Milliseconds(), *extra.Elapsed)
	require.Equal(t, 0, *extra.JoinType)

	bob := joined(t, srv, "room1", "bob", "b's info")
	requireJoined(t, bob.rec, alice.info)
	requireJoined(t, alice.rec, bob.info)

	carol := joined(t, srv, "room1", "carol", "")
	requireJoined(t, carol.rec, alice.info)
	requireJoined(t, carol.rec, bob.info)
	requireJoined(t, alice.rec, carol.info)
	requireJoined(t, bob.rec, carol.info)

	// Each has had exactly those events: a fourth joiner is the next one.
	dave := joined(t, srv, "room1", "dave", "d")
	for _, u := range []parley.UserInfo{alice.info, bob.info, carol.info} {
		requireJoined(t, dave.rec, u)
	}
	for _, m := range []*peer{alice, bob, carol} {
		requireJoined(t, m.rec, dave.info)
	}
}

// TestLeave: the leaver gets OnLeaveRoom with its stats, the others
// OnUserLeave(Quit); the room can be joined again and the membership
// events start over.
func TestLeave(t *testing.T) {
	srv := parleytest.NewServer(t)
	alice := joined(t, srv, "room1", "alice", "a")
	bob := joined(t, srv, "room1", "bob", "b")
	requireJoined(t, bob.rec, alice.info)
	requireJoined(t, alice.rec, bob.info)
	carol := joined(t, srv, "room1", "carol", "c")
	requireJoined(t, carol.rec, alice.info)
	requireJoined(t, carol.rec, bob.info)
	requireJoined(t, alice.rec, carol.info)
	requireJoined(t, bob.rec, carol.info)

	require.NoError(t, alice.room.LeaveRoom())
	stats := requireLeft(t, alice.rec)
	require.Equal(t, 3, stats.UserCount, "UserCount counts the leaver")
	require.Positive(t, stats.Duration)
	requireLeave(t, bob.rec, "alice", parley.UserOfflineReasonQuit)
	requireLeave(t, carol.rec, "alice", parley.UserOfflineReasonQuit)

	// Leaving again is harmless: zero stats, nobody hears of it.
	require.NoError(t, alice.room.LeaveRoom())
	require.Equal(t, parley.RoomStats{}, requireLeft(t, alice.rec))

	// Rejoin: a first join again, the members in join order.
	sc := alice.join(t)
	require.Equal(t, parley.JoinTypeFirst, sc.Info.JoinType)
	require.Positive(t, sc.Info.Elapsed)
	requireJoined(t, alice.rec, bob.info)
	requireJoined(t, alice.rec, carol.info)
	requireJoined(t, bob.rec, alice.info)
	requireJoined(t, carol.rec, alice.info)

	// The second stay has stats of its own.
	require.NoError(t, bob.room.LeaveRoom())
	require.Equal(t, 3, requireLeft(t, bob.rec).UserCount)
	requireLeave(t, alice.rec, "bob", parley.UserOfflineReasonQuit)
	requireLeave(t, carol.rec, "bob", parley.UserOfflineReasonQuit)
	require.NoError(t, alice.room.LeaveRoom())
	require.Equal(t, 2, requireLeft(t, alice.rec).UserCount)
	requireLeave(t, carol.rec, "alice", parley.UserOfflineReasonQuit)
}

// TestLeaveNotJoined: LeaveRoom on a room never joined is harmless and
// reports OnLeaveRoom with zero stats.
func TestLeaveNotJoined(t *testing.T) {
	srv := parleytest.NewServer(t)
	m := newMember(t, srv, "room1", parley.UserInfo{UserID: "alice"})
	require.NoError(t, m.room.LeaveRoom())
	require.Equal(t, parley.RoomStats{}, requireLeft(t, m.rec))
	require.NoError(t, m.room.LeaveRoom())
	require.Equal(t, parley.RoomStats{}, requireLeft(t, m.rec))
	// The room is still usable.
	m.join(t)
}

// TestDroppedMember: a member whose network dies without a leave request.
// A room transport that dies is rebuilt by the SDK within the grace
// period: the others notice nothing, and its room reports state 0 with
// JoinTypeReconnected. A signaling connection closed for good (a close
// frame, no resume) drops the member: the others see Dropped, its room
// reports -1001, and it can join again.
func TestDroppedMember(t *testing.T) {
	t.Run("room transport closed", func(t *testing.T) {
		srv := parleytest.NewServer(t)
		alice := joined(t, srv, "room1", "alice", "")
		bob := joined(t, srv, "room1", "bob", "")
		requireJoined(t, bob.rec, alice.info)
		requireJoined(t, alice.rec, bob.info)

		require.NoError(t, parley.CrashRoomTransport(bob.room))
		sc := requireState(t, bob.rec, 0)
		require.Equal(t, parley.JoinTypeReconnected, sc.Info.JoinType)
		require.Contains(t, sc.Info.String(), `"join_type":1`)
		// Neither noticed anything of the other: alice was there before and
		// after bob's rejoin, and bob never left. A newcomer is each one's
		// next event.
		carol := joined(t, srv, "room1", "carol", "")
		requireJoined(t, alice.rec, carol.info)
		requireJoined(t, bob.rec, carol.info)
	})
	t.Run("signaling closed", func(t *testing.T) {
		srv := parleytest.NewServer(t)
		alice := joined(t, srv, "room1", "alice", "")
		bob := joined(t, srv, "room1", "bob", "")
		requireJoined(t, bob.rec, alice.info)
		requireJoined(t, alice.rec, bob.info)

		require.NoError(t, parley.CrashSignaling(bob.e))
		requireLeave(t, alice.rec, "bob", parley.UserOfflineReasonDropped)
		requireState(t, bob.rec, int(parley.ErrorCodeJoinRoom))

		// The dropped member is gone for good: a newcomer sees only
		// alice, and bob's room can join again.
		carol := joined(t, srv, "room1", "carol", "")
		requireJoined(t, carol.rec, alice.info)
		requireJoined(t, alice.rec, carol.info)
		bob.join(t)
		requireJoined(t, bob.rec, alice.info)
		requireJoined(t, bob.rec, carol.info)
		requireJoined(t, alice.rec, bob.info)
		requireJoined(t, carol.rec, bob.info)
	})
}

// TestSignalingCutResumes: the signaling TCP connection dies with no close
// frame and stays down for a while (not at all, or 2 s); the Engine
// reconnects and resumes its session within the grace period, and nobody
// notices: no event in the room, the member still there for a newcomer,
// its session's events delivered after the resume.
func TestSignalingCutResumes(t *testing.T) {
	for _, outage := range []time.Duration{0, 2 * time.Second} {
		t.Run(outage.String(), func(t *testing.T) {
			srv := parleytest.NewServer(t)
			proxy := newCutProxy(t, srv)
			alice := joined(t, srv, "room1", "alice", "")
			bob := newPeerAt(t, srv, parley.EngineConfig{AppID: srv.AppID, ServerURL: proxy.URL()}, "room1", parley.UserInfo{UserID: "bob"})
			bob.join(t)
			requireJoined(t, bob.rec, alice.info)
			requireJoined(t, alice.rec, bob.info)
			bob.eng.WaitState(t, parley.ConnectionStateConnected)

			proxy.block()
			proxy.cut()
			bob.eng.WaitState(t, parley.ConnectionStateReconnecting)
			// The outage itself: the network stays down this long, whatever
			// the Engine does meanwhile.
			<-time.After(outage)
			proxy.unblock()
			bob.eng.WaitState(t, parley.ConnectionStateReconnected)

			carol := joined(t, srv, "room1", "carol", "")
			requireJoined(t, carol.rec, alice.info)
			requireJoined(t, carol.rec, bob.info)
			requireJoined(t, alice.rec, carol.info) // alice's next event: nothing about bob came before
			requireJoined(t, bob.rec, carol.info)   // bob's session got the event after the resume
		})
	}
}

// TestOutageBeyondGrace: the signaling stays down longer than the grace
// period: the others see the member leave (Dropped); when it comes back
// its session is gone, and the SDK joins its room again by itself
// (JoinTypeReconnected). The rejoined member then hears what changed
// while it was away, and only that: carol, who left meanwhile, leaves
// (Dropped: her reason was lost with the session); dave, who came, joins;
// alice, there all along, is not announced again.
func TestOutageBeyondGrace(t *testing.T) {
	srv := parleytest.NewServer(t, parleytest.WithConfig(func(c *server.Config) { c.GracePeriod = 300 * time.Millisecond }))
	proxy := newCutProxy(t, srv)
	alice := joined(t, srv, "room1", "alice", "")
	carol := joined(t, srv, "room1", "carol", "")
	requireJoined(t, alice.rec, carol.info)
	requireJoined(t, carol.rec, alice.info)
	bob := newPeerAt(t, srv, parley.EngineConfig{AppID: srv.AppID, ServerURL: proxy.URL()}, "room1", parley.UserInfo{UserID: "bob"})
	bob.join(t)
	requireJoined(t, bob.rec, alice.info)
	requireJoined(t, bob.rec, carol.info)
	requireJoined(t, alice.rec, bob.info)

	proxy.block()
	proxy.cut()
	requireLeave(t, alice.rec, "bob", parley.UserOfflineReasonDropped) // after the grace period
	require.NoError(t, carol.room.LeaveRoom())
	requireLeave(t, alice.rec, "carol", parley.UserOfflineReasonQuit)
	dave := joined(t, srv, "room1", "dave", "")
	requireJoined(t, alice.rec, dave.info)
	proxy.unblock()
	sc := requireState(t, bob.rec, 0)
	require.Equal(t, parley.JoinTypeReconnected, sc.Info.JoinType)
	requireLeave(t, bob.rec, "carol", parley.UserOfflineReasonDropped)
	requireJoined(t, bob.rec, dave.info)
	requireJoined(t, alice.rec, bob.info)
	// Nothing about alice: a newcomer is bob's next event.
	erin := joined(t, srv, "room1", "erin", "")
	requireJoined(t, bob.rec, erin.info)
}

// TestTokenRejected: every bad token gives state -1000 and joins nothing:
// the room stays out (LeaveRoom reports zero stats) and the members there
// hear nothing.
func TestTokenRejected(t *testing.T) {
	srv := parleytest.NewServer(t)
	day := time.Now().Add(24 * time.Hour)
	cases := []struct {
		name  string
		token func(roomID, userID string) string
	}{
		{"empty", func(string, string) string { return "" }},
		{"garbage", func(string, string) string { return "not a token at all" }},
		{"wrong key", func(roomID, userID string) string {
			return mintToken(t, srv.AppID, "not-the-app-key", roomID, userID, day)
		}},
		{"unknown app", func(roomID, userID string) string {
			return mintToken(t, strings.Repeat("a", 24), srv.AppKey, roomID, userID, day)
		}},
		{"another room", func(_, userID string) string { return srv.Token("another-room", userID) }},
		{"another user", func(roomID, _ string) string { return srv.Token(roomID, "mallory") }},
		{"login token", func(_, userID string) string { return srv.LoginToken(userID) }},
		{"expired", func(roomID, userID string) string {
			return srv.TokenExpiring(roomID, userID, time.Now().Add(-time.Minute))
		}},
		{"truncated", func(roomID, userID string) string {
			raw := srv.Token(roomID, userID)
			return raw[:len(raw)-8]
		}},
		{"one byte changed", func(roomID, userID string) string {
			raw := []byte(srv.Token(roomID, userID))
			i := len(raw) - 10
			if raw[i] == 'A' {
				raw[i] = 'B'
			} else {
				raw[i] = 'A'
			}
			return string(raw)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			roomID := "room-" + strings.ReplaceAll(c.name, " ", "-")
			alice := joined(t, srv, roomID, "alice", "")

			bob := newMember(t, srv, roomID, parley.UserInfo{UserID: "bob"})
			require.NoError(t, bob.room.JoinRoom(c.token(roomID, "bob"), bob.info, parley.RoomConfig{}))
			sc := requireState(t, bob.rec, int(parley.ErrorCodeInvalidToken))
			require.Equal(t, roomID, sc.RoomID)
			require.Equal(t, "bob", sc.UserID)

			requireNoRoomEvent(t, bob.room, bob.rec)
			requireNothingBefore(t, srv, alice, "carol")
			// A good token still works after a bad one.
			bob.join(t)
		})
	}
}

// TestWildcardRoomToken: a token for room "*" is good for any room.
func TestWildcardRoomToken(t *testing.T) {
	srv := parleytest.NewServer(t)
	expire := time.Now().Add(time.Hour)
	tok := token.New(srv.AppID, srv.AppKey, "*", "alice")
	tok.ExpireTime(expire)
	tok.AddPrivilege(token.PrivPublishStream, expire)
	tok.AddPrivilege(token.PrivSubscribeStream, expire)
	raw, err := tok.Serialize()
	require.NoError(t, err)

	bob := joined(t, srv, "room1", "bob", "")
	alice := newEngine(t, srv, nil)
	for _, roomID := range []string{"room1", "room2"} {
		rec := parleytest.NewRecorder()
		room, err := alice.CreateRoom(roomID, rec)
		require.NoError(t, err)
		require.NoError(t, room.JoinRoom(raw, parley.UserInfo{UserID: "alice"}, parley.RoomConfig{}))
		requireState(t, rec, 0)
	}
	requireJoined(t, bob.rec, parley.UserInfo{UserID: "alice"})

	// The wildcard is for rooms, not users.
	mallory := newMember(t, srv, "room1", parley.UserInfo{UserID: "mallory"})
	require.NoError(t, mallory.room.JoinRoom(raw, mallory.info, parley.RoomConfig{}))
	requireState(t, mallory.rec, int(parley.ErrorCodeInvalidToken))
}

// TestDuplicateUser: the same user ID joining the same room from another
// Engine takes over: the first is removed with -1004, the others see the
// user drop and join again, the second is joined.
func TestDuplicateUser(t *testing.T) {
	srv := parleytest.NewServer(t)
	alice1 := joined(t, srv, "room1", "alice", "first")
	bob := joined(t, srv, "room1", "bob", "")
	requireJoined(t, bob.rec, alice1.info)
	requireJoined(t, alice1.rec, bob.info)

	alice2 := newMember(t, srv, "room1", parley.UserInfo{UserID: "alice", ExtraInfo: "second"})
	alice2.join(t)
	requireJoined(t, alice2.rec, bob.info)

	sc := requireState(t, alice1.rec, int(parley.ErrorCodeDuplicateLogin))
	require.Equal(t, "alice", sc.UserID)
	requireLeave(t, bob.rec, "alice", parley.UserOfflineReasonDropped)
	requireJoined(t, bob.rec, alice2.info)

	// The first is out of the room; the second stays in it.
	requireNoRoomEvent(t, alice1.room, alice1.rec)
	carol := requireNothingBefore(t, srv, bob, "carol")
	requireJoined(t, carol.rec, bob.info) // join order: alice's second join came after bob
	requireJoined(t, carol.rec, alice2.info)
	requireJoined(t, alice2.rec, carol.info)
}

// TestOneUserIDPerEngine: an Engine has one user ID across its rooms. A
// join with another user ID fails with -1014 on that room only; the same
// user ID joins any number of rooms, each on a transport of its own.
func TestOneUserIDPerEngine(t *testing.T) {
	srv := parleytest.NewServer(t)
	e := newEngine(t, srv, nil)
	rooms := map[string]*parley.Room{}
	recs := map[string]*parleytest.Recorder{}
	for _, id := range []string{"room1", "room2", "room3"} {
		recs[id] = parleytest.NewRecorder()
		r, err := e.CreateRoom(id, recs[id])
		require.NoError(t, err)
		rooms[id] = r
	}
	alice := parley.UserInfo{UserID: "alice"}
	require.NoError(t, rooms["room1"].JoinRoom(srv.Token("room1", "alice"), alice, parley.RoomConfig{}))
	requireState(t, recs["room1"], 0)

	require.NoError(t, rooms["room2"].JoinRoom(srv.Token("room2", "bob"), parley.UserInfo{UserID: "bob"}, parley.RoomConfig{}))
	sc := requireState(t, recs["room2"], int(parley.ErrorCodeUserIDDifferent))
	require.Equal(t, "bob", sc.UserID)
	requireNoRoomEvent(t, rooms["room2"], recs["room2"])

	// The same user ID joins two more rooms; observers in each see alice.
	for _, id := range []string{"room2", "room3"} {
		obs := joined(t, srv, id, "obs-"+id, "")
		require.NoError(t, rooms[id].JoinRoom(srv.Token(id, "alice"), alice, parley.RoomConfig{}))
		requireState(t, recs[id], 0)
		requireJoined(t, recs[id], obs.info)
		requireJoined(t, obs.rec, alice)
	}

	// One PeerConnection for the Engine: when it dies, every room comes
	// back on the next one, and the observers hear nothing of it.
	obs := joined(t, srv, "room1", "obs-room1", "")
	requireJoined(t, obs.rec, alice)
	requireJoined(t, recs["room1"], obs.info)
	require.NoError(t, parley.CrashRoomTransport(rooms["room2"]))
	for _, id := range []string{"room1", "room2", "room3"} {
		sc = requireState(t, recs[id], 0) // the SDK rebuilt it
		require.Equal(t, parley.JoinTypeReconnected, sc.Info.JoinType, id)
	}
	// The observers were there all along: no event about them, and the
	// rooms still count them.
	for _, id := range []string{"room1", "room2", "room3"} {
		require.NoError(t, rooms[id].LeaveRoom())
		require.Equal(t, 2, requireLeft(t, recs[id]).UserCount, "room %s still joined", id)
	}
	requireLeave(t, obs.rec, "alice", parley.UserOfflineReasonQuit)
}

// TestIllegalIDs: illegal room IDs, user IDs and extra info are refused
// synchronously with ErrInvalidArgument and no callback; 200 bytes of
// extra info are fine and arrive intact.
func TestIllegalIDs(t *testing.T) {
	srv := parleytest.NewServer(t)
	e := newEngine(t, srv, nil)
	for _, id := range []string{"", "a b", "*", "room/1", "röom", strings.Repeat("r", 129)} {
		r, err := e.CreateRoom(id, nil)
		require.ErrorIs(t, err, parley.ErrInvalidArgument, "room ID %q", id)
		require.Nil(t, r)
	}
	r, err := e.CreateRoom(strings.Repeat("r", 128), nil)
	require.NoError(t, err, "a 128-byte room ID is legal")
	require.NoError(t, r.Close())

	// Two-byte runes: byte counts, not rune counts, are what is limited.
	info200 := strings.Repeat("é", 100)
	info201 := info200 + "x"
	require.Len(t, info200, 200)

	obs := joined(t, srv, "room1", "obs", "")
	rec := parleytest.NewRecorder()
	room, err := e.CreateRoom("room1", rec)
	require.NoError(t, err)
	bad := []parley.UserInfo{
		{UserID: ""},
		{UserID: "a b"},
		{UserID: "*"},
		{UserID: "user:1"},
		{UserID: strings.Repeat("u", 129)},
		{UserID: "alice", ExtraInfo: info201},
	}
	for _, u := range bad {
		tok := srv.Token("room1", "alice")
		if u.UserID != "" {
			tok = srv.Token("room1", u.UserID)
		}
		err := room.JoinRoom(tok, u, parley.RoomConfig{})
		require.ErrorIs(t, err, parley.ErrInvalidArgument, "user %q, %d bytes of extra info", u.UserID, len(u.ExtraInfo))
	}
	requireNoRoomEvent(t, room, rec)

	alice := parley.UserInfo{UserID: strings.Repeat("u", 128), ExtraInfo: info200}
	require.NoError(t, room.JoinRoom(srv.Token("room1", alice.UserID), alice, parley.RoomConfig{}))
	requireState(t, rec, 0)
	requireJoined(t, rec, obs.info)
	requireJoined(t, obs.rec, alice)
}

// TestAlreadyInRoom: a second JoinRoom while joining or joined returns
// ErrAlreadyInRoom and changes nothing.
func TestAlreadyInRoom(t *testing.T) {
	srv := parleytest.NewServer(t)
	m := newMember(t, srv, "room1", parley.UserInfo{UserID: "alice"})
	tok := srv.Token("room1", "alice")
	require.NoError(t, m.room.JoinRoom(tok, m.info, parley.RoomConfig{}))
	require.ErrorIs(t, m.room.JoinRoom(tok, m.info, parley.RoomConfig{}), parley.ErrAlreadyInRoom, "while joining")
	requireState(t, m.rec, 0)
	require.ErrorIs(t, m.room.JoinRoom(tok, m.info, parley.RoomConfig{}), parley.ErrAlreadyInRoom, "while joined")
	require.ErrorIs(t, m.room.JoinRoom(srv.Token("room1", "bob"), parley.UserInfo{UserID: "bob"}, parley.RoomConfig{}),
		parley.ErrAlreadyInRoom, "while joined, as another user")

	// Neither refused call produced a callback: the leave's is next, and
	// the room was joined once, alone.
	require.NoError(t, m.room.LeaveRoom())
	require.Equal(t, 1, requireLeft(t, m.rec).UserCount)
}

// TestEngineClose: Close is idempotent, Done is closed only after it, and
// every method afterwards reports the Engine closed.
func TestEngineClose(t *testing.T) {
	srv := parleytest.NewServer(t)
	obs := joined(t, srv, "room1", "obs", "")
	m := joined(t, srv, "room1", "alice", "")
	requireJoined(t, m.rec, obs.info)
	requireJoined(t, obs.rec, m.info)
	idle, err := m.e.CreateRoom("room2", nil)
	require.NoError(t, err)

	select {
	case <-m.e.Done():
		t.Fatal("Done closed before Close")
	default:
	}
	require.NoError(t, m.e.Close())
	require.NoError(t, m.e.Close())
	waitDone(t, m.e)
	requireLeave(t, obs.rec, "alice", parley.UserOfflineReasonQuit)

	_, err = m.e.CreateRoom("room3", nil)
	require.ErrorIs(t, err, parley.ErrEngineClosed)
	for _, r := range []*parley.Room{m.room, idle} {
		require.ErrorIs(t, r.JoinRoom(srv.Token(r.RoomID(), "alice"), m.info, parley.RoomConfig{}), parley.ErrEngineClosed)
		require.ErrorIs(t, r.LeaveRoom(), parley.ErrEngineClosed)
		require.ErrorIs(t, r.UpdateToken(srv.Token(r.RoomID(), "alice")), parley.ErrEngineClosed)
		require.NoError(t, r.Close())
	}
	require.NoError(t, m.e.Close())
}

// TestCloseFromHandler: an Engine closes from inside its own callback; the
// others see the member quit and Done closes.
func TestCloseFromHandler(t *testing.T) {
	srv := parleytest.NewServer(t)
	obs := joined(t, srv, "room1", "obs", "")

	m := newMember(t, srv, "room1", parley.UserInfo{UserID: "alice"})
	closed := make(chan error, 1)
	m.rec.SetHook(func(ev parleytest.Event) {
		if st, ok := ev.(parleytest.RoomStateChanged); ok && st.State == 0 {
			closed <- m.e.Close()
		}
	})
	require.NoError(t, m.room.JoinRoom(srv.Token("room1", "alice"), m.info, parley.RoomConfig{}))
	requireState(t, m.rec, 0)
	select {
	case err := <-closed:
		require.NoError(t, err)
	case <-time.After(waitTimeout):
		t.Fatal("Close from the handler did not return")
	}
	waitDone(t, m.e)
	requireJoined(t, obs.rec, m.info)
	requireLeave(t, obs.rec, "alice", parley.UserOfflineReasonQuit)
	require.ErrorIs(t, m.room.LeaveRoom(), parley.ErrEngineClosed)
}

// TestRoomClose: Room.Close leaves (the others see Quit), is idempotent,
// and the closed Room refuses everything with ErrRoomClosed; the Engine
// goes on and can create the room again.
func TestRoomClose(t *testing.T) {
	srv := parleytest.NewServer(t)
	obs := joined(t, srv, "room1", "obs", "")
	m := joined(t, srv, "room1", "alice", "")
	requireJoined(t, m.rec, obs.info)
	requireJoined(t, obs.rec, m.info)

	require.NoError(t, m.room.Close())
	require.NoError(t, m.room.Close())
	requireLeave(t, obs.rec, "alice", parley.UserOfflineReasonQuit)
	tok := srv.Token("room1", "alice")
	require.ErrorIs(t, m.room.JoinRoom(tok, m.info, parley.RoomConfig{}), parley.ErrRoomClosed)
	require.ErrorIs(t, m.room.LeaveRoom(), parley.ErrRoomClosed)
	require.ErrorIs(t, m.room.UpdateToken(tok), parley.ErrRoomClosed)
	require.Equal(t, "room1", m.room.RoomID())

	// The closed room's handler hears nothing more, not even of a new
	// member of the room it left.
	rec := parleytest.NewRecorder()
	again, err := m.e.CreateRoom("room1", rec)
	require.NoError(t, err)
	require.NoError(t, again.JoinRoom(tok, m.info, parley.RoomConfig{}))
	requireState(t, rec, 0)
	requireJoined(t, rec, obs.info)
	requireJoined(t, obs.rec, m.info)
	requireNoEvent(t, m.rec) // the closed room got nothing
}

// TestCreateRoomReplaces: creating a room ID the Engine already has closes
// the earlier Room, which leaves.
func TestCreateRoomReplaces(t *testing.T) {
	srv := parleytest.NewServer(t)
	obs := joined(t, srv, "room1", "obs", "")
	m := joined(t, srv, "room1", "alice", "")
	requireJoined(t, m.rec, obs.info)
	requireJoined(t, obs.rec, m.info)

	_, err := m.e.CreateRoom("room1", nil)
	require.NoError(t, err)
	requireLeave(t, obs.rec, "alice", parley.UserOfflineReasonQuit)
	require.ErrorIs(t, m.room.LeaveRoom(), parley.ErrRoomClosed)
}

// TestServerShutdown: a server that shuts down tells every session it is
// going away (GoAway). That is not a state the SDK gives up on: the server
// may come back (a restart, a deploy). The Engines report Reconnecting,
// and every room, of both Engines, stays with its user: no room state but
// the warning -2001 until a server answers on the address again, then
// state 0 with JoinTypeReconnected in each. An Engine then still closes
// cleanly.
func TestServerShutdown(t *testing.T) {
	first, mint := startServerAt(t, "127.0.0.1:0", 0)
	addr, udp := first.Addr().String(), first.UDPAddr().(*net.UDPAddr).Port
	cfg := parley.EngineConfig{AppID: restartAppID, ServerURL: first.URL()}
	enter := func(p *peer, roomID string) *parleytest.Recorder {
		rec := parleytest.NewRecorder()
		room, err := p.e.CreateRoom(roomID, rec)
		require.NoError(t, err)
		require.NoError(t, room.JoinRoom(mint(roomID, p.user), p.info, parley.RoomConfig{}))
		requireState(t, rec, 0)
		return rec
	}
	alice := newPeerAt(t, nil, cfg, "", parley.UserInfo{UserID: "alice"})
	bob := newPeerAt(t, nil, cfg, "", parley.UserInfo{UserID: "bob"})
	alice1, alice2 := enter(alice, "room1"), enter(alice, "room2")
	bob1 := enter(bob, "room1")
	requireJoined(t, bob1, alice.info)
	requireJoined(t, alice1, bob.info)

	require.NoError(t, first.Shutdown(context.Background()))
	alice.eng.WaitState(t, parley.ConnectionStateReconnecting)
	bob.eng.WaitState(t, parley.ConnectionStateReconnecting)
	startServerAt(t, addr, udp)
	for _, rec := range []*parleytest.Recorder{alice1, alice2, bob1} {
		requireRejoined(t, rec)
	}
	alice.eng.WaitState(t, parley.ConnectionStateReconnected)
	bob.eng.WaitState(t, parley.ConnectionStateReconnected)
	for _, m := range []*peer{alice, bob} {
		require.NoError(t, m.e.Close())
		waitDone(t, m.e)
	}
}

// TestJoinWithoutServer: a join that cannot reach a server fails with a
// room state, not a hang, and the Engine reports Disconnected. The address
// answers HTTP but not WebSocket, and stays bound for the whole test.
func TestJoinWithoutServer(t *testing.T) {
	web := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(web.Close)
	eng := parleytest.NewRecorder()
	e := newEngineFor(t, parley.EngineConfig{
		AppID:     strings.Repeat("a", 24),
		ServerURL: "ws" + strings.TrimPrefix(web.URL, "http") + "/rtc",
	}, eng)
	rec := parleytest.NewRecorder()
	room, err := e.CreateRoom("room1", rec)
	require.NoError(t, err)
	require.NoError(t, room.JoinRoom("any token", parley.UserInfo{UserID: "alice"}, parley.RoomConfig{}))
	sc := requireState(t, rec, int(parley.ErrorCodeJoinRoom))
	require.Equal(t, parley.RoomStateInfo{}, sc.Info)
	eng.WaitState(t, parley.ConnectionStateDisconnected)
	requireNoRoomEvent(t, room, rec)
}
