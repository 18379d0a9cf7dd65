package parley_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
)

// TestNopHandlers: an Engine and a Room whose handlers are the Nop
// handlers (alice) or nil (bob) go through every kind of event, each one
// delivered to a method that does nothing: connection states, login,
// status, messages and results in and outside the room, server params and
// server messages, the token warning, members joining and leaving, and
// their own leave and logout. Nothing panics (a panic on the dispatcher
// would end the test binary), and both keep working throughout: carol,
// with a Recorder, gets each one's messages at the end, sees them leave,
// and their Engines close.
func TestNopHandlers(t *testing.T) {
	srv := parleytest.NewServer(t)
	carol := joined(t, srv, "nop", "carol", "")
	carol.login(t)

	type nopPeer struct {
		e    *parley.Engine
		room *parley.Room
		user string
	}
	start := func(user string, eh parley.EngineEventHandler, rh parley.RoomEventHandler) nopPeer {
		e := newEngine(t, srv, eh)
		room, err := e.CreateRoom("nop", rh)
		require.NoError(t, err)
		// A token whose join privilege ends within 30 s: OnTokenWillExpire
		// comes at once (the test ends long before the token does).
		require.NoError(t, room.JoinRoom(srv.TokenExpiring("nop", user, time.Now().Add(25*time.Second)), parley.UserInfo{UserID: user}, parley.RoomConfig{}))
		requireJoined(t, carol.rec, parley.UserInfo{UserID: user})
		// Carol hears of the member before its own Engine has its state 0,
		// which a Nop handler cannot report: until then a send fails
		// (NotJoin) and reaches nobody. The room is usable once a probe
		// reaches carol.
		isProbe := func(ev parleytest.Event) bool {
			m, ok := ev.(parleytest.Message)
			return ok && m.From == user && string(m.Payload) == "probe"
		}
		require.Eventually(t, func() bool {
			room.SendUserMessage("carol", "probe", parley.MessageConfigReliableOrdered)
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			_, err := carol.rec.NextWhereContext(ctx, isProbe)
			return err == nil
		}, waitTimeout, time.Millisecond, "%s's room usable", user)
		require.NoError(t, e.Login(srv.LoginToken(user), user))
		return nopPeer{e, room, user}
	}
	alice := start("alice", parley.NopEngineEventHandler{}, parley.NopRoomEventHandler{})
	bob := start("bob", nil, nil)

	// The logins are in once carol sees them online, and once their own
	// Engines know it: a login-only call no longer returns ErrNotLoggedIn
	// (the server answers the login before its Engine reads the answer).
	for _, p := range []nopPeer{alice, bob} {
		require.Eventually(t, func() bool { return carol.status(t, p.user) == parley.UserOnlineStatusOnline },
			waitTimeout, 20*time.Millisecond, "%s's login", p.user)
		other := map[string]string{"alice": "bob", "bob": "alice"}[p.user]
		require.Eventually(t, func() bool { return p.e.GetPeerOnlineStatus(other) == nil },
			waitTimeout, 5*time.Millisecond, "%s's Engine logged in", p.user)
	}
	for _, p := range []nopPeer{alice, bob} {
		other := map[string]string{"alice": "bob", "bob": "alice"}[p.user]
		p.room.SendUserMessage(other, "hi", parley.MessageConfigReliableOrdered)
		p.room.SendUserBinaryMessage(other, []byte{0, 1}, parley.MessageConfigReliableOrdered)
		p.room.SendRoomMessage("all")
		p.room.SendRoomBinaryMessage([]byte{2})
		p.room.SendUserMessage("nobody", "lost", parley.MessageConfigUnreliableOrdered) // a failure result
		p.e.SendUserMessageOutsideRoom(other, "out", parley.MessageConfigReliableOrdered)
		p.e.SendUserBinaryMessageOutsideRoom(other, []byte{3}, parley.MessageConfigReliableOrdered)
		require.NoError(t, p.e.SetServerParams("sig", "http://127.0.0.1:1/none"))
		p.e.SendServerMessage("to nobody")
	}
	// Still working: a last message from each reaches carol in the room and
	// outside it, after everything above (one sender's reliable messages
	// keep their order).
	for _, p := range []nopPeer{alice, bob} {
		p.room.SendUserMessage("carol", "last from "+p.user, parley.MessageConfigReliableOrdered)
		p.e.SendUserMessageOutsideRoom("carol", "last outside from "+p.user, parley.MessageConfigReliableOrdered)
	}
	from := func(rec *parleytest.Recorder, user string) parleytest.Message { // the next message from user
		return rec.NextWhere(t, "message from "+user, func(ev parleytest.Event) bool {
			m, ok := ev.(parleytest.Message)
			return ok && m.From == user && string(m.Payload) != "probe" // a late probe
		}).(parleytest.Message)
	}
	for _, p := range []nopPeer{alice, bob} {
		require.Equal(t, roomMsg(p.user, true, false, []byte("all")), from(carol.rec, p.user))
		require.Equal(t, roomMsg(p.user, true, true, []byte{2}), from(carol.rec, p.user))
		require.Equal(t, roomMsg(p.user, false, false, []byte("last from "+p.user)), from(carol.rec, p.user))
		require.Equal(t, outsideMsg(p.user, false, []byte("last outside from "+p.user)), from(carol.eng, p.user))
	}
	// Their leaves and logouts go to the Nop and nil handlers too.
	for _, p := range []nopPeer{alice, bob} {
		require.NoError(t, p.room.LeaveRoom())
		require.NoError(t, p.e.Logout())
		carol.rec.WaitUserLeave(t, p.user)
		require.NoError(t, p.e.Close())
		waitDone(t, p.e)
	}
}
