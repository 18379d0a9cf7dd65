package parley_test

// The end-to-end harness every test file of this package uses: one peer
// type (a user on an Engine of its own, in at most one Room), recorded by
// parleytest.Recorder, one wait timeout, and the thin assertions the tests
// share. The tests run against a real parleytest server over loopback
// sockets, with real pion PeerConnections.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/internal/faultproxy"
	"github.com/parleyhq/parley/parleytest"
	"github.com/parleyhq/parley/server"
	"github.com/parleyhq/parley/token"
)

// TestMain fails the package if any goroutine outlives the tests: every
// Engine and server is closed by then, so pion, the dispatcher and the
// signaling pumps must all have stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout only guards against a hang: every wait in these tests ends on
// an event, long before it on a healthy run, even with -race on a loaded
// 2-core machine. It is the Recorders' timeout too.
const waitTimeout = parleytest.DefaultTimeout

// --- Peers -----------------------------------------------------------------

// peer is one user on an Engine of its own, with the Engine's Recorder and,
// unless made without one, one Room and its Recorder. Several peers may
// share an Engine (see enter): one per Room.
type peer struct {
	srv  *parleytest.Server
	e    *parley.Engine
	eng  *parleytest.Recorder // the Engine's events
	room *parley.Room         // nil for a peer made without a room
	rec  *parleytest.Recorder // the Room's events
	user string               // the user ID
	info parley.UserInfo      // what it joins as: user and extra info
}

// newEngine returns a loopback-only Engine for srv, closed in t.Cleanup,
// which also waits for its last callback.
func newEngine(t *testing.T, srv *parleytest.Server, h parley.EngineEventHandler) *parley.Engine {
	t.Helper()
	return newEngineFor(t, parley.EngineConfig{AppID: srv.AppID, ServerURL: srv.URL}, h)
}

// newEngineFor is newEngine for any configuration.
func newEngineFor(t *testing.T, cfg parley.EngineConfig, h parley.EngineEventHandler, opts ...parley.Option) *parley.Engine {
	t.Helper()
	e, err := parley.NewEngine(cfg, h, append(opts, parley.WithLoopbackOnly())...)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, e.Close())
		waitDone(t, e)
	})
	return e
}

// waitDone waits for e.Done.
func waitDone(t *testing.T, e *parley.Engine) {
	t.Helper()
	select {
	case <-e.Done():
	case <-time.After(waitTimeout):
		t.Fatalf("Engine.Done not closed within %v of Close", waitTimeout)
	}
}

// newPeerAt creates an Engine for cfg with opts and, unless roomID is "",
// a Room for info in roomID; it does not join or log in. srv mints the
// tokens of join and login (it may be nil for a peer that uses neither).
func newPeerAt(t *testing.T, srv *parleytest.Server, cfg parley.EngineConfig, roomID string, info parley.UserInfo, opts ...parley.Option) *peer {
	t.Helper()
	p := &peer{srv: srv, eng: parleytest.NewRecorder(), user: info.UserID, info: info}
	p.e = newEngineFor(t, cfg, p.eng, opts...)
	if roomID != "" {
		p.rec = parleytest.NewRecorder()
		room, err := p.e.CreateRoom(roomID, p.rec)
		require.NoError(t, err)
		p.room = room
	}
	return p
}

// newPeer creates an Engine with opts and a Room for user in roomID; it
// does not join.
func newPeer(t *testing.T, srv *parleytest.Server, roomID, user string, opts ...parley.Option) *peer {
	t.Helper()
	return newPeerAt(t, srv, parley.EngineConfig{AppID: srv.AppID, ServerURL: srv.URL}, roomID, parley.UserInfo{UserID: user}, opts...)
}

// newMember is newPeer for a user with extra info.
func newMember(t *testing.T, srv *parleytest.Server, roomID string, info parley.UserInfo) *peer {
	t.Helper()
	return newPeerAt(t, srv, parley.EngineConfig{AppID: srv.AppID, ServerURL: srv.URL}, roomID, info)
}

// join joins the peer's room with a valid token and requires state 0 as
// the room's next event.
func (p *peer) join(t *testing.T) parleytest.RoomStateChanged {
	t.Helper()
	require.NoError(t, p.room.JoinRoom(p.srv.Token(p.room.RoomID(), p.user), p.info, parley.RoomConfig{}))
	return requireState(t, p.rec, 0)
}

// joined is newMember and join: a member in roomID with state 0 reported.
// The OnUserJoined events for the members already there are left to the
// caller.
func joined(t *testing.T, srv *parleytest.Server, roomID, userID, extra string) *peer {
	t.Helper()
	m := newMember(t, srv, roomID, parley.UserInfo{UserID: userID, ExtraInfo: extra})
	m.join(t)
	return m
}

// joinAll joins peers in order and waits until each has seen every other
// join, so that every member knows every other and the server has them all
// active.
func joinAll(t *testing.T, peers ...*peer) {
	t.Helper()
	for _, p := range peers {
		p.join(t)
	}
	for _, p := range peers {
		for _, o := range peers {
			if o != p {
				p.rec.WaitUserJoined(t, o.user)
			}
		}
	}
}

// roomOf returns one joined peer per user, all in roomID, each on an Engine
// of its own with opts, each knowing every other.
func roomOf(t *testing.T, srv *parleytest.Server, roomID string, users []string, opts ...parley.Option) []*peer {
	t.Helper()
	peers := make([]*peer, len(users))
	for i, u := range users {
		peers[i] = newPeer(t, srv, roomID, u, opts...)
	}
	joinAll(t, peers...)
	return peers
}

// newLoginPeer returns a peer with an Engine for srv and no room, not
// logged in.
func newLoginPeer(t *testing.T, srv *parleytest.Server, user string) *peer {
	t.Helper()
	return newLoginPeerFor(t, srv, srv.AppID, user)
}

// newLoginPeerFor is newLoginPeer for an Engine of another app of srv; its
// login helper (login) only works for srv.AppID.
func newLoginPeerFor(t *testing.T, srv *parleytest.Server, appID, user string) *peer {
	t.Helper()
	return newPeerAt(t, srv, parley.EngineConfig{AppID: appID, ServerURL: srv.URL}, "", parley.UserInfo{UserID: user})
}

// loggedIn is newLoginPeer and login.
func loggedIn(t *testing.T, srv *parleytest.Server, user string) *peer {
	t.Helper()
	p := newLoginPeer(t, srv, user)
	p.login(t)
	return p
}

// addRoom creates roomID on p's Engine, for p.user, and returns the peer
// of that room, which shares p's Engine (and its cleanup); it does not
// join.
func (p *peer) addRoom(t *testing.T, roomID string) *peer {
	t.Helper()
	q := *p
	q.rec = parleytest.NewRecorder()
	r, err := p.e.CreateRoom(roomID, q.rec)
	require.NoError(t, err)
	q.room = r
	return &q
}

// enter is addRoom and join: p.user in roomID on p's Engine, with state 0
// reported. OnUserJoined for the members already there is left to the
// caller.
func (p *peer) enter(t *testing.T, roomID string) *peer {
	t.Helper()
	q := p.addRoom(t, roomID)
	q.join(t)
	return q
}

// enterBoth has a and b enter roomID, a first, and waits until each knows
// the other.
func enterBoth(t *testing.T, roomID string, a, b *peer) (ra, rb *peer) {
	t.Helper()
	ra = a.enter(t, roomID)
	rb = b.enter(t, roomID)
	requireJoined(t, rb.rec, parley.UserInfo{UserID: a.user})
	requireJoined(t, ra.rec, parley.UserInfo{UserID: b.user})
	return ra, rb
}

// --- Assertions on events -------------------------------------------------

// expect requires the next event of rec, connection states aside, to be a
// T and returns it. Connection states are left unread.
func expect[T parleytest.Event](t *testing.T, rec *parleytest.Recorder) T {
	t.Helper()
	ev := rec.NextWhere(t, "event", func(ev parleytest.Event) bool {
		_, state := ev.(parleytest.ConnectionStateChanged)
		return !state
	})
	v, ok := ev.(T)
	if !ok {
		var zero T
		t.Fatalf("want a %T event, got %#v", zero, ev)
	}
	return v
}

// requireState requires the next event of a room's rec to be
// OnRoomStateChanged with state.
func requireState(t *testing.T, rec *parleytest.Recorder, state int) parleytest.RoomStateChanged {
	t.Helper()
	ev := rec.Next(t)
	sc, ok := ev.(parleytest.RoomStateChanged)
	require.Truef(t, ok, "want OnRoomStateChanged(%d), got %#v", state, ev)
	require.Equalf(t, state, sc.State, "room state (%v)", parley.ErrorCode(sc.State))
	return sc
}

// requireJoined requires the next event to be OnUserJoined(user).
func requireJoined(t *testing.T, rec *parleytest.Recorder, user parley.UserInfo) {
	t.Helper()
	require.Equal(t, parleytest.UserJoined{User: user}, rec.Next(t), "want OnUserJoined(%q)", user.UserID)
}

// requireLeave requires the next event to be OnUserLeave(userID, reason).
func requireLeave(t *testing.T, rec *parleytest.Recorder, userID string, reason parley.UserOfflineReason) {
	t.Helper()
	require.Equal(t, parleytest.UserLeave{UserID: userID, Reason: reason}, rec.Next(t), "want OnUserLeave(%q, %v)", userID, reason)
}

// requireLeft requires the next event to be OnLeaveRoom and returns its
// stats.
func requireLeft(t *testing.T, rec *parleytest.Recorder) parley.RoomStats {
	t.Helper()
	ev := rec.Next(t)
	lr, ok := ev.(parleytest.LeaveRoom)
	require.Truef(t, ok, "want OnLeaveRoom, got %#v", ev)
	return lr.Stats
}

// leftRoom returns the stats of the next OnLeaveRoom, leaving other events
// unread.
func leftRoom(t *testing.T, rec *parleytest.Recorder) parley.RoomStats {
	t.Helper()
	return parleytest.NextOf[parleytest.LeaveRoom](t, rec).Stats
}

// requireNoEvent requires that rec has no unread event. It proves absence
// only after a barrier: an event that would come after the one in
// question.
func requireNoEvent(t *testing.T, rec *parleytest.Recorder) {
	t.Helper()
	if p := rec.Pending(); len(p) > 0 {
		t.Fatalf("unexpected %#v", p[0])
	}
}

// requireNone requires that rec has no unread event of type T (see
// requireNoEvent).
func requireNone[T parleytest.Event](t *testing.T, rec *parleytest.Recorder, what string) {
	t.Helper()
	for _, ev := range rec.Pending() {
		if _, ok := ev.(T); ok {
			t.Fatalf("%s: unexpected %#v", what, ev)
		}
	}
}

// requireNoMsg requires that no message is recorded and not yet read (see
// requireNoEvent).
func requireNoMsg(t *testing.T, rec *parleytest.Recorder) {
	t.Helper()
	requireNone[parleytest.Message](t, rec, "message")
}

// requireNoResult is requireNoMsg for send results.
func requireNoResult(t *testing.T, rec *parleytest.Recorder) {
	t.Helper()
	requireNone[parleytest.SendResult](t, rec, "send result")
}

// drainResults returns every recorded result not yet read, without waiting.
// After Engine.Done it is every result the Engine will ever report.
func drainResults(rec *parleytest.Recorder) []parleytest.SendResult {
	var out []parleytest.SendResult
	for _, ev := range rec.TakeAll(isA[parleytest.SendResult]) {
		out = append(out, ev.(parleytest.SendResult))
	}
	return out
}

// isA reports whether ev is a T.
func isA[T parleytest.Event](ev parleytest.Event) bool {
	_, ok := ev.(T)
	return ok
}

// msgsUntil returns the messages received before the first one for which
// last reports true, which it consumes.
func msgsUntil(t *testing.T, rec *parleytest.Recorder, last func(m parleytest.Message) bool) []parleytest.Message {
	t.Helper()
	var out []parleytest.Message
	for range parleytest.DefaultCapacity {
		m := rec.NextMessage(t)
		if last(m) {
			return out
		}
		out = append(out, m)
	}
	t.Fatalf("the awaited message did not come within %d messages", parleytest.DefaultCapacity)
	return nil
}

// onMessage returns a Recorder hook that calls f with every message.
func onMessage(f func(m parleytest.Message)) func(parleytest.Event) {
	return func(ev parleytest.Event) {
		if m, ok := ev.(parleytest.Message); ok {
			f(m)
		}
	}
}

// userResult is the SendResult of OnUserMessageSendResult(id, r).
func userResult(id int64, r parley.UserMessageSendResult) parleytest.SendResult {
	return parleytest.SendResult{Kind: parleytest.UserMessageResult, ID: id, Code: int(r)}
}

// roomResult is the SendResult of OnRoomMessageSendResult(id, r).
func roomResult(id int64, r parley.RoomMessageSendResult) parleytest.SendResult {
	return parleytest.SendResult{Kind: parleytest.RoomMessageResult, ID: id, Code: int(r)}
}

// outsideResult is the SendResult of
// OnUserMessageSendResultOutsideRoom(id, r).
func outsideResult(id int64, r parley.UserMessageSendResult) parleytest.SendResult {
	return parleytest.SendResult{Kind: parleytest.OutsideRoomResult, ID: id, Code: int(r)}
}

// outsideMsg is a message received outside rooms.
func outsideMsg(from string, binary bool, payload []byte) parleytest.Message {
	return parleytest.Message{From: from, OutsideRoom: true, Binary: binary, Payload: payload}
}

// roomMsg is a message received in a room: a user message, or a broadcast.
func roomMsg(from string, broadcast, binary bool, payload []byte) parleytest.Message {
	return parleytest.Message{From: from, Broadcast: broadcast, Binary: binary, Payload: payload}
}

// requireNothingBefore proves that m's room has no pending event: it has
// another user join the room and requires that join to be m's next event.
// Events are dispatched in order, so anything queued earlier would come
// first.
func requireNothingBefore(t *testing.T, srv *parleytest.Server, m *peer, probeID string) *peer {
	t.Helper()
	probe := joined(t, srv, m.room.RoomID(), probeID, "probe")
	requireJoined(t, m.rec, probe.info)
	return probe
}

// requireNoRoomEvent proves that a room that is not joined has no pending
// event: LeaveRoom when not in the room reports OnLeaveRoom with zero
// stats, and it must be the next event.
func requireNoRoomEvent(t *testing.T, room *parley.Room, rec *parleytest.Recorder) {
	t.Helper()
	require.NoError(t, room.LeaveRoom())
	require.Equal(t, parley.RoomStats{}, requireLeft(t, rec), "OnLeaveRoom of a room not joined")
}

// --- Login and outside-room assertions --------------------------------------

// login logs p in with a valid login token and requires Success as its
// next event.
func (p *peer) login(t *testing.T) {
	t.Helper()
	require.NoError(t, p.e.Login(p.srv.LoginToken(p.user), p.user))
	p.requireLogin(t, p.user, parley.LoginErrorCodeSuccess)
}

// requireLogin requires the next engine event to be OnLoginResult(user,
// code).
func (p *peer) requireLogin(t *testing.T, user string, code parley.LoginErrorCode) parleytest.LoginResult {
	t.Helper()
	r := expect[parleytest.LoginResult](t, p.eng)
	require.Equal(t, user, r.UserID, "OnLoginResult user ID")
	require.Equalf(t, code, r.Code, "OnLoginResult code for %q", user)
	require.GreaterOrEqual(t, r.Elapsed, time.Duration(0), "OnLoginResult elapsed")
	return r
}

// logout logs p out and requires OnLogout(Logout) as its next event.
func (p *peer) logout(t *testing.T) {
	t.Helper()
	require.NoError(t, p.e.Logout())
	require.Equal(t, parleytest.Logout{Reason: parley.LogoutReasonLogout}, expect[parleytest.Logout](t, p.eng))
}

// status asks about peer and requires the answer as the next event. It is
// also the barrier of the login tests: the answer comes through the server
// on p's signaling connection, after every event the server sent p before.
func (p *peer) status(t *testing.T, peer string) parley.UserOnlineStatus {
	t.Helper()
	require.NoError(t, p.e.GetPeerOnlineStatus(peer))
	s := expect[parleytest.PeerOnlineStatus](t, p.eng)
	require.Equal(t, peer, s.PeerUserID, "OnGetPeerOnlineStatus peer")
	return s.Status
}

// quiet proves that p, logged in, has no engine event pending: the answer
// to a question about itself must be the next event, Online.
func (p *peer) quiet(t *testing.T) {
	t.Helper()
	require.Equal(t, parley.UserOnlineStatusOnline, p.status(t, p.user), "status of self")
}

// sent requires the next engine event to be the outside-room result of id.
func (p *peer) sent(t *testing.T, id int64) parley.UserMessageSendResult {
	t.Helper()
	r := expect[parleytest.SendResult](t, p.eng)
	require.Equal(t, parleytest.OutsideRoomResult, r.Kind, "%v", r)
	require.Equal(t, id, r.ID, "OnUserMessageSendResultOutsideRoom message ID")
	return parley.UserMessageSendResult(r.Code)
}

// recv requires the next engine event to be a message received outside
// rooms.
func (p *peer) recv(t *testing.T) parleytest.Message {
	t.Helper()
	m := expect[parleytest.Message](t, p.eng)
	require.True(t, m.OutsideRoom, "%v", m)
	return m
}

// setParams calls SetServerParams and returns the code of the next event,
// OnServerParamsSetResult.
func (p *peer) setParams(t *testing.T, signature, url string) int {
	t.Helper()
	require.NoError(t, p.e.SetServerParams(signature, url))
	return expect[parleytest.ServerParamsSetResult](t, p.eng).Code
}

// serverResult is an OnServerMessageSendResult, typed.
type serverResult struct {
	ID     int64
	Result parley.UserMessageSendResult
	Ack    []byte
}

// nextServerSent requires the next engine event to be a server-message
// result.
func (p *peer) nextServerSent(t *testing.T) serverResult {
	t.Helper()
	r := expect[parleytest.SendResult](t, p.eng)
	require.Equal(t, parleytest.ServerMessageResult, r.Kind, "%v", r)
	return serverResult{r.ID, parley.UserMessageSendResult(r.Code), r.Ack}
}

// serverSent requires the next engine event to be the server-message
// result of id.
func (p *peer) serverSent(t *testing.T, id int64) serverResult {
	t.Helper()
	r := p.nextServerSent(t)
	require.Equal(t, id, r.ID, "OnServerMessageSendResult message ID")
	return r
}

// sentBatch collects the outside-room results of ids, in any order,
// requiring each exactly once and nothing else meanwhile.
func (p *peer) sentBatch(t *testing.T, ids []int64) map[int64]parley.UserMessageSendResult {
	t.Helper()
	want := make(map[int64]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	got := make(map[int64]parley.UserMessageSendResult, len(ids))
	for range ids {
		r := expect[parleytest.SendResult](t, p.eng)
		require.Equal(t, parleytest.OutsideRoomResult, r.Kind, "%v", r)
		require.Truef(t, want[r.ID], "result for unexpected message ID %d", r.ID)
		_, dup := got[r.ID]
		require.Falsef(t, dup, "second result for message ID %d", r.ID)
		got[r.ID] = parley.UserMessageSendResult(r.Code)
	}
	return got
}

// userSent requires the next room event to be the user-message result of
// id.
func (p *peer) userSent(t *testing.T, id int64) parley.UserMessageSendResult {
	t.Helper()
	s := expect[parleytest.SendResult](t, p.rec)
	require.Equal(t, parleytest.UserMessageResult, s.Kind, "%v", s)
	require.Equal(t, id, s.ID, "OnUserMessageSendResult message ID")
	return parley.UserMessageSendResult(s.Code)
}

// --- Messages ----------------------------------------------------------------

// barrier proves that every reliable message and broadcast from sender to
// receiver sent before it has arrived, and returns those not yet read.
// It sends one reliable user message from sender to receiver: reliable
// user messages and broadcasts from one sender share the reliable channel
// and its order, end to end. It also waits for the barrier's own result.
func barrier(t *testing.T, sender, receiver *peer) []parleytest.Message {
	t.Helper()
	const mark = "\x00barrier"
	id := sender.room.SendUserMessage(receiver.user, mark, parley.MessageConfigReliableOrdered)
	require.Positive(t, id)
	before := msgsUntil(t, receiver.rec, func(m parleytest.Message) bool {
		return m.From == sender.user && !m.Broadcast && string(m.Payload) == mark
	})
	res := sender.rec.NextResult(t)
	require.Equal(t, userResult(id, parley.UserMessageSendResultSuccess), res, "barrier result")
	return before
}

// payloadOf returns n bytes of binary data that depend on seed. Each whole
// 256 bytes hold every byte value once, zero included, so from 256 bytes
// on the payload holds every byte value and is not UTF-8 (0xFF never is).
// The order of the values changes from one 256 bytes to the next (no two
// of the first 64 KiB alike), so a shifted, doubled or truncated part
// shows; two payloads of other seeds differ in every byte.
func payloadOf(n int, seed byte) []byte {
	b := make([]byte, n)
	var mul, add byte
	x := uint32(0x9e3779b9)
	for i := range b {
		if i%256 == 0 { // a new 256 bytes: a new permutation of the byte values
			x = x*1664525 + 1013904223 // an LCG: cheap, deterministic
			mul, add = byte(x>>24)|1, byte(i>>8)
		}
		b[i] = byte(i)*mul + add + seed // odd mul: i -> b[i] is one-to-one mod 256
	}
	return b
}

// textOf returns n bytes of printable ASCII that depend on seed, as
// payloadOf does.
func textOf(n int, seed byte) string {
	b := payloadOf(n, seed)
	for i := range b {
		b[i] = ' ' + b[i]%95
	}
	return string(b)
}

// requireBytes requires got to be want, byte for byte, without printing
// 64 KiB on failure.
func requireBytes(t *testing.T, want, got []byte, what string) {
	t.Helper()
	if bytes.Equal(want, got) {
		return
	}
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	t.Fatalf("%s: got %d bytes, want %d; first difference at byte %d", what, len(got), len(want), i)
}

// clip shows a payload, abridged when long.
func clip(b []byte) string {
	if len(b) <= 64 {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("%q…(%d bytes)", b[:64], len(b))
}

// countCodes counts the results of ids by code; ids without a result are
// not counted.
func countCodes(results map[int64]parleytest.SendResult, ids []int64) map[int]int {
	n := make(map[int]int)
	for _, id := range ids {
		if res, ok := results[id]; ok {
			n[res.Code]++
		}
	}
	return n
}

// quantile returns the q-quantile (0 < q <= 1) of samples by the nearest-rank
// method: the smallest sample at or above which q of them lie.
func quantile(samples []time.Duration, q float64) time.Duration {
	s := slices.Clone(samples)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	rank := int(q*float64(len(s)) + 0.999999)
	return s[max(rank, 1)-1]
}

// gate blocks the handlers that pass through it while closed; open
// releases them for good. The zero gate is open.
type gate struct {
	mu      sync.Mutex
	ch      chan struct{} // nil when open; guarded by mu
	entered chan struct{} // receives once per wait that starts
}

func newGate() *gate { return &gate{entered: make(chan struct{}, parleytest.DefaultCapacity)} }

// shut makes the next waits block until open.
func (g *gate) shut() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch == nil {
		g.ch = make(chan struct{})
	}
}

// open releases every waiter, present and future.
func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch != nil {
		close(g.ch)
		g.ch = nil
	}
}

// wait blocks while the gate is shut.
func (g *gate) wait() {
	g.mu.Lock()
	ch := g.ch
	g.mu.Unlock()
	if ch == nil {
		return
	}
	g.entered <- struct{}{}
	<-ch
}

// waitEntered waits until a handler is blocked in wait.
func (g *gate) waitEntered(t *testing.T) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(waitTimeout):
		t.Fatalf("no handler blocked at the gate within %v", waitTimeout)
	}
}

// --- Application server of server messages -----------------------------------

// hook is the application server of server messages: a real httptest
// server on loopback whose answer depends on the path's last segment, so
// that it answers alike under any prefix ("/ok", "/parley/ok"):
//
//	ok       200, body "ack:" + the request body
//	accepted 202, body "accepted"
//	fail     500, body "boom"
//	block    no answer until the test ends
type hook struct {
	ts      *httptest.Server
	reqs    chan hookReq
	release chan struct{}
}

// hookReq is one request the hook received.
type hookReq struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

func newHook(t *testing.T) *hook {
	t.Helper()
	h := &hook{reqs: make(chan hookReq, 256), release: make(chan struct{})}
	h.ts = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.ts.Close)
	// Cleanups run last-registered first: /block handlers return before
	// ts.Close waits for them.
	t.Cleanup(func() { close(h.release) })
	return h
}

func (h *hook) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	h.reqs <- hookReq{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
	switch path.Base(r.URL.Path) {
	case "ok":
		_, _ = w.Write(append([]byte("ack:"), body...))
	case "accepted":
		w.WriteHeader(http.StatusAccepted)
		_, _ = w.Write([]byte("accepted"))
	case "fail":
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = w.Write([]byte("boom"))
	case "block":
		select {
		case <-h.release:
		case <-r.Context().Done():
		}
	default:
		http.NotFound(w, r)
	}
}

// req requires a request to have reached the hook already.
func (h *hook) req(t *testing.T) hookReq {
	t.Helper()
	select {
	case r := <-h.reqs:
		return r
	case <-time.After(waitTimeout):
		t.Fatalf("no request reached the application server within %v", waitTimeout)
		return hookReq{}
	}
}

// requireNoReq requires that no request reached the hook (beyond those
// taken). Posts end before their result is sent, so once a test has every
// result, every request that was made is in reqs.
func (h *hook) requireNoReq(t *testing.T) {
	t.Helper()
	select {
	case r := <-h.reqs:
		t.Fatalf("unexpected request to the application server: %s %s %s", r.Method, r.Path, clip(r.Body))
	default:
	}
}

// serverFor is a parleytest server that may post server messages under
// the given URL prefixes, with f applied to its config if not nil.
func serverFor(t *testing.T, prefixes []string, f func(*server.Config)) *parleytest.Server {
	t.Helper()
	return parleytest.NewServer(t, parleytest.WithConfig(func(c *server.Config) {
		c.ServerMessageURLPrefixes = prefixes
		if f != nil {
			f(c)
		}
	}))
}

// --- Tokens, and servers the tests start themselves -----------------------

// mintToken mints a token as parleytest.Server does (publish and subscribe
// privileges until expire), for any app and key: for tokens a parleytest
// server would not mint, and for servers that are not parleytest's. A
// roomID of "" makes a login token.
func mintToken(t *testing.T, appID, appKey, roomID, userID string, expire time.Time) string {
	t.Helper()
	tk := token.New(appID, appKey, roomID, userID)
	tk.ExpireTime(expire)
	tk.AddPrivilege(token.PrivPublishStream, expire)
	tk.AddPrivilege(token.PrivSubscribeStream, expire)
	raw, err := tk.Serialize()
	require.NoError(t, err)
	return raw
}

// restartAppID and restartAppKey are the app of the servers a test starts
// and stops itself: startServerAt's and parleyd's.
const restartAppID, restartAppKey = "restartrestartrestart001", "restart-key"

// restartToken is a token of the restart app for userID in roomID ("": a
// login token), valid for an hour.
func restartToken(t *testing.T, roomID, userID string) string {
	t.Helper()
	return mintToken(t, restartAppID, restartAppKey, roomID, userID, time.Now().Add(time.Hour))
}

// startServerAt starts a loopback-only server of the restart app on listen
// and udp (0: ephemeral), shut down in t.Cleanup (a test may shut it down
// before), and returns it with a token minter for its app (restartToken).
// Unlike a parleytest server, it can be started again on the same ports.
func startServerAt(t *testing.T, listen string, udp int) (*server.Server, func(room, user string) string) {
	t.Helper()
	s, err := server.New(server.Config{Listen: listen, UDPPort: udp, LoopbackOnly: true, Apps: map[string]string{restartAppID: restartAppKey}})
	require.NoError(t, err)
	require.NoError(t, s.Start())
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s, func(room, user string) string { return restartToken(t, room, user) }
}

// --- Network faults ------------------------------------------------------------

// cutProxy forwards TCP connections to a server's signaling address
// (internal/faultproxy) until cut, which resets every one of them at once,
// as a network failure would: neither end sends a close frame or a leave.
// New connections are still forwarded after a cut.
type cutProxy struct{ p *faultproxy.Proxy }

// newCutProxy forwards to srv's signaling address; it is closed in
// t.Cleanup.
func newCutProxy(t *testing.T, srv *parleytest.Server) *cutProxy {
	t.Helper()
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	p, err := faultproxy.New(u.Host)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return &cutProxy{p}
}

// URL is the signaling URL to give an Engine instead of the server's.
func (p *cutProxy) URL() string { return "ws://" + p.p.Addr() + "/rtc" }

// cut resets every forwarded connection.
func (p *cutProxy) cut() { p.p.Cut() }

// block makes the proxy refuse new connections until unblock, as a
// network that is down would.
func (p *cutProxy) block()   { p.p.Block(true) }
func (p *cutProxy) unblock() { p.p.Block(false) }

// stall holds back every byte until flow: a network that stopped
// delivering without closing anything.
func (p *cutProxy) stall() { p.p.Stall() }
func (p *cutProxy) flow()  { p.p.Flow() }

// waitHeld waits until a connection holds bytes back in a stall:
// something was sent that the other end will not get until flow.
func (p *cutProxy) waitHeld(t *testing.T) {
	t.Helper()
	select {
	case <-p.p.Held():
	case <-time.After(waitTimeout):
		t.Fatalf("nothing crossed the stalled proxy within %v", waitTimeout)
	}
}
