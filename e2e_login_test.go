package parley_test

// End-to-end tests of the login session and of messages outside rooms:
// Login, Logout, UpdateLoginToken, duplicate login, GetPeerOnlineStatus,
// SendUserMessageOutsideRoom and its binary twin, SetServerParams and
// server messages, against a real parleytest server, real Engines over
// loopback and, for server messages, a real net/http/httptest application
// server. Every wait ends on an event; lgWait only guards against a hang.

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
	"github.com/parleyhq/parley/server"
	"github.com/parleyhq/parley/token"
)

// lgWait guards every wait of this file against a hang; a healthy run ends
// each wait on an event long before it.
const lgWait = 15 * time.Second

// Engine events, as an lgEngineRec records them.
type (
	lgLogin struct {
		UserID  string
		Code    parley.LoginErrorCode
		Elapsed time.Duration
	}
	lgLogout struct{ Reason parley.LogoutReason }
	lgStatus struct {
		Peer   string
		Status parley.UserOnlineStatus
	}
	lgRecv struct { // a message received outside rooms
		From    string
		Binary  bool
		Payload []byte
	}
	lgSent struct { // an outside-room send result
		ID     int64
		Result parley.UserMessageSendResult
	}
	lgParams     struct{ Code int }
	lgServerSent struct {
		ID     int64
		Result parley.UserMessageSendResult
		Ack    []byte
	}
)

func (r lgRecv) GoString() string {
	return fmt.Sprintf("lgRecv{From:%q Binary:%v Payload:%s}", r.From, r.Binary, lgClip(r.Payload))
}

func (r lgServerSent) GoString() string {
	return fmt.Sprintf("lgServerSent{ID:%d Result:%v Ack:%s}", r.ID, r.Result, lgClip(r.Ack))
}

// lgClip shows a payload, abridged when long.
func lgClip(b []byte) string {
	if len(b) <= 64 {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("%q…(%d bytes)", b[:64], len(b))
}

// lgEngineRec records every engine event but connection states, in order,
// on one channel, large enough that the dispatcher never waits on a test.
type lgEngineRec struct{ ev chan any }

func newLgEngineRec() *lgEngineRec { return &lgEngineRec{ev: make(chan any, 4096)} }

func (r *lgEngineRec) OnConnectionStateChanged(parley.ConnectionState) {}
func (r *lgEngineRec) OnLoginResult(userID string, code parley.LoginErrorCode, elapsed time.Duration) {
	r.ev <- lgLogin{userID, code, elapsed}
}
func (r *lgEngineRec) OnLogout(reason parley.LogoutReason) { r.ev <- lgLogout{reason} }
func (r *lgEngineRec) OnGetPeerOnlineStatus(peer string, status parley.UserOnlineStatus) {
	r.ev <- lgStatus{peer, status}
}
func (r *lgEngineRec) OnUserMessageReceivedOutsideRoom(userID, message string) {
	r.ev <- lgRecv{userID, false, []byte(message)}
}
func (r *lgEngineRec) OnUserBinaryMessageReceivedOutsideRoom(userID string, message []byte) {
	r.ev <- lgRecv{userID, true, message}
}
func (r *lgEngineRec) OnUserMessageSendResultOutsideRoom(msgID int64, result parley.UserMessageSendResult) {
	r.ev <- lgSent{msgID, result}
}
func (r *lgEngineRec) OnServerParamsSetResult(code int) { r.ev <- lgParams{code} }
func (r *lgEngineRec) OnServerMessageSendResult(msgID int64, result parley.UserMessageSendResult, ack []byte) {
	r.ev <- lgServerSent{msgID, result, ack}
}

// lgNext requires the next event on ev to be a T and returns it.
func lgNext[T any](t *testing.T, ev <-chan any) T {
	t.Helper()
	var zero T
	select {
	case e := <-ev:
		v, ok := e.(T)
		require.Truef(t, ok, "want a %T event, got %#v", zero, e)
		return v
	case <-time.After(lgWait):
		t.Fatalf("no %T event within %v", zero, lgWait)
		return zero
	}
}

// lgPeer is one Engine with the user ID it logs in (and joins rooms) as.
type lgPeer struct {
	srv  *parleytest.Server
	e    *parley.Engine
	rec  *lgEngineRec
	user string
}

// newLgPeer returns a loopback Engine for srv that is not logged in; it is
// closed in t.Cleanup, which also waits for its last callback.
func newLgPeer(t *testing.T, srv *parleytest.Server, user string) *lgPeer {
	t.Helper()
	return newLgPeerFor(t, srv, srv.AppID, user)
}

// newLgPeerFor is newLgPeer for an Engine of another app of srv; its login
// helper (login) only works for srv.AppID.
func newLgPeerFor(t *testing.T, srv *parleytest.Server, appID, user string) *lgPeer {
	t.Helper()
	rec := newLgEngineRec()
	e, err := parley.NewEngine(parley.EngineConfig{AppID: appID, ServerURL: srv.URL}, rec, parley.WithLoopbackOnly())
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, e.Close())
		select {
		case <-e.Done():
		case <-time.After(lgWait):
			t.Errorf("Engine.Done not closed within %v of Close", lgWait)
		}
	})
	return &lgPeer{srv: srv, e: e, rec: rec, user: user}
}

// lgLoggedIn is newLgPeer and login.
func lgLoggedIn(t *testing.T, srv *parleytest.Server, user string) *lgPeer {
	t.Helper()
	p := newLgPeer(t, srv, user)
	p.login(t)
	return p
}

// login logs p in with a valid login token and requires Success as its
// next event.
func (p *lgPeer) login(t *testing.T) {
	t.Helper()
	require.NoError(t, p.e.Login(p.srv.LoginToken(p.user), p.user))
	p.requireLogin(t, p.user, parley.LoginErrorCodeSuccess)
}

// requireLogin requires the next event to be OnLoginResult(user, code).
func (p *lgPeer) requireLogin(t *testing.T, user string, code parley.LoginErrorCode) lgLogin {
	t.Helper()
	r := lgNext[lgLogin](t, p.rec.ev)
	require.Equal(t, user, r.UserID, "OnLoginResult user ID")
	require.Equalf(t, code, r.Code, "OnLoginResult code for %q", user)
	require.GreaterOrEqual(t, r.Elapsed, time.Duration(0), "OnLoginResult elapsed")
	return r
}

// logout logs p out and requires OnLogout(Logout) as its next event.
func (p *lgPeer) logout(t *testing.T) {
	t.Helper()
	require.NoError(t, p.e.Logout())
	require.Equal(t, lgLogout{parley.LogoutReasonLogout}, lgNext[lgLogout](t, p.rec.ev))
}

// status asks about peer and requires the answer as the next event. It is
// also the barrier of this file: the answer comes through the server on
// p's signaling connection, after every event the server sent p before.
func (p *lgPeer) status(t *testing.T, peer string) parley.UserOnlineStatus {
	t.Helper()
	require.NoError(t, p.e.GetPeerOnlineStatus(peer))
	s := lgNext[lgStatus](t, p.rec.ev)
	require.Equal(t, peer, s.Peer, "OnGetPeerOnlineStatus peer")
	return s.Status
}

// quiet proves that p, logged in, has no event pending: the answer to a
// question about itself must be the next event, Online.
func (p *lgPeer) quiet(t *testing.T) {
	t.Helper()
	require.Equal(t, parley.UserOnlineStatusOnline, p.status(t, p.user), "status of self")
}

// sent requires the next event to be the outside-room result of id.
func (p *lgPeer) sent(t *testing.T, id int64) parley.UserMessageSendResult {
	t.Helper()
	r := lgNext[lgSent](t, p.rec.ev)
	require.Equal(t, id, r.ID, "OnUserMessageSendResultOutsideRoom message ID")
	return r.Result
}

// recv requires the next event to be a message received outside rooms.
func (p *lgPeer) recv(t *testing.T) lgRecv { t.Helper(); return lgNext[lgRecv](t, p.rec.ev) }

// setParams calls SetServerParams and returns the code of the next event,
// OnServerParamsSetResult.
func (p *lgPeer) setParams(t *testing.T, signature, url string) int {
	t.Helper()
	require.NoError(t, p.e.SetServerParams(signature, url))
	return lgNext[lgParams](t, p.rec.ev).Code
}

// serverSent requires the next event to be the server-message result of id.
func (p *lgPeer) serverSent(t *testing.T, id int64) lgServerSent {
	t.Helper()
	r := lgNext[lgServerSent](t, p.rec.ev)
	require.Equal(t, id, r.ID, "OnServerMessageSendResult message ID")
	return r
}

// sentBatch collects the outside-room results of ids, in any order,
// requiring each exactly once and nothing else meanwhile.
func (p *lgPeer) sentBatch(t *testing.T, ids []int64) map[int64]parley.UserMessageSendResult {
	t.Helper()
	want := make(map[int64]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	got := make(map[int64]parley.UserMessageSendResult, len(ids))
	for range ids {
		r := lgNext[lgSent](t, p.rec.ev)
		require.Truef(t, want[r.ID], "result for unexpected message ID %d", r.ID)
		_, dup := got[r.ID]
		require.Falsef(t, dup, "second result for message ID %d", r.ID)
		got[r.ID] = r.Result
	}
	return got
}

// lgBytes is n bytes of binary data that is not UTF-8 and holds every byte
// value, zero included.
func lgBytes(n int, seed byte) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*131) + seed
	}
	return b
}

// lgText is an n-byte ASCII text.
func lgText(n int, seed byte) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + (byte(i)+seed)%26
	}
	return string(b)
}

// Room events, as an lgRoomRec records them.
type (
	lgState    struct{ State int }
	lgJoined   struct{ UserID string }
	lgRoomSent struct {
		ID     int64
		Result parley.UserMessageSendResult
	}
	lgBroadcastSent struct {
		ID     int64
		Result parley.RoomMessageSendResult
	}
	lgRoomRecv struct {
		From      string
		Broadcast bool
		Binary    bool
		Payload   []byte
	}
	lgRoomOther struct{ What string }
)

// lgRoomRec records every room event, in order, on one channel.
type lgRoomRec struct{ ev chan any }

func newLgRoomRec() *lgRoomRec { return &lgRoomRec{ev: make(chan any, 4096)} }

func (r *lgRoomRec) OnRoomStateChanged(_, _ string, state int, _ parley.RoomStateInfo) {
	r.ev <- lgState{state}
}
func (r *lgRoomRec) OnLeaveRoom(parley.RoomStats)                 { r.ev <- lgRoomOther{"OnLeaveRoom"} }
func (r *lgRoomRec) OnTokenWillExpire()                           { r.ev <- lgRoomOther{"OnTokenWillExpire"} }
func (r *lgRoomRec) OnUserJoined(user parley.UserInfo)            { r.ev <- lgJoined{user.UserID} }
func (r *lgRoomRec) OnUserLeave(string, parley.UserOfflineReason) { r.ev <- lgRoomOther{"OnUserLeave"} }
func (r *lgRoomRec) OnUserMessageReceived(userID, message string) {
	r.ev <- lgRoomRecv{userID, false, false, []byte(message)}
}
func (r *lgRoomRec) OnUserBinaryMessageReceived(userID string, message []byte) {
	r.ev <- lgRoomRecv{userID, false, true, message}
}
func (r *lgRoomRec) OnUserMessageSendResult(msgID int64, result parley.UserMessageSendResult) {
	r.ev <- lgRoomSent{msgID, result}
}
func (r *lgRoomRec) OnRoomMessageReceived(userID, message string) {
	r.ev <- lgRoomRecv{userID, true, false, []byte(message)}
}
func (r *lgRoomRec) OnRoomBinaryMessageReceived(userID string, message []byte) {
	r.ev <- lgRoomRecv{userID, true, true, message}
}
func (r *lgRoomRec) OnRoomMessageSendResult(msgID int64, result parley.RoomMessageSendResult) {
	r.ev <- lgBroadcastSent{msgID, result}
}

// lgRoom is one peer's Room.
type lgRoom struct {
	r   *parley.Room
	rec *lgRoomRec
}

// join creates roomID on p's Engine and joins it as p.user, requiring
// state 0. OnUserJoined for the members already there is left to the
// caller.
func (p *lgPeer) join(t *testing.T, roomID string) *lgRoom {
	t.Helper()
	rec := newLgRoomRec()
	r, err := p.e.CreateRoom(roomID, rec)
	require.NoError(t, err)
	require.NoError(t, r.JoinRoom(p.srv.Token(roomID, p.user), parley.UserInfo{UserID: p.user}, parley.RoomConfig{}))
	require.Equal(t, lgState{0}, lgNext[lgState](t, rec.ev), "join %s as %s", roomID, p.user)
	return &lgRoom{r: r, rec: rec}
}

// lgRoomOf2 has a and b join roomID, a first, and waits until each knows
// the other.
func lgRoomOf2(t *testing.T, roomID string, a, b *lgPeer) (ra, rb *lgRoom) {
	t.Helper()
	ra = a.join(t, roomID)
	rb = b.join(t, roomID)
	require.Equal(t, lgJoined{a.user}, lgNext[lgJoined](t, rb.rec.ev))
	require.Equal(t, lgJoined{b.user}, lgNext[lgJoined](t, ra.rec.ev))
	return ra, rb
}

// userSent requires the next room event to be the user-message result of id.
func (r *lgRoom) userSent(t *testing.T, id int64) parley.UserMessageSendResult {
	t.Helper()
	s := lgNext[lgRoomSent](t, r.rec.ev)
	require.Equal(t, id, s.ID, "OnUserMessageSendResult message ID")
	return s.Result
}

// lgHook is the application server of server messages: a real httptest
// server on loopback whose answer depends on the path.
//
//	/ok       200, body "ack:" + the request body
//	/accepted 202, body "accepted"
//	/fail     500, body "boom"
//	/block    no answer until the test ends
type lgHook struct {
	ts      *httptest.Server
	reqs    chan lgHookReq
	release chan struct{}
}

// lgHookReq is one request the hook received.
type lgHookReq struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

func newLgHook(t *testing.T) *lgHook {
	t.Helper()
	h := &lgHook{reqs: make(chan lgHookReq, 256), release: make(chan struct{})}
	h.ts = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.ts.Close)
	// Cleanups run last-registered first: /block handlers return before
	// ts.Close waits for them.
	t.Cleanup(func() { close(h.release) })
	return h
}

func (h *lgHook) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.reqs <- lgHookReq{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
	switch r.URL.Path {
	case "/ok":
		_, _ = w.Write(append([]byte("ack:"), body...))
	case "/accepted":
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte("accepted"))
	case "/fail":
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("boom"))
	case "/block":
		select {
		case <-h.release:
		case <-r.Context().Done():
		}
	default:
		http.NotFound(w, r)
	}
}

// req requires a request to have reached the hook already.
func (h *lgHook) req(t *testing.T) lgHookReq {
	t.Helper()
	select {
	case r := <-h.reqs:
		return r
	case <-time.After(lgWait):
		t.Fatalf("no request reached the application server within %v", lgWait)
		return lgHookReq{}
	}
}

// requireNoReq requires that no request reached the hook (beyond those
// taken). Posts end before their result is sent, so once a test has every
// result, every request that was made is in reqs.
func (h *lgHook) requireNoReq(t *testing.T) {
	t.Helper()
	select {
	case r := <-h.reqs:
		t.Fatalf("unexpected request to the application server: %s %s %s", r.Method, r.Path, lgClip(r.Body))
	default:
	}
}

// lgServerFor is a parleytest server that may post server messages under
// the given URL prefixes, with f applied to its config if not nil.
func lgServerFor(t *testing.T, prefixes []string, f func(*server.Config)) *parleytest.Server {
	t.Helper()
	return parleytest.NewServer(t, parleytest.WithConfig(func(c *server.Config) {
		c.ServerMessageURLPrefixes = prefixes
		if f != nil {
			f(c)
		}
	}))
}

// --- Login ---------------------------------------------------------------

func TestLoginSuccess(t *testing.T) {
	srv := parleytest.NewServer(t)
	a := newLgPeer(t, srv, "alice")
	require.NoError(t, a.e.Login(srv.LoginToken("alice"), "alice"))
	r := a.requireLogin(t, "alice", parley.LoginErrorCodeSuccess)
	require.Positive(t, r.Elapsed, "OnLoginResult elapsed of a login over the network")
	a.quiet(t)

	obs := lgLoggedIn(t, srv, "observer")
	require.Equal(t, parley.UserOnlineStatusOnline, obs.status(t, "alice"))
}

// TestLoginFailures logs in with each kind of bad token or user ID: the
// result is InvalidToken or InvalidUserID, the Engine is not logged in
// (locally nor on the server), and it logs in afterwards with a good token.
func TestLoginFailures(t *testing.T) {
	srv := parleytest.NewServer(t)
	obs := lgLoggedIn(t, srv, "observer")

	mint := func(appID, appKey, roomID, userID string, expire time.Time) string {
		tk := token.New(appID, appKey, roomID, userID)
		tk.ExpireTime(expire)
		raw, err := tk.Serialize()
		require.NoError(t, err)
		return raw
	}
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
		{"wrong key", "u-key", func(u string) string { return mint(srv.AppID, "not-the-app-key", "", u, day) },
			parley.LoginErrorCodeInvalidToken, ""},
		{"another user's login token", "u-other", func(string) string { return srv.LoginToken("mallory") },
			parley.LoginErrorCodeInvalidToken, ""},
		{"room token", "u-room", func(u string) string { return srv.Token("room", u) },
			parley.LoginErrorCodeInvalidToken, ""},
		{"expired login token", "u-expired", func(u string) string {
			return srv.TokenExpiring("", u, time.Now().Add(-time.Hour))
		}, parley.LoginErrorCodeInvalidToken, ""},
		{"token for another app", "u-app", func(u string) string { return mint(otherApp, srv.AppKey, "", u, day) },
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
			p := newLgPeer(t, srv, retry)
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
			require.Equal(t, lgRecv{retry, false, []byte("after " + tc.name)}, obs.recv(t))
		})
	}
}

func TestLoginAlreadyLoggedInAndLogout(t *testing.T) {
	srv := parleytest.NewServer(t)
	obs := lgLoggedIn(t, srv, "observer")
	a := newLgPeer(t, srv, "alice")

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
	a, c := newLgPeer(t, srv, "alice"), newLgPeer(t, srv, "carol")
	ra, rc := lgRoomOf2(t, "no-login", a, c)
	id := ra.r.SendUserMessage("carol", "in room", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, ra.userSent(t, id))
	require.Equal(t, lgRoomRecv{"alice", false, false, []byte("in room")}, lgNext[lgRoomRecv](t, rc.rec.ev))
	id = a.e.SendUserMessageOutsideRoom("carol", "outside", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultNotLogin, a.sent(t, id), "outside a room without a login")
	require.ErrorIs(t, a.e.GetPeerOnlineStatus("carol"), parley.ErrNotLoggedIn)

	// A login without a room.
	b, d := lgLoggedIn(t, srv, "bob"), lgLoggedIn(t, srv, "dave")
	id = b.e.SendUserMessageOutsideRoom("dave", "no room", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, b.sent(t, id))
	require.Equal(t, lgRecv{"bob", false, []byte("no room")}, d.recv(t))
	// Being in a room is not being logged in.
	require.Equal(t, parley.UserOnlineStatusOffline, b.status(t, "alice"))
}

// TestLoginWhileInRooms: one Engine is logged in and in rooms at the same
// time with one user ID; a login with another user ID than its rooms' is
// InvalidUserID, and a room with another user ID than its login's is
// UserIDDifferent.
func TestLoginWhileInRooms(t *testing.T) {
	srv := parleytest.NewServer(t)
	a, c := newLgPeer(t, srv, "alice"), newLgPeer(t, srv, "carol")
	b := lgLoggedIn(t, srv, "bob")

	a.login(t)
	ra, rc := lgRoomOf2(t, "both", a, c)

	// Both at once, on one Engine.
	id := ra.r.SendUserMessage("carol", "in room", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, ra.userSent(t, id))
	require.Equal(t, lgRoomRecv{"alice", false, false, []byte("in room")}, lgNext[lgRoomRecv](t, rc.rec.ev))
	id = a.e.SendUserMessageOutsideRoom("bob", "outside", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, a.sent(t, id))
	require.Equal(t, lgRecv{"alice", false, []byte("outside")}, b.recv(t))
	id = b.e.SendUserMessageOutsideRoom("alice", "back", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, b.sent(t, id))
	require.Equal(t, lgRecv{"bob", false, []byte("back")}, a.recv(t))

	// A room as another user than the login: UserIDDifferent.
	other := newLgRoomRec()
	r2, err := a.e.CreateRoom("other-user", other)
	require.NoError(t, err)
	require.NoError(t, r2.JoinRoom(srv.Token("other-user", "zed"), parley.UserInfo{UserID: "zed"}, parley.RoomConfig{}))
	require.Equal(t, lgState{int(parley.ErrorCodeUserIDDifferent)}, lgNext[lgState](t, other.ev))

	// Logout leaves the rooms alone.
	a.logout(t)
	id = ra.r.SendUserMessage("carol", "still in room", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, ra.userSent(t, id))
	require.Equal(t, lgRoomRecv{"alice", false, false, []byte("still in room")}, lgNext[lgRoomRecv](t, rc.rec.ev))

	// The rooms still hold the user ID: a login as someone else is refused.
	require.NoError(t, a.e.Login(srv.LoginToken("bob2"), "bob2"))
	a.requireLogin(t, "bob2", parley.LoginErrorCodeInvalidUserID)
	a.login(t)
	a.quiet(t)

	// An Engine in a room, never logged in, cannot log in as another user.
	d := newLgPeer(t, srv, "dave")
	d.join(t, "dave-room")
	require.NoError(t, d.e.Login(srv.LoginToken("erin"), "erin"))
	d.requireLogin(t, "erin", parley.LoginErrorCodeInvalidUserID)
	require.Equal(t, parley.UserOnlineStatusOffline, b.status(t, "erin"))
	d.login(t)
	require.Equal(t, parley.UserOnlineStatusOnline, b.status(t, "dave"))
}

// --- UpdateLoginToken ----------------------------------------------------

func TestUpdateLoginToken(t *testing.T) {
	srv := parleytest.NewServer(t)
	obs := lgLoggedIn(t, srv, "observer")

	t.Run("before any Login", func(t *testing.T) {
		p := newLgPeer(t, srv, "u-before")
		require.ErrorIs(t, p.e.UpdateLoginToken(srv.LoginToken("u-before")), parley.ErrNotLoggedIn)
		require.ErrorIs(t, p.e.Logout(), parley.ErrNotLoggedIn)
	})

	t.Run("after an invalid token logs in by itself", func(t *testing.T) {
		p := newLgPeer(t, srv, "u-invalid")
		require.NoError(t, p.e.Login("garbage", "u-invalid"))
		p.requireLogin(t, "u-invalid", parley.LoginErrorCodeInvalidToken)
		require.NoError(t, p.e.UpdateLoginToken(srv.LoginToken("u-invalid")))
		r := p.requireLogin(t, "u-invalid", parley.LoginErrorCodeSuccess) // no Login call
		require.Positive(t, r.Elapsed)
		p.quiet(t)
		require.Equal(t, parley.UserOnlineStatusOnline, obs.status(t, "u-invalid"))
	})

	t.Run("after an expired token, and again after a second bad one", func(t *testing.T) {
		p := newLgPeer(t, srv, "u-expired")
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
		p := lgLoggedIn(t, srv, "u-in")
		require.NoError(t, p.e.UpdateLoginToken(srv.LoginToken("u-in")))
		require.NoError(t, p.e.UpdateLoginToken("even garbage is only kept"))
		p.quiet(t) // no callback, and still logged in
		require.Equal(t, parley.UserOnlineStatusOnline, obs.status(t, "u-in"))
		id := p.e.SendUserMessageOutsideRoom("observer", "still here", parley.MessageConfigReliableOrdered)
		require.Equal(t, parley.UserMessageSendResultSuccess, p.sent(t, id))
		require.Equal(t, lgRecv{"u-in", false, []byte("still here")}, obs.recv(t))
	})

	t.Run("after Logout", func(t *testing.T) {
		p := lgLoggedIn(t, srv, "u-out")
		p.logout(t)
		require.ErrorIs(t, p.e.UpdateLoginToken(srv.LoginToken("u-out")), parley.ErrNotLoggedIn)
	})
}

// --- Duplicate login -----------------------------------------------------

func TestLoginDuplicate(t *testing.T) {
	srv := parleytest.NewServer(t)
	a := lgLoggedIn(t, srv, "alice")
	first := lgLoggedIn(t, srv, "bob")

	second := newLgPeer(t, srv, "bob")
	second.login(t)
	require.Equal(t, lgLogout{parley.LogoutReasonDuplicateLogin}, lgNext[lgLogout](t, first.rec.ev))

	// The first Engine is logged out.
	require.ErrorIs(t, first.e.Logout(), parley.ErrNotLoggedIn)
	require.ErrorIs(t, first.e.GetPeerOnlineStatus("alice"), parley.ErrNotLoggedIn)
	id := first.e.SendUserMessageOutsideRoom("alice", "from the old bob", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultNotLogin, first.sent(t, id))

	// Messages to bob reach the second Engine only.
	require.Equal(t, parley.UserOnlineStatusOnline, a.status(t, "bob"))
	id = a.e.SendUserMessageOutsideRoom("bob", "to bob", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, a.sent(t, id))
	bin := lgBytes(300, 7)
	id = a.e.SendUserBinaryMessageOutsideRoom("bob", bin, parley.MessageConfigUnreliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, a.sent(t, id))
	require.Equal(t, lgRecv{"alice", false, []byte("to bob")}, second.recv(t))
	require.Equal(t, lgRecv{"alice", true, bin}, second.recv(t))

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
	token2 := func(user string) string {
		tk := token.New(app2, key2, "", user)
		tk.ExpireTime(time.Now().Add(time.Hour))
		raw, err := tk.Serialize()
		require.NoError(t, err)
		return raw
	}

	x := lgLoggedIn(t, srv, "alice") // app 1
	y := newLgPeerFor(t, srv, app2, "alice")
	require.NoError(t, y.e.Login(token2("alice"), "alice"))
	y.requireLogin(t, "alice", parley.LoginErrorCodeSuccess)
	x.quiet(t) // no DuplicateLogin
	y.quiet(t)

	// App 1's token on an app 2 Engine, and the other way round.
	z := newLgPeerFor(t, srv, app2, "carol")
	require.NoError(t, z.e.Login(srv.LoginToken("carol"), "carol"))
	z.requireLogin(t, "carol", parley.LoginErrorCodeInvalidToken)
	w := newLgPeer(t, srv, "carol")
	require.NoError(t, w.e.Login(token2("carol"), "carol"))
	w.requireLogin(t, "carol", parley.LoginErrorCodeInvalidToken)

	b := lgLoggedIn(t, srv, "bob") // app 1
	require.Equal(t, parley.UserOnlineStatusOffline, y.status(t, "bob"), "bob is in the other app")
	id := y.e.SendUserMessageOutsideRoom("bob", "across apps", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultNoReceiver, y.sent(t, id))

	id = b.e.SendUserMessageOutsideRoom("alice", "same app", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, b.sent(t, id))
	require.Equal(t, lgRecv{"bob", false, []byte("same app")}, x.recv(t))
	y.quiet(t) // app 2's alice got nothing

	// Logging out one alice leaves the other online.
	y.logout(t)
	require.Equal(t, parley.UserOnlineStatusOnline, b.status(t, "alice"))
}

// --- GetPeerOnlineStatus -------------------------------------------------

func TestPeerOnlineStatus(t *testing.T) {
	srv := parleytest.NewServer(t)
	a := newLgPeer(t, srv, "alice")
	require.ErrorIs(t, a.e.GetPeerOnlineStatus("bob"), parley.ErrNotLoggedIn, "before login")
	a.login(t)
	require.ErrorIs(t, a.e.GetPeerOnlineStatus(""), parley.ErrInvalidArgument)
	require.ErrorIs(t, a.e.GetPeerOnlineStatus("no such user"), parley.ErrInvalidArgument)

	require.Equal(t, parley.UserOnlineStatusOnline, a.status(t, "alice"), "yourself")
	require.Equal(t, parley.UserOnlineStatusOffline, a.status(t, "never-logged-in"))
	require.Equal(t, parley.UserOnlineStatusOffline, a.status(t, "bob"), "bob before his login")

	b := lgLoggedIn(t, srv, "bob")
	require.Equal(t, parley.UserOnlineStatusOnline, a.status(t, "bob"))
	require.Equal(t, parley.UserOnlineStatusOnline, b.status(t, "alice"))

	b.logout(t)
	require.Equal(t, parley.UserOnlineStatusOffline, a.status(t, "bob"), "bob after his Logout")
	require.ErrorIs(t, b.e.GetPeerOnlineStatus("alice"), parley.ErrNotLoggedIn, "after Logout")

	b.login(t)
	require.Equal(t, parley.UserOnlineStatusOnline, a.status(t, "bob"), "bob logged in again")
}

// --- Messages outside rooms ----------------------------------------------

// TestOutsideRoomMessages sends text and binary both ways in every mode:
// Success, and the bytes arrive as sent, from the right sender.
func TestOutsideRoomMessages(t *testing.T) {
	srv := parleytest.NewServer(t)
	a, b := lgLoggedIn(t, srv, "alice"), lgLoggedIn(t, srv, "bob")
	modes := []parley.MessageConfig{
		parley.MessageConfigReliableOrdered,
		parley.MessageConfigUnreliableOrdered,
		parley.MessageConfigUnreliableUnordered,
	}
	for i, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			for _, dir := range []struct{ from, to *lgPeer }{{a, b}, {b, a}} {
				text := fmt.Sprintf("héllo wörld ✓ %s→%s %v", dir.from.user, dir.to.user, mode)
				id := dir.from.e.SendUserMessageOutsideRoom(dir.to.user, text, mode)
				require.Positive(t, id)
				require.Equal(t, parley.UserMessageSendResultSuccess, dir.from.sent(t, id))
				require.Equal(t, lgRecv{dir.from.user, false, []byte(text)}, dir.to.recv(t))

				bin := lgBytes(1000+i, byte(i))
				sent := bytes.Clone(bin)
				id = dir.from.e.SendUserBinaryMessageOutsideRoom(dir.to.user, bin, mode)
				for j := range bin { // not retained after the call returns
					bin[j] = 0xEE
				}
				require.Equal(t, parley.UserMessageSendResultSuccess, dir.from.sent(t, id))
				require.Equal(t, lgRecv{dir.from.user, true, sent}, dir.to.recv(t))
			}
		})
	}
	a.quiet(t)
	b.quiet(t)
}

func TestOutsideRoomSendResults(t *testing.T) {
	srv := parleytest.NewServer(t)
	a, b := lgLoggedIn(t, srv, "alice"), lgLoggedIn(t, srv, "bob")
	modes := []parley.MessageConfig{parley.MessageConfigReliableOrdered, parley.MessageConfigUnreliableOrdered}

	t.Run("NoReceiver", func(t *testing.T) {
		for _, mode := range modes {
			id := a.e.SendUserMessageOutsideRoom("nobody", "hi", mode)
			require.Equal(t, parley.UserMessageSendResultNoReceiver, a.sent(t, id), "%v text", mode)
			id = a.e.SendUserBinaryMessageOutsideRoom("nobody", []byte{1}, mode)
			require.Equal(t, parley.UserMessageSendResultNoReceiver, a.sent(t, id), "%v binary", mode)
		}
		// Nobody can log in with an illegal ID.
		for _, to := range []string{"no such user", strings.Repeat("x", 129), "\xff\xfe"} {
			id := a.e.SendUserMessageOutsideRoom(to, "hi", parley.MessageConfigReliableOrdered)
			require.Equal(t, parley.UserMessageSendResultNoReceiver, a.sent(t, id), "to %q", to)
			id = a.e.SendUserBinaryMessageOutsideRoom(to, []byte{1}, parley.MessageConfigUnreliableOrdered)
			require.Equal(t, parley.UserMessageSendResultNoReceiver, a.sent(t, id), "binary to %q", to)
		}
		// Online in a room is not logged in.
		c := newLgPeer(t, srv, "carol")
		c.join(t, "carols-room")
		id := a.e.SendUserMessageOutsideRoom("carol", "hi", parley.MessageConfigReliableOrdered)
		require.Equal(t, parley.UserMessageSendResultNoReceiver, a.sent(t, id), "a user in a room, not logged in")
	})

	t.Run("NotLogin", func(t *testing.T) {
		p := newLgPeer(t, srv, "never")
		id := p.e.SendUserMessageOutsideRoom("alice", "hi", parley.MessageConfigReliableOrdered)
		require.Equal(t, parley.UserMessageSendResultNotLogin, p.sent(t, id))
		id = p.e.SendUserBinaryMessageOutsideRoom("alice", []byte{1}, parley.MessageConfigUnreliableOrdered)
		require.Equal(t, parley.UserMessageSendResultNotLogin, p.sent(t, id))

		q := lgLoggedIn(t, srv, "quitter")
		q.logout(t)
		id = q.e.SendUserMessageOutsideRoom("alice", "hi", parley.MessageConfigReliableOrdered)
		require.Equal(t, parley.UserMessageSendResultNotLogin, q.sent(t, id), "after Logout")
		a.quiet(t) // nothing reached alice
	})

	t.Run("EmptyUser", func(t *testing.T) {
		for _, mode := range modes {
			id := a.e.SendUserMessageOutsideRoom("", "hi", mode)
			require.Equal(t, parley.UserMessageSendResultEmptyUser, a.sent(t, id), "%v text", mode)
			id = a.e.SendUserBinaryMessageOutsideRoom("", []byte{1}, mode)
			require.Equal(t, parley.UserMessageSendResultEmptyUser, a.sent(t, id), "%v binary", mode)
		}
	})

	t.Run("ExceedMaxLength", func(t *testing.T) {
		for _, mode := range modes {
			id := a.e.SendUserMessageOutsideRoom("bob", lgText(65537, 1), mode)
			require.Equal(t, parley.UserMessageSendResultExceedMaxLength, a.sent(t, id), "%v text", mode)
			id = a.e.SendUserBinaryMessageOutsideRoom("bob", lgBytes(65537, 1), mode)
			require.Equal(t, parley.UserMessageSendResultExceedMaxLength, a.sent(t, id), "%v binary", mode)
		}
		b.quiet(t) // nothing reached bob
	})

	t.Run("65536 bytes arrive byte-exact", func(t *testing.T) {
		for i, mode := range modes {
			text := lgText(65536, byte(i))
			id := a.e.SendUserMessageOutsideRoom("bob", text, mode)
			require.Equal(t, parley.UserMessageSendResultSuccess, a.sent(t, id), "%v text", mode)
			got := b.recv(t)
			require.Equal(t, "alice", got.From)
			require.False(t, got.Binary)
			require.Len(t, got.Payload, 65536)
			require.True(t, bytes.Equal([]byte(text), got.Payload), "%v text differs", mode)

			bin := lgBytes(65536, byte(i))
			id = b.e.SendUserBinaryMessageOutsideRoom("alice", bin, mode)
			require.Equal(t, parley.UserMessageSendResultSuccess, b.sent(t, id), "%v binary", mode)
			got = a.recv(t)
			require.Equal(t, "bob", got.From)
			require.True(t, got.Binary)
			require.Len(t, got.Payload, 65536)
			require.True(t, bytes.Equal(bin, got.Payload), "%v binary differs", mode)
		}
	})
	a.quiet(t)
	b.quiet(t)
}

// TestOutsideRoomExceedQPS: over the user-message quota a send gets
// ExceedQPS and nothing is relayed.
func TestOutsideRoomExceedQPS(t *testing.T) {
	const quota, n = 5, 15
	srv := parleytest.NewServer(t, parleytest.WithQuotas(server.Quotas{UserMessagesPerSecond: quota}))
	a, b := lgLoggedIn(t, srv, "alice"), lgLoggedIn(t, srv, "bob")

	// One burst: the server takes the frames in order, far faster than the
	// quota refills (one message per 200 ms), so the first `quota` pass and
	// some of the rest do not.
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = a.e.SendUserMessageOutsideRoom("bob", "m"+strconv.Itoa(i), parley.MessageConfigUnreliableOrdered)
	}
	got := a.sentBatch(t, ids)
	var want []lgRecv
	exceeded := 0
	for i, id := range ids {
		switch r := got[id]; {
		case i < quota:
			require.Equalf(t, parley.UserMessageSendResultSuccess, r, "message %d of the burst", i)
			want = append(want, lgRecv{"alice", false, []byte("m" + strconv.Itoa(i))})
		case r == parley.UserMessageSendResultSuccess:
			want = append(want, lgRecv{"alice", false, []byte("m" + strconv.Itoa(i))})
		default:
			require.Equalf(t, parley.UserMessageSendResultExceedQPS, r, "message %d of the burst", i)
			exceeded++
		}
	}
	require.Positive(t, exceeded, "no ExceedQPS in a burst of %d with a quota of %d/s", n, quota)

	// bob gets exactly the messages that passed: the server forwarded them
	// before it answered alice, so they precede the answer to bob's question.
	for _, w := range want {
		require.Equal(t, w, b.recv(t))
	}
	b.quiet(t)
}

// TestOutsideRoomQuotaSharedWithRoom: the user-message quota counts the
// messages of one user in rooms and outside together. The quota is 1/s so
// that the bucket, once emptied, stays empty for a whole second, far longer
// than the round trips between the sends.
func TestOutsideRoomQuotaSharedWithRoom(t *testing.T) {
	srv := parleytest.NewServer(t, parleytest.WithQuotas(server.Quotas{UserMessagesPerSecond: 1}))
	b := lgLoggedIn(t, srv, "bob")
	c := newLgPeer(t, srv, "carol")

	t.Run("in room then outside", func(t *testing.T) {
		a := lgLoggedIn(t, srv, "alice")
		ra, rc := lgRoomOf2(t, "quota-1", a, c)
		id := ra.r.SendUserMessage("carol", "in room", parley.MessageConfigUnreliableOrdered)
		require.Equal(t, parley.UserMessageSendResultSuccess, ra.userSent(t, id))
		require.Equal(t, lgRoomRecv{"alice", false, false, []byte("in room")}, lgNext[lgRoomRecv](t, rc.rec.ev))
		id = a.e.SendUserMessageOutsideRoom("bob", "outside", parley.MessageConfigUnreliableOrdered)
		require.Equal(t, parley.UserMessageSendResultExceedQPS, a.sent(t, id))
		b.quiet(t) // nothing relayed
	})

	t.Run("outside then in room", func(t *testing.T) {
		d := lgLoggedIn(t, srv, "dave")
		rd, _ := lgRoomOf2(t, "quota-2", d, c)
		id := d.e.SendUserMessageOutsideRoom("bob", "outside", parley.MessageConfigUnreliableOrdered)
		require.Equal(t, parley.UserMessageSendResultSuccess, d.sent(t, id))
		require.Equal(t, lgRecv{"dave", false, []byte("outside")}, b.recv(t))
		id = rd.r.SendUserMessage("carol", "in room", parley.MessageConfigUnreliableOrdered)
		require.Equal(t, parley.UserMessageSendResultExceedQPS, rd.userSent(t, id))
	})
}

// TestOutsideRoomMessageIDsSharedWithRoomAndServer interleaves in-room,
// outside-room and server messages, failures included, on one Engine: the
// IDs run 1, 2, 3, ... across all of them and each comes back exactly once,
// in its own callback.
func TestOutsideRoomMessageIDsSharedWithRoomAndServer(t *testing.T) {
	hook := newLgHook(t)
	srv := lgServerFor(t, []string{hook.ts.URL}, nil)
	a, b, c := newLgPeer(t, srv, "alice"), lgLoggedIn(t, srv, "bob"), newLgPeer(t, srv, "carol")
	ra, _ := lgRoomOf2(t, "ids", a, c)
	a.login(t)
	require.Equal(t, 200, a.setParams(t, "sig", hook.ts.URL+"/ok"))

	type want struct {
		kind string // "room", "broadcast", "outside", "server"
		code int
	}
	wants := map[int64]want{}
	next := int64(1)
	expect := func(id int64, kind string, code int) {
		t.Helper()
		require.Equal(t, next, id, "message ID of a %s send", kind)
		next++
		wants[id] = want{kind, code}
	}
	const rounds = 3
	for i := range rounds {
		m := "m" + strconv.Itoa(i)
		expect(ra.r.SendUserMessage("carol", m, parley.MessageConfigReliableOrdered), "room", int(parley.UserMessageSendResultSuccess))
		expect(a.e.SendUserMessageOutsideRoom("bob", m, parley.MessageConfigReliableOrdered), "outside", int(parley.UserMessageSendResultSuccess))
		expect(a.e.SendServerMessage(m), "server", int(parley.UserMessageSendResultSuccess))
		expect(ra.r.SendRoomMessage(m), "broadcast", int(parley.RoomMessageSendResultSuccess))
		expect(a.e.SendUserBinaryMessageOutsideRoom("nobody", []byte(m), parley.MessageConfigUnreliableOrdered), "outside", int(parley.UserMessageSendResultNoReceiver))
		expect(ra.r.SendUserBinaryMessage("", []byte(m), parley.MessageConfigReliableOrdered), "room", int(parley.UserMessageSendResultEmptyUser))
		expect(a.e.SendServerBinaryMessage(lgBytes(65537, 0)), "server", int(parley.UserMessageSendResultExceedMaxLength))
		expect(a.e.SendUserMessageOutsideRoom("", m, parley.MessageConfigReliableOrdered), "outside", int(parley.UserMessageSendResultEmptyUser))
	}

	got := map[int64]want{}
	record := func(id int64, w want) {
		t.Helper()
		_, dup := got[id]
		require.Falsef(t, dup, "second result for message ID %d (%+v)", id, w)
		got[id] = w
	}
	timeout := time.After(lgWait)
	for len(got) < len(wants) {
		select {
		case ev := <-a.rec.ev:
			switch e := ev.(type) {
			case lgSent:
				record(e.ID, want{"outside", int(e.Result)})
			case lgServerSent:
				record(e.ID, want{"server", int(e.Result)})
			default:
				t.Fatalf("unexpected engine event %#v", ev)
			}
		case ev := <-ra.rec.ev:
			switch e := ev.(type) {
			case lgRoomSent:
				record(e.ID, want{"room", int(e.Result)})
			case lgBroadcastSent:
				record(e.ID, want{"broadcast", int(e.Result)})
			default:
				t.Fatalf("unexpected room event %#v", ev)
			}
		case <-timeout:
			t.Fatalf("%d of %d results within %v: %v", len(got), len(wants), lgWait, got)
		}
	}
	require.Equal(t, wants, got)

	// Nothing more: the next result of each kind is that of the next send.
	id := a.e.SendUserMessageOutsideRoom("bob", "last", parley.MessageConfigReliableOrdered)
	require.Equal(t, next, id)
	require.Equal(t, parley.UserMessageSendResultSuccess, a.sent(t, id))
	id = a.e.SendServerMessage("last")
	require.Equal(t, next+1, id)
	require.Equal(t, parley.UserMessageSendResultSuccess, a.serverSent(t, id).Result)
	id = ra.r.SendRoomMessage("last")
	require.Equal(t, next+2, id)
	require.Equal(t, lgBroadcastSent{id, parley.RoomMessageSendResultSuccess}, lgNext[lgBroadcastSent](t, ra.rec.ev))
	a.quiet(t)

	// And bob got alice's outside messages in order.
	for i := range rounds {
		require.Equal(t, lgRecv{"alice", false, []byte("m" + strconv.Itoa(i))}, b.recv(t))
	}
	require.Equal(t, lgRecv{"alice", false, []byte("last")}, b.recv(t))
}

// --- Server messages -----------------------------------------------------

// TestServerMessage: text and binary server messages reach the application
// server with the signature, app and user headers, and its 2xx answer comes
// back as the ack.
func TestServerMessage(t *testing.T) {
	hook := newLgHook(t)
	srv := lgServerFor(t, []string{hook.ts.URL}, nil)
	a := lgLoggedIn(t, srv, "alice")
	require.Equal(t, 200, a.setParams(t, "the-signature", hook.ts.URL+"/ok"))

	requireReq := func(id int64, body []byte, contentType string) {
		t.Helper()
		r := hook.req(t)
		require.Equal(t, http.MethodPost, r.Method)
		require.Equal(t, "/ok", r.Path)
		require.True(t, bytes.Equal(body, r.Body), "body: want %s, got %s", lgClip(body), lgClip(r.Body))
		require.Equal(t, "the-signature", r.Header.Get("X-Parley-Signature"))
		require.Equal(t, srv.AppID, r.Header.Get("X-Parley-App-Id"))
		require.Equal(t, "alice", r.Header.Get("X-Parley-User-Id"))
		require.Equal(t, strconv.FormatInt(id, 10), r.Header.Get("X-Parley-Message-Id"))
		require.Equal(t, contentType, r.Header.Get("Content-Type"))
	}

	text := "hello, app server ✓"
	id := a.e.SendServerMessage(text)
	require.Positive(t, id)
	r := a.serverSent(t, id)
	require.Equal(t, parley.UserMessageSendResultSuccess, r.Result)
	require.Equal(t, "ack:"+text, string(r.Ack))
	requireReq(id, []byte(text), "text/plain; charset=utf-8")

	bin := lgBytes(4096, 3)
	sent := bytes.Clone(bin)
	id = a.e.SendServerBinaryMessage(bin)
	for i := range bin { // not retained after the call returns
		bin[i] = 0xEE
	}
	r = a.serverSent(t, id)
	require.Equal(t, parley.UserMessageSendResultSuccess, r.Result)
	require.Equal(t, append([]byte("ack:"), sent...), r.Ack)
	requireReq(id, sent, "application/octet-stream")

	// Any 2xx is Success.
	require.Equal(t, 200, a.setParams(t, "sig2", hook.ts.URL+"/accepted"))
	id = a.e.SendServerMessage("to 202")
	r = a.serverSent(t, id)
	require.Equal(t, parley.UserMessageSendResultSuccess, r.Result)
	require.Equal(t, "accepted", string(r.Ack))
	req := hook.req(t)
	require.Equal(t, "/accepted", req.Path)
	require.Equal(t, "sig2", req.Header.Get("X-Parley-Signature"))
	require.Equal(t, []byte("to 202"), req.Body)

	// 65,536 bytes are accepted (/accepted: the ack stays short) ...
	big := lgBytes(65536, 9)
	id = a.e.SendServerBinaryMessage(big)
	r = a.serverSent(t, id)
	require.Equal(t, parley.UserMessageSendResultSuccess, r.Result)
	require.Equal(t, "accepted", string(r.Ack))
	req = hook.req(t)
	require.Len(t, req.Body, 65536)
	require.True(t, bytes.Equal(big, req.Body), "a 65,536-byte server message differs")
	// ... 65,537 are not, and nothing is posted.
	id = a.e.SendServerMessage(lgText(65537, 0))
	require.Equal(t, parley.UserMessageSendResultExceedMaxLength, a.serverSent(t, id).Result)
	id = a.e.SendServerBinaryMessage(lgBytes(65537, 0))
	require.Equal(t, parley.UserMessageSendResultExceedMaxLength, a.serverSent(t, id).Result)

	a.quiet(t)
	hook.requireNoReq(t)
}

func TestServerMessageFailures(t *testing.T) {
	hook := newLgHook(t)
	deadURL := hangUpURL(t) // under an allowed prefix, but no HTTP answers there
	srv := lgServerFor(t, []string{hook.ts.URL, deadURL}, nil)

	t.Run("500 is E2BSReturnFailed with the body", func(t *testing.T) {
		a := lgLoggedIn(t, srv, "u-500")
		require.Equal(t, 200, a.setParams(t, "sig", hook.ts.URL+"/fail"))
		id := a.e.SendServerMessage("doomed")
		r := a.serverSent(t, id)
		require.Equal(t, parley.UserMessageSendResultE2BSReturnFailed, r.Result)
		require.Equal(t, "boom", string(r.Ack))
		require.Equal(t, []byte("doomed"), hook.req(t).Body)
		id = a.e.SendServerBinaryMessage([]byte{0, 1, 2})
		r = a.serverSent(t, id)
		require.Equal(t, parley.UserMessageSendResultE2BSReturnFailed, r.Result)
		require.Equal(t, "boom", string(r.Ack))
		require.Equal(t, []byte{0, 1, 2}, hook.req(t).Body)
	})

	t.Run("unreachable is E2BSSendFailed", func(t *testing.T) {
		a := lgLoggedIn(t, srv, "u-dead")
		require.Equal(t, 200, a.setParams(t, "sig", deadURL+"/hook"))
		id := a.e.SendServerMessage("into the void")
		r := a.serverSent(t, id)
		require.Equal(t, parley.UserMessageSendResultE2BSSendFailed, r.Result)
		require.Empty(t, r.Ack)
	})

	t.Run("URL not allowed", func(t *testing.T) {
		a := lgLoggedIn(t, srv, "u-denied")
		require.Equal(t, int(parley.UserMessageSendResultE2BSSendFailed), a.setParams(t, "sig", "http://127.0.0.1:1/not-allowed"))
		id := a.e.SendServerMessage("hi")
		require.Equal(t, parley.UserMessageSendResultServerParamsNotSet, a.serverSent(t, id).Result)
	})

	t.Run("before SetServerParams", func(t *testing.T) {
		a := lgLoggedIn(t, srv, "u-noparams")
		id := a.e.SendServerMessage("hi")
		require.Equal(t, parley.UserMessageSendResultServerParamsNotSet, a.serverSent(t, id).Result)
		id = a.e.SendServerBinaryMessage([]byte("hi"))
		require.Equal(t, parley.UserMessageSendResultServerParamsNotSet, a.serverSent(t, id).Result)
	})

	t.Run("before login", func(t *testing.T) {
		a := newLgPeer(t, srv, "u-nologin")
		id := a.e.SendServerMessage("hi")
		require.Equal(t, parley.UserMessageSendResultNotLogin, a.serverSent(t, id).Result)
		id = a.e.SendServerBinaryMessage([]byte("hi"))
		require.Equal(t, parley.UserMessageSendResultNotLogin, a.serverSent(t, id).Result)
		require.Equal(t, int(parley.UserMessageSendResultNotLogin), a.setParams(t, "sig", hook.ts.URL+"/ok"))
		// Setting them before the login does not count.
		a.login(t)
		id = a.e.SendServerMessage("hi")
		require.Equal(t, parley.UserMessageSendResultServerParamsNotSet, a.serverSent(t, id).Result)
	})

	t.Run("Logout clears the params", func(t *testing.T) {
		a := lgLoggedIn(t, srv, "u-logout")
		require.Equal(t, 200, a.setParams(t, "sig", hook.ts.URL+"/ok"))
		id := a.e.SendServerMessage("one")
		require.Equal(t, parley.UserMessageSendResultSuccess, a.serverSent(t, id).Result)
		require.Equal(t, []byte("one"), hook.req(t).Body)
		a.logout(t)
		id = a.e.SendServerMessage("two")
		require.Equal(t, parley.UserMessageSendResultNotLogin, a.serverSent(t, id).Result)
		a.login(t)
		id = a.e.SendServerMessage("three")
		require.Equal(t, parley.UserMessageSendResultServerParamsNotSet, a.serverSent(t, id).Result)
	})

	hook.requireNoReq(t)
}

// TestServerMessageTimeout: an application server that does not answer
// within Config.ServerMessageTimeout gives E2BSSendFailed.
func TestServerMessageTimeout(t *testing.T) {
	hook := newLgHook(t)
	srv := lgServerFor(t, []string{hook.ts.URL}, func(c *server.Config) {
		c.ServerMessageTimeout = 300 * time.Millisecond
	})
	a := lgLoggedIn(t, srv, "alice")
	require.Equal(t, 200, a.setParams(t, "sig", hook.ts.URL+"/block"))
	id := a.e.SendServerMessage("wait for it")
	r := a.serverSent(t, id)
	require.Equal(t, parley.UserMessageSendResultE2BSSendFailed, r.Result)
	require.Empty(t, r.Ack)
	require.Equal(t, []byte("wait for it"), hook.req(t).Body, "the request did reach the blocking handler")
}

// TestServerMessageExceedQPS: over the server-message quota a message gets
// ExceedQPS and is not posted.
func TestServerMessageExceedQPS(t *testing.T) {
	const quota, n = 2, 8
	hook := newLgHook(t)
	srv := parleytest.NewServer(t,
		parleytest.WithQuotas(server.Quotas{ServerMessagesPerSecond: quota}),
		parleytest.WithConfig(func(c *server.Config) { c.ServerMessageURLPrefixes = []string{hook.ts.URL} }))
	a := lgLoggedIn(t, srv, "alice")
	require.Equal(t, 200, a.setParams(t, "sig", hook.ts.URL+"/ok"))

	ids := make([]int64, n)
	for i := range ids {
		ids[i] = a.e.SendServerMessage("s" + strconv.Itoa(i))
	}
	got := map[int64]parley.UserMessageSendResult{}
	for range ids {
		r := lgNext[lgServerSent](t, a.rec.ev)
		_, dup := got[r.ID]
		require.Falsef(t, dup, "second result for message ID %d", r.ID)
		got[r.ID] = r.Result
	}
	passed, exceeded := map[string]bool{}, 0
	for i, id := range ids {
		r, ok := got[id]
		require.Truef(t, ok, "no result for message %d (ID %d)", i, id)
		switch {
		case i < quota:
			require.Equalf(t, parley.UserMessageSendResultSuccess, r, "message %d of the burst", i)
			passed["s"+strconv.Itoa(i)] = true
		case r == parley.UserMessageSendResultSuccess:
			passed["s"+strconv.Itoa(i)] = true
		default:
			require.Equalf(t, parley.UserMessageSendResultExceedQPS, r, "message %d of the burst", i)
			exceeded++
		}
	}
	require.Positive(t, exceeded, "no ExceedQPS in a burst of %d with a quota of %d/s", n, quota)
	// Exactly the messages that passed were posted (each post ends before
	// its result is sent).
	posted := map[string]bool{}
	for range passed {
		posted[string(hook.req(t).Body)] = true
	}
	require.Equal(t, passed, posted)
	hook.requireNoReq(t)
}

// TestServerParamsLastCallWins calls SetServerParams twice at once: each
// call gets its result, and the server messages then go where the last
// call said, with its signature.
func TestServerParamsLastCallWins(t *testing.T) {
	hook := newLgHook(t)
	srv := lgServerFor(t, []string{hook.ts.URL}, nil)
	a := lgLoggedIn(t, srv, "alice")
	paths := [2]string{"/ok", "/accepted"}
	for i := range 10 {
		first, last := paths[i%2], paths[(i+1)%2]
		require.NoError(t, a.e.SetServerParams("first", hook.ts.URL+first))
		require.NoError(t, a.e.SetServerParams("last", hook.ts.URL+last))
		require.Equal(t, lgParams{200}, lgNext[lgParams](t, a.rec.ev))
		require.Equal(t, lgParams{200}, lgNext[lgParams](t, a.rec.ev))
		id := a.e.SendServerMessage("round " + strconv.Itoa(i))
		require.Equal(t, parley.UserMessageSendResultSuccess, a.serverSent(t, id).Result)
		r := hook.req(t)
		require.Equalf(t, last, r.Path, "round %d: posted to the URL of the first SetServerParams", i)
		require.Equalf(t, "last", r.Header.Get("X-Parley-Signature"), "round %d", i)
	}
	hook.requireNoReq(t)
}

// TestServerParamsRejectsPrefixBypass: with the allowed prefix
// "http://host:port" (ts.URL, as an operator would write it), the URL
// "http://host:port@elsewhere/..." starts with that string but goes to
// elsewhere: the allowed host becomes user info. The relay must not post
// anywhere its operator did not allow (server.Config.ServerMessageURLPrefixes).
// A plain string-prefix check let it through; this is its regression test.
func TestServerParamsRejectsPrefixBypass(t *testing.T) {
	allowed, elsewhere := newLgHook(t), newLgHook(t)
	srv := lgServerFor(t, []string{allowed.ts.URL}, nil)
	a := lgLoggedIn(t, srv, "alice")

	host := strings.TrimPrefix(elsewhere.ts.URL, "http://")
	sneaky := allowed.ts.URL + "@" + host + "/ok"
	code := a.setParams(t, "sig", sneaky)
	if code == 200 {
		id := a.e.SendServerMessage("where does this go?")
		r := a.serverSent(t, id)
		select {
		case req := <-elsewhere.reqs:
			t.Errorf("SetServerParams(%q) was accepted and the message (result %v) was posted to %s%s, which is not allowed",
				sneaky, r.Result, elsewhere.ts.URL, req.Path)
		default:
		}
	}
	assert.Equal(t, int(parley.UserMessageSendResultE2BSSendFailed), code, "SetServerParams(%q) with allowed prefix %q", sneaky, allowed.ts.URL)
}

// --- Login and Logout in quick succession --------------------------------

// TestLoginLogoutAtOnce calls Login and Logout (and Logout and Login)
// without waiting for the callback in between, as a UI toggle may. Each
// call returned nil, so each gets its one callback, in call order, and the
// last call wins: afterwards the server and the Engine agree on whether the
// user is logged in.
func TestLoginLogoutAtOnce(t *testing.T) {
	srv := parleytest.NewServer(t)
	obs := lgLoggedIn(t, srv, "observer")

	t.Run("Login then Logout", func(t *testing.T) {
		for i := range 5 {
			// A new Engine, connecting for the login, and then one whose
			// connection is up.
			user := "toggle-a" + strconv.Itoa(i)
			p := newLgPeer(t, srv, user)
			for j := range 2 {
				require.NoError(t, p.e.Login(srv.LoginToken(user), user))
				require.NoError(t, p.e.Logout())
				r := lgNext[lgLogin](t, p.rec.ev)
				require.Equal(t, user, r.UserID)
				require.Equal(t, lgLogout{parley.LogoutReasonLogout}, lgNext[lgLogout](t, p.rec.ev))
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
		p := lgLoggedIn(t, srv, user)
		for i := range 10 {
			require.NoError(t, p.e.Logout())
			require.NoError(t, p.e.Login(srv.LoginToken(user), user))
			require.Equal(t, lgLogout{parley.LogoutReasonLogout}, lgNext[lgLogout](t, p.rec.ev), "round %d", i)
			p.requireLogin(t, user, parley.LoginErrorCodeSuccess)
			p.quiet(t)
			require.Equalf(t, parley.UserOnlineStatusOnline, obs.status(t, user),
				"round %d: the Engine is logged in, the server has %s logged out", i, user)
		}
	})
}

// hangUpURL is the URL of a loopback listener that closes every
// connection at once: a request there fails in transport. The listener
// stays open for the test, so no other server can take its port.
func hangUpURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
	return "http://" + ln.Addr().String()
}
