package parley_test

// End-to-end tests of the login session: Login, Logout, UpdateLoginToken,
// duplicate login and GetPeerOnlineStatus, against a real parleytest
// server and real Engines over loopback. Every wait ends on an event;
// waitTimeout only guards against a hang.

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
	"github.com/parleyhq/parley/server"
)

// --- Login ---------------------------------------------------------------

func TestLoginSuccess(t *testing.T) {
	srv := parleytest.NewServer(t)
	a := newLoginPeer(t, srv, "alice")
	require.NoError(t, a.e.Login(srv.LoginToken("alice"), "alice"))
	r := a.requireLogin(t, "alice", parley.LoginErrorCodeSuccess)
	require.Positive(t, r.Elapsed, "OnLoginResult elapsed of a login over the network")
	a.quiet(t)

	obs := loggedIn(t, srv, "observer")
	require.Equal(t, parley.UserOnlineStatusOnline, obs.status(t, "alice"))
}

// TestLoginFailures logs in with each kind of bad token or user ID: the
// result is InvalidToken or InvalidUserID, the Engine is not logged in
// (locally nor on the server), and it logs in afterwards with a good token.
func TestLoginFailures(t *testing.T) {
	srv := parleytest.NewServer(t)
	obs := loggedIn(t, srv, "observer")

	const otherApp = "0123456789abcdef01234567" // 24 characters, unknown to srv
	require.Len(t, otherApp, 24)
	require.NotEqual(t, srv.AppID, otherApp)
	day := time.Now().Add(24 * time.Hour)

	cases := []struct {
		name  string
		user  string // the user ID passed to Login
		token func(user string) string
		code  parley.LoginErrorCode
		retry string // the user ID of the login that must then succeed
	}{
		{"garbage token", "u-garbage", func(string) string { return "not a token at all" },
			parley.LoginErrorCodeInvalidToken, ""},
		{"empty token", "u-empty", func(string) string { return "" },
			parley.LoginErrorCodeInvalidToken, ""},
		{"wrong key", "u-key", func(u string) string { return mintToken(t, srv.AppID, "not-the-app-key", "", u, day) },
			parley.LoginErrorCodeInvalidToken, ""},
		{"another user's login token", "u-other", func(string) string { return srv.LoginToken("mallory") },
			parley.LoginErrorCodeInvalidToken, ""},
		{"room token", "u-room", func(u string) string { return srv.Token("room", u) },
			parley.LoginErrorCodeInvalidToken, ""},
		{"expired login token", "u-expired", func(u string) string {
			return srv.TokenExpiring("", u, time.Now().Add(-time.Hour))
		}, parley.LoginErrorCodeInvalidToken, ""},
		{"token for another app", "u-app", func(u string) string { return mintToken(t, otherApp, srv.AppKey, "", u, day) },
			parley.LoginErrorCodeInvalidToken, ""},
		{"empty user ID", "", func(string) string { return srv.LoginToken("") },
			parley.LoginErrorCodeInvalidUserID, "u-was-empty"},
		{"user ID with a space", "bad user", func(u string) string { return srv.LoginToken(u) },
			parley.LoginErrorCodeInvalidUserID, "u-was-space"},
		{"user ID of 129 bytes", strings.Repeat("a", 129), func(u string) string { return srv.LoginToken(u) },
			parley.LoginErrorCodeInvalidUserID, "u-was-long"},
		{"non-ASCII user ID", "ユーザー", func(u string) string { return srv.LoginToken(u) },
			parley.LoginErrorCodeInvalidUserID, "u-was-unicode"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			retry := tc.retry
			if retry == "" {
				retry = tc.user
			}
			p := newLoginPeer(t, srv, retry)
			require.NoError(t, p.e.Login(tc.token(tc.user), tc.user))
			p.requireLogin(t, tc.user, tc.code)

			// Not logged in, here nor on the server.
			require.ErrorIs(t, p.e.Logout(), parley.ErrNotLoggedIn)
			require.ErrorIs(t, p.e.GetPeerOnlineStatus("observer"), parley.ErrNotLoggedIn)
			id := p.e.SendUserMessageOutsideRoom("observer", "hi", parley.MessageConfigReliableOrdered)
			require.Equal(t, parley.UserMessageSendResultNotLogin, p.sent(t, id))
			require.Equal(t, parley.UserOnlineStatusOffline, obs.status(t, retry))

			// The session stays usable: a good login succeeds.
			p.login(t)
			p.quiet(t)
			require.Equal(t, parley.UserOnlineStatusOnline, obs.status(t, retry))
			id = p.e.SendUserMessageOutsideRoom("observer", "after "+tc.name, parley.MessageConfigReliableOrdered)
			require.Equal(t, parley.UserMessageSendResultSuccess, p.sent(t, id))
			require.Equal(t, outsideMsg(retry, false, []byte("after "+tc.name)), obs.recv(t))
		})
	}
}

func TestLoginAlreadyLoggedInAndLogout(t *testing.T) {
	srv := parleytest.NewServer(t)
	obs := loggedIn(t, srv, "observer")
	a := newLoginPeer(t, srv, "alice")

	require.ErrorIs(t, a.e.Logout(), parley.ErrNotLoggedIn, "Logout before any Login")

	require.NoError(t, a.e.Login(srv.LoginToken("alice"), "alice"))
	require.ErrorIs(t, a.e.Login(srv.LoginToken("alice"), "alice"), parley.ErrAlreadyLoggedIn, "Login while logging in")
	a.requireLogin(t, "alice", parley.LoginErrorCodeSuccess)
	require.ErrorIs(t, a.e.Login(srv.LoginToken("alice"), "alice"), parley.ErrAlreadyLoggedIn, "Login while logged in")
	require.ErrorIs(t, a.e.Login(srv.LoginToken("bob"), "bob"), parley.ErrAlreadyLoggedIn, "Login as another user while logged in")
	a.quiet(t) // exactly one OnLoginResult: nothing else was queued
	require.Equal(t, parley.UserOnlineStatusOnline, obs.status(t, "alice"))

	a.logout(t)
	require.Equal(t, parley.UserOnlineStatusOffline, obs.status(t, "alice"))
	require.ErrorIs(t, a.e.Logout(), parley.ErrNotLoggedIn, "second Logout")
	require.ErrorIs(t, a.e.GetPeerOnlineStatus("observer"), parley.ErrNotLoggedIn, "after Logout")

	a.login(t)
	a.quiet(t)
	require.Equal(t, parley.UserOnlineStatusOnline, obs.status(t, "alice"))
}

// TestLoginAndRoomsAreIndependent: a room needs no login, a login no room.
func TestLoginAndRoomsAreIndependent(t *testing.T) {
	srv := parleytest.NewServer(t)

	// Rooms without a login.
	a, c := newLoginPeer(t, srv, "alice"), newLoginPeer(t, srv, "carol")
	ra, rc := enterBoth(t, "no-login", a, c)
	id := ra.room.SendUserMessage("carol", "in room", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, ra.userSent(t, id))
	require.Equal(t, roomMsg("alice", false, false, []byte("in room")), rc.rec.NextMessage(t))
	id = a.e.SendUserMessageOutsideRoom("carol", "outside", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultNotLogin, a.sent(t, id), "outside a room without a login")
	require.ErrorIs(t, a.e.GetPeerOnlineStatus("carol"), parley.ErrNotLoggedIn)

	// A login without a room.
	b, d := loggedIn(t, srv, "bob"), loggedIn(t, srv, "dave")
	id = b.e.SendUserMessageOutsideRoom("dave", "no room", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, b.sent(t, id))
	require.Equal(t, outsideMsg("bob", false, []byte("no room")), d.recv(t))
	// Being in a room is not being logged in.
	require.Equal(t, parley.UserOnlineStatusOffline, b.status(t, "alice"))
}

// TestLoginWhileInRooms: one Engine is logged in and in rooms at the same
// time with one user ID; a login with another user ID than its rooms' is
// InvalidUserID, and a room with another user ID than its login's is
// UserIDDifferent.
func TestLoginWhileInRooms(t *testing.T) {
	srv := parleytest.NewServer(t)
	a, c := newLoginPeer(t, srv, "alice"), newLoginPeer(t, srv, "carol")
	b := loggedIn(t, srv, "bob")

	a.login(t)
	ra, rc := enterBoth(t, "both", a, c)

	// Both at once, on one Engine.
	id := ra.room.SendUserMessage("carol", "in room", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, ra.userSent(t, id))
	require.Equal(t, roomMsg("alice", false, false, []byte("in room")), rc.rec.NextMessage(t))
	id = a.e.SendUserMessageOutsideRoom("bob", "outside", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, a.sent(t, id))
	require.Equal(t, outsideMsg("alice", false, []byte("outside")), b.recv(t))
	id = b.e.SendUserMessageOutsideRoom("alice", "back", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, b.sent(t, id))
	require.Equal(t, outsideMsg("bob", false, []byte("back")), a.recv(t))

	// A room as another user than the login: UserIDDifferent.
	other := parleytest.NewRecorder()
	r2, err := a.e.CreateRoom("other-user", other)
	require.NoError(t, err)
	require.NoError(t, r2.JoinRoom(srv.Token("other-user", "zed"), parley.UserInfo{UserID: "zed"}, parley.RoomConfig{}))
	requireState(t, other, int(parley.ErrorCodeUserIDDifferent))

	// Logout leaves the rooms alone.
	a.logout(t)
	id = ra.room.SendUserMessage("carol", "still in room", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, ra.userSent(t, id))
	require.Equal(t, roomMsg("alice", false, false, []byte("still in room")), rc.rec.NextMessage(t))

	// The rooms still hold the user ID: a login as someone else is refused.
	require.NoError(t, a.e.Login(srv.LoginToken("bob2"), "bob2"))
	a.requireLogin(t, "bob2", parley.LoginErrorCodeInvalidUserID)
	a.login(t)
	a.quiet(t)

	// An Engine in a room, never logged in, cannot log in as another user.
	d := newLoginPeer(t, srv, "dave")
	d.enter(t, "dave-room")
	require.NoError(t, d.e.Login(srv.LoginToken("erin"), "erin"))
	d.requireLogin(t, "erin", parley.LoginErrorCodeInvalidUserID)
	require.Equal(t, parley.UserOnlineStatusOffline, b.status(t, "erin"))
	d.login(t)
	require.Equal(t, parley.UserOnlineStatusOnline, b.status(t, "dave"))
}

// --- UpdateLoginToken ----------------------------------------------------

func TestUpdateLoginToken(t *testing.T) {
	srv := parleytest.NewServer(t)
	obs := loggedIn(t, srv, "observer")

	t.Run("before any Login", func(t *testing.T) {
		p := newLoginPeer(t, srv, "u-before")
		require.ErrorIs(t, p.e.UpdateLoginToken(srv.LoginToken("u-before")), parley.ErrNotLoggedIn)
		require.ErrorIs(t, p.e.Logout(), parley.ErrNotLoggedIn)
	})

	t.Run("after an invalid token logs in by itself", func(t *testing.T) {
		p := newLoginPeer(t, srv, "u-invalid")
		require.NoError(t, p.e.Login("garbage", "u-invalid"))
		p.requireLogin(t, "u-invalid", parley.LoginErrorCodeInvalidToken)
		require.NoError(t, p.e.UpdateLoginToken(srv.LoginToken("u-invalid")))
		r := p.requireLogin(t, "u-invalid", parley.LoginErrorCodeSuccess) // no Login call
		require.Positive(t, r.Elapsed)
		p.quiet(t)
		require.Equal(t, parley.UserOnlineStatusOnline, obs.status(t, "u-invalid"))
	})

	t.Run("after an expired token, and again after a second bad one", func(t *testing.T) {
		p := newLoginPeer(t, srv, "u-expired")
		require.NoError(t, p.e.Login(srv.TokenExpiring("", "u-expired", time.Now().Add(-time.Minute)), "u-expired"))
		p.requireLogin(t, "u-expired", parley.LoginErrorCodeInvalidToken)
		require.NoError(t, p.e.UpdateLoginToken(srv.Token("a-room", "u-expired")))
		p.requireLogin(t, "u-expired", parley.LoginErrorCodeInvalidToken)
		require.Equal(t, parley.UserOnlineStatusOffline, obs.status(t, "u-expired"))
		require.NoError(t, p.e.UpdateLoginToken(srv.LoginToken("u-expired")))
		p.requireLogin(t, "u-expired", parley.LoginErrorCodeSuccess)
		p.quiet(t)
		require.Equal(t, parley.UserOnlineStatusOnline, obs.status(t, "u-expired"))
	})

	t.Run("while logged in keeps the token", func(t *testing.T) {
		p := loggedIn(t, srv, "u-in")
		require.NoError(t, p.e.UpdateLoginToken(srv.LoginToken("u-in")))
		require.NoError(t, p.e.UpdateLoginToken("even garbage is only kept"))
		p.quiet(t) // no callback, and still logged in
		require.Equal(t, parley.UserOnlineStatusOnline, obs.status(t, "u-in"))
		id := p.e.SendUserMessageOutsideRoom("observer", "still here", parley.MessageConfigReliableOrdered)
		require.Equal(t, parley.UserMessageSendResultSuccess, p.sent(t, id))
		require.Equal(t, outsideMsg("u-in", false, []byte("still here")), obs.recv(t))
	})

	t.Run("after Logout", func(t *testing.T) {
		p := loggedIn(t, srv, "u-out")
		p.logout(t)
		require.ErrorIs(t, p.e.UpdateLoginToken(srv.LoginToken("u-out")), parley.ErrNotLoggedIn)
	})
}

// --- Duplicate login -----------------------------------------------------

func TestLoginDuplicate(t *testing.T) {
	srv := parleytest.NewServer(t)
	a := loggedIn(t, srv, "alice")
	first := loggedIn(t, srv, "bob")

	second := newLoginPeer(t, srv, "bob")
	second.login(t)
	require.Equal(t, parleytest.Logout{Reason: parley.LogoutReasonDuplicateLogin}, expect[parleytest.Logout](t, first.eng))

	// The first Engine is logged out.
	require.ErrorIs(t, first.e.Logout(), parley.ErrNotLoggedIn)
	require.ErrorIs(t, first.e.GetPeerOnlineStatus("alice"), parley.ErrNotLoggedIn)
	id := first.e.SendUserMessageOutsideRoom("alice", "from the old bob", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultNotLogin, first.sent(t, id))

	// Messages to bob reach the second Engine only.
	require.Equal(t, parley.UserOnlineStatusOnline, a.status(t, "bob"))
	id = a.e.SendUserMessageOutsideRoom("bob", "to bob", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, a.sent(t, id))
	bin := payloadOf(300, 7)
	id = a.e.SendUserBinaryMessageOutsideRoom("bob", bin, parley.MessageConfigUnreliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, a.sent(t, id))
	require.Equal(t, outsideMsg("alice", false, []byte("to bob")), second.recv(t))
	require.Equal(t, outsideMsg("alice", true, bin), second.recv(t))

	// Anything the server had sent the first Engine since would come before
	// the answer to its next login, on the same connection.
	require.NoError(t, first.e.Login(srv.LoginToken("carol"), "carol"))
	first.requireLogin(t, "carol", parley.LoginErrorCodeSuccess)
	require.Equal(t, parley.UserOnlineStatusOnline, a.status(t, "bob"))
	require.Equal(t, parley.UserOnlineStatusOnline, a.status(t, "carol"))
	second.quiet(t)
}

// TestLoginUserIDsArePerApp: one server, two apps; the same user ID in
// each is two users: no duplicate login, separate online status, no
// messages across apps, and one app's token does not log in to the other.
func TestLoginUserIDsArePerApp(t *testing.T) {
	const app2, key2 = "app2app2app2app2app2app2", "the-key-of-app-2"
	srv := parleytest.NewServer(t, parleytest.WithConfig(func(c *server.Config) { c.Apps[app2] = key2 }))
	token2 := func(user string) string { return mintToken(t, app2, key2, "", user, time.Now().Add(time.Hour)) }

	x := loggedIn(t, srv, "alice") // app 1
	y := newLoginPeerFor(t, srv, app2, "alice")
	require.NoError(t, y.e.Login(token2("alice"), "alice"))
	y.requireLogin(t, "alice", parley.LoginErrorCodeSuccess)
	x.quiet(t) // no DuplicateLogin
	y.quiet(t)

	// App 1's token on an app 2 Engine, and the other way round.
	z := newLoginPeerFor(t, srv, app2, "carol")
	require.NoError(t, z.e.Login(srv.LoginToken("carol"), "carol"))
	z.requireLogin(t, "carol", parley.LoginErrorCodeInvalidToken)
	w := newLoginPeer(t, srv, "carol")
	require.NoError(t, w.e.Login(token2("carol"), "carol"))
	w.requireLogin(t, "carol", parley.LoginErrorCodeInvalidToken)

	b := loggedIn(t, srv, "bob") // app 1
	require.Equal(t, parley.UserOnlineStatusOffline, y.status(t, "bob"), "bob is in the other app")
	id := y.e.SendUserMessageOutsideRoom("bob", "across apps", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultNoReceiver, y.sent(t, id))

	id = b.e.SendUserMessageOutsideRoom("alice", "same app", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, b.sent(t, id))
	require.Equal(t, outsideMsg("bob", false, []byte("same app")), x.recv(t))
	y.quiet(t) // app 2's alice got nothing

	// Logging out one alice leaves the other online.
	y.logout(t)
	require.Equal(t, parley.UserOnlineStatusOnline, b.status(t, "alice"))
}

// --- GetPeerOnlineStatus -------------------------------------------------

func TestPeerOnlineStatus(t *testing.T) {
	srv := parleytest.NewServer(t)
	a := newLoginPeer(t, srv, "alice")
	require.ErrorIs(t, a.e.GetPeerOnlineStatus("bob"), parley.ErrNotLoggedIn, "before login")
	a.login(t)
	require.ErrorIs(t, a.e.GetPeerOnlineStatus(""), parley.ErrInvalidArgument)
	require.ErrorIs(t, a.e.GetPeerOnlineStatus("no such user"), parley.ErrInvalidArgument)

	require.Equal(t, parley.UserOnlineStatusOnline, a.status(t, "alice"), "yourself")
	require.Equal(t, parley.UserOnlineStatusOffline, a.status(t, "never-logged-in"))
	require.Equal(t, parley.UserOnlineStatusOffline, a.status(t, "bob"), "bob before his login")

	b := loggedIn(t, srv, "bob")
	require.Equal(t, parley.UserOnlineStatusOnline, a.status(t, "bob"))
	require.Equal(t, parley.UserOnlineStatusOnline, b.status(t, "alice"))

	b.logout(t)
	require.Equal(t, parley.UserOnlineStatusOffline, a.status(t, "bob"), "bob after his Logout")
	require.ErrorIs(t, b.e.GetPeerOnlineStatus("alice"), parley.ErrNotLoggedIn, "after Logout")

	b.login(t)
	require.Equal(t, parley.UserOnlineStatusOnline, a.status(t, "bob"), "bob logged in again")
}

// --- Login and Logout in quick succession --------------------------------

// TestLoginLogoutAtOnce calls Login and Logout (and Logout and Login)
// without waiting for the callback in between, as a UI toggle may. Each
// call returned nil, so each gets its one callback, in call order, and the
// last call wins: afterwards the server and the Engine agree on whether the
// user is logged in.
func TestLoginLogoutAtOnce(t *testing.T) {
	srv := parleytest.NewServer(t)
	obs := loggedIn(t, srv, "observer")

	t.Run("Login then Logout", func(t *testing.T) {
		for i := range 5 {
			// A new Engine, connecting for the login, and then one whose
			// connection is up.
			user := "toggle-a" + strconv.Itoa(i)
			p := newLoginPeer(t, srv, user)
			for j := range 2 {
				require.NoError(t, p.e.Login(srv.LoginToken(user), user))
				require.NoError(t, p.e.Logout())
				r := expect[parleytest.LoginResult](t, p.eng)
				require.Equal(t, user, r.UserID)
				require.Equal(t, parleytest.Logout{Reason: parley.LogoutReasonLogout}, expect[parleytest.Logout](t, p.eng))
				require.ErrorIs(t, p.e.Logout(), parley.ErrNotLoggedIn, "round %d.%d", i, j)
				require.Equalf(t, parley.UserOnlineStatusOffline, obs.status(t, user),
					"round %d.%d: the Engine is logged out, the server still has %s logged in", i, j, user)
			}
			// Logged out: a fresh Login succeeds, and is the only result.
			p.login(t)
			p.quiet(t)
			require.Equal(t, parley.UserOnlineStatusOnline, obs.status(t, user))
		}
	})

	t.Run("Logout then Login", func(t *testing.T) {
		user := "toggle-b"
		p := loggedIn(t, srv, user)
		for i := range 10 {
			require.NoError(t, p.e.Logout())
			require.NoError(t, p.e.Login(srv.LoginToken(user), user))
			require.Equal(t, parleytest.Logout{Reason: parley.LogoutReasonLogout}, expect[parleytest.Logout](t, p.eng), "round %d", i)
			p.requireLogin(t, user, parley.LoginErrorCodeSuccess)
			p.quiet(t)
			require.Equalf(t, parley.UserOnlineStatusOnline, obs.status(t, user),
				"round %d: the Engine is logged in, the server has %s logged out", i, user)
		}
	})
}

// TestCloseWhileLoginOperationsWait: Close returns at once while a Login
// and a SetServerParams wait for their answers, which they would need a
// lock Close holds to report. A stalled proxy holds the answers back
// without closing anything, so the operations really are waiting when
// Close is called: each has its request held on a connection that is up.
// Close must not wait for them, not for the message timeout (a minute
// here) nor for the 10 s dial timeout.
func TestCloseWhileLoginOperationsWait(t *testing.T) {
	const prompt = 5 * time.Second // well under the 10 s dial timeout
	srv := parleytest.NewServer(t)
	closeNow := func(t *testing.T, e *parley.Engine, what string) {
		t.Helper()
		start := time.Now()
		closed := make(chan error, 1)
		go func() { closed <- e.Close() }()
		select {
		case err := <-closed:
			require.NoError(t, err)
		case <-time.After(waitTimeout):
			t.Fatalf("Close hung with %s in flight", what)
		}
		require.Less(t, time.Since(start), prompt, "Close waited for %s", what)
		waitDone(t, e)
	}
	// closedByTest is newPeerAt without the Close in t.Cleanup: a Close
	// that hangs must fail the test, not hang its cleanup too.
	closedByTest := func(t *testing.T, srv *parleytest.Server, cfg parley.EngineConfig, user string) *peer {
		p := &peer{srv: srv, eng: parleytest.NewRecorder(), user: user, info: parley.UserInfo{UserID: user}}
		e, err := parley.NewEngine(cfg, p.eng, parley.WithLoopbackOnly(), parley.WithMessageTimeout(time.Minute))
		require.NoError(t, err)
		p.e = e
		return p
	}
	for range 3 {
		proxy := newCutProxy(t, srv)
		cfg := parley.EngineConfig{AppID: srv.AppID, ServerURL: proxy.URL()}

		t.Run("Login", func(t *testing.T) {
			p := closedByTest(t, srv, cfg, "alice")
			p.login(t) // and out again: the connection stays up
			p.logout(t)
			proxy.stall()
			defer proxy.flow()
			require.NoError(t, p.e.Login(srv.LoginToken("alice"), "alice"))
			proxy.waitHeld(t) // the request is on its way, and stuck
			closeNow(t, p.e, "a Login")
		})

		t.Run("SetServerParams", func(t *testing.T) {
			p := closedByTest(t, srv, cfg, "bob")
			p.login(t)
			proxy.stall()
			defer proxy.flow()
			require.NoError(t, p.e.SetServerParams("sig", "http://127.0.0.1:1/hook"))
			proxy.waitHeld(t) // the request is on its way, and stuck
			closeNow(t, p.e, "a SetServerParams")
		})
	}
}
