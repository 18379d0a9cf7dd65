package parley_test

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
)

// msgWait only guards against a hang: every wait in the message tests ends
// on an event long before it on a healthy run, even with -race on a loaded
// 2-core machine.
const msgWait = 15 * time.Second

// msgBuffer is the capacity of a msgRecorder's channels: more than any test
// receives, so the dispatcher never waits on a test.
const msgBuffer = 8192

// rxMsg is one received message, as a room handler saw it.
type rxMsg struct {
	From      string
	Broadcast bool
	Binary    bool
	Payload   []byte
}

func (m rxMsg) String() string {
	kind := "user"
	if m.Broadcast {
		kind = "room"
	}
	if m.Binary {
		kind += " binary"
	}
	return fmt.Sprintf("%s message from %q (%d bytes)", kind, m.From, len(m.Payload))
}

// txResult is one send result: OnUserMessageSendResult, or
// OnRoomMessageSendResult when Broadcast is set. Code is the result's
// value (UserMessageSendResult or RoomMessageSendResult).
type txResult struct {
	ID        int64
	Broadcast bool
	Code      int
}

func userResult(id int64, r parley.UserMessageSendResult) txResult {
	return txResult{ID: id, Code: int(r)}
}

func roomResult(id int64, r parley.RoomMessageSendResult) txResult {
	return txResult{ID: id, Broadcast: true, Code: int(r)}
}

func (r txResult) String() string {
	if r.Broadcast {
		return fmt.Sprintf("OnRoomMessageSendResult(%d, %v)", r.ID, parley.RoomMessageSendResult(r.Code))
	}
	return fmt.Sprintf("OnUserMessageSendResult(%d, %v)", r.ID, parley.UserMessageSendResult(r.Code))
}

// msgRecorder is a RoomEventHandler that records, on one channel per kind,
// the room states, the members seen joining and leaving, OnLeaveRoom, the
// messages received and the send results.
type msgRecorder struct {
	states  chan int
	joins   chan string
	leaves  chan string
	left    chan parley.RoomStats
	msgs    chan rxMsg
	results chan txResult

	// onMsg, if set, runs on the dispatcher goroutine after a received
	// message is recorded. Set it before the room joins.
	onMsg func(m rxMsg)
	// resultWait, if set, replaces msgWait as the longest wait for a send
	// result: for an Engine whose message timeout is longer.
	resultWait time.Duration
}

func newMsgRecorder() *msgRecorder {
	return &msgRecorder{
		states:  make(chan int, 64),
		joins:   make(chan string, 64),
		leaves:  make(chan string, 64),
		left:    make(chan parley.RoomStats, 64),
		msgs:    make(chan rxMsg, msgBuffer),
		results: make(chan txResult, msgBuffer),
	}
}

func (r *msgRecorder) OnRoomStateChanged(_, _ string, state int, _ parley.RoomStateInfo) {
	r.states <- state
}
func (r *msgRecorder) OnLeaveRoom(stats parley.RoomStats)                    { r.left <- stats }
func (r *msgRecorder) OnTokenWillExpire()                                    {}
func (r *msgRecorder) OnUserJoined(user parley.UserInfo)                     { r.joins <- user.UserID }
func (r *msgRecorder) OnUserLeave(userID string, _ parley.UserOfflineReason) { r.leaves <- userID }

func (r *msgRecorder) OnUserMessageReceived(userID, message string) {
	r.message(rxMsg{From: userID, Payload: []byte(message)})
}
func (r *msgRecorder) OnUserBinaryMessageReceived(userID string, message []byte) {
	r.message(rxMsg{From: userID, Binary: true, Payload: message})
}
func (r *msgRecorder) OnRoomMessageReceived(userID, message string) {
	r.message(rxMsg{From: userID, Broadcast: true, Payload: []byte(message)})
}
func (r *msgRecorder) OnRoomBinaryMessageReceived(userID string, message []byte) {
	r.message(rxMsg{From: userID, Broadcast: true, Binary: true, Payload: message})
}
func (r *msgRecorder) OnUserMessageSendResult(msgID int64, result parley.UserMessageSendResult) {
	r.results <- userResult(msgID, result)
}
func (r *msgRecorder) OnRoomMessageSendResult(msgID int64, result parley.RoomMessageSendResult) {
	r.results <- roomResult(msgID, result)
}

func (r *msgRecorder) message(m rxMsg) {
	r.msgs <- m
	if r.onMsg != nil {
		r.onMsg(m)
	}
}

// state returns the next room state.
func (r *msgRecorder) state(t *testing.T) int {
	t.Helper()
	select {
	case s := <-r.states:
		return s
	case <-time.After(msgWait):
		t.Fatalf("no OnRoomStateChanged within %v", msgWait)
		return 0
	}
}

// leftRoom returns the stats of the next OnLeaveRoom.
func (r *msgRecorder) leftRoom(t *testing.T) parley.RoomStats {
	t.Helper()
	select {
	case s := <-r.left:
		return s
	case <-time.After(msgWait):
		t.Fatalf("no OnLeaveRoom within %v", msgWait)
		return parley.RoomStats{}
	}
}

// waitJoin waits for OnUserJoined(userID), skipping other joins.
func (r *msgRecorder) waitJoin(t *testing.T, userID string) {
	t.Helper()
	timeout := time.After(msgWait)
	for {
		select {
		case u := <-r.joins:
			if u == userID {
				return
			}
		case <-timeout:
			t.Fatalf("no OnUserJoined(%q) within %v", userID, msgWait)
		}
	}
}

// waitLeave waits for OnUserLeave(userID), skipping other leaves.
func (r *msgRecorder) waitLeave(t *testing.T, userID string) {
	t.Helper()
	timeout := time.After(msgWait)
	for {
		select {
		case u := <-r.leaves:
			if u == userID {
				return
			}
		case <-timeout:
			t.Fatalf("no OnUserLeave(%q) within %v", userID, msgWait)
		}
	}
}

// nextMsg returns the next received message.
func (r *msgRecorder) nextMsg(t *testing.T) rxMsg {
	t.Helper()
	select {
	case m := <-r.msgs:
		return m
	case <-time.After(msgWait):
		t.Fatalf("no message received within %v", msgWait)
		return rxMsg{}
	}
}

// nextMsgs returns the next n received messages, in order. The guard
// timeout restarts with every message.
func (r *msgRecorder) nextMsgs(t *testing.T, n int) []rxMsg {
	t.Helper()
	out := make([]rxMsg, 0, n)
	for len(out) < n {
		select {
		case m := <-r.msgs:
			out = append(out, m)
		case <-time.After(msgWait):
			t.Fatalf("%d of %d messages received; none more within %v", len(out), n, msgWait)
		}
	}
	return out
}

// msgsUntil returns the messages received before the first one for which
// last reports true, which it consumes.
func (r *msgRecorder) msgsUntil(t *testing.T, last func(m rxMsg) bool) []rxMsg {
	t.Helper()
	var out []rxMsg
	for range msgBuffer {
		m := r.nextMsg(t)
		if last(m) {
			return out
		}
		out = append(out, m)
	}
	t.Fatalf("the awaited message did not come within %d messages", msgBuffer)
	return nil
}

// nextResult returns the next send result.
func (r *msgRecorder) nextResult(t *testing.T) txResult {
	t.Helper()
	wait := cmp.Or(r.resultWait, msgWait)
	select {
	case res := <-r.results:
		return res
	case <-time.After(wait):
		t.Fatalf("no send result within %v", wait)
		return txResult{}
	}
}

// waitResults reads send results until every one of ids has one and
// returns every result read, by ID. It fails on a second result for any
// ID. The guard timeout restarts with every result.
func (r *msgRecorder) waitResults(t *testing.T, ids ...int64) map[int64]txResult {
	t.Helper()
	got := make(map[int64]txResult, len(ids))
	return r.addResults(t, got, ids...)
}

// addResults is waitResults adding to got, results already read.
func (r *msgRecorder) addResults(t *testing.T, got map[int64]txResult, ids ...int64) map[int64]txResult {
	t.Helper()
	missing := 0
	for _, id := range ids {
		if _, ok := got[id]; !ok {
			missing++
		}
	}
	want := make(map[int64]bool, len(ids))
	for _, id := range ids {
		want[id] = true
	}
	for missing > 0 {
		res := r.nextResult(t)
		prev, dup := got[res.ID]
		require.Falsef(t, dup, "second result for message %d: %v after %v", res.ID, res, prev)
		got[res.ID] = res
		if want[res.ID] {
			missing--
		}
	}
	return got
}

// requireNoMsg requires that no message is recorded and not yet read. It
// proves absence only after a barrier: an event that would come after the
// message in question.
func (r *msgRecorder) requireNoMsg(t *testing.T) {
	t.Helper()
	select {
	case m := <-r.msgs:
		t.Fatalf("unexpected %v: %q", m, clip(m.Payload))
	default:
	}
}

// requireNoResult is requireNoMsg for send results.
func (r *msgRecorder) requireNoResult(t *testing.T) {
	t.Helper()
	select {
	case res := <-r.results:
		t.Fatalf("unexpected %v", res)
	default:
	}
}

// drainResults returns every recorded result not yet read, without waiting.
// After Engine.Done it is every result the Engine will ever report.
func (r *msgRecorder) drainResults() []txResult {
	var out []txResult
	for {
		select {
		case res := <-r.results:
			out = append(out, res)
		default:
			return out
		}
	}
}

// msgPeer is one user on an Engine of its own, with one Room.
type msgPeer struct {
	user string
	e    *parley.Engine
	room *parley.Room
	rec  *msgRecorder
}

// newMsgServer starts a test server, stopped in t.Cleanup.
func newMsgServer(t *testing.T, opts ...parleytest.ServerOption) *parleytest.Server {
	t.Helper()
	return parleytest.NewServer(t, opts...)
}

// newMsgPeer creates a loopback-only Engine with opts and a Room for user
// in roomID; it does not join. The Engine is closed in t.Cleanup, which
// also waits for its last callback.
func newMsgPeer(t *testing.T, srv *parleytest.Server, roomID, user string, opts ...parley.Option) *msgPeer {
	t.Helper()
	opts = append([]parley.Option{parley.WithLoopbackOnly()}, opts...)
	e, err := parley.NewEngine(parley.EngineConfig{AppID: srv.AppID, ServerURL: srv.URL}, nil, opts...)
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, e.Close())
		select {
		case <-e.Done():
		case <-time.After(msgWait):
			t.Errorf("Engine of %q: Done not closed within %v of Close", user, msgWait)
		}
	})
	rec := newMsgRecorder()
	room, err := e.CreateRoom(roomID, rec)
	require.NoError(t, err)
	return &msgPeer{user: user, e: e, room: room, rec: rec}
}

// join joins the peer's room and waits for state 0.
func (p *msgPeer) join(t *testing.T, srv *parleytest.Server) {
	t.Helper()
	require.NoError(t, p.room.JoinRoom(srv.Token(p.room.RoomID(), p.user), parley.UserInfo{UserID: p.user}, parley.RoomConfig{}))
	require.Equal(t, 0, p.rec.state(t), "%s: room state after JoinRoom", p.user)
}

// joinAll joins peers in order and waits until each has seen every other
// join, so that every member knows every other and the server has them all
// active.
func joinAll(t *testing.T, srv *parleytest.Server, peers ...*msgPeer) {
	t.Helper()
	for _, p := range peers {
		p.join(t, srv)
	}
	for _, p := range peers {
		for _, o := range peers {
			if o != p {
				p.rec.waitJoin(t, o.user)
			}
		}
	}
}

// msgRoom returns one joined peer per user, all in roomID, each on an
// Engine of its own with opts.
func msgRoom(t *testing.T, srv *parleytest.Server, roomID string, users []string, opts ...parley.Option) []*msgPeer {
	t.Helper()
	peers := make([]*msgPeer, len(users))
	for i, u := range users {
		peers[i] = newMsgPeer(t, srv, roomID, u, opts...)
	}
	joinAll(t, srv, peers...)
	return peers
}

// barrier proves that every reliable message and broadcast from sender to
// receiver sent before it has arrived, and returns those not yet read.
// It sends one reliable user message from sender to receiver: reliable
// user messages and broadcasts from one sender share the reliable channel
// and its order, end to end. It also waits for the barrier's own result.
func barrier(t *testing.T, sender, receiver *msgPeer) []rxMsg {
	t.Helper()
	const mark = "\x00barrier"
	id := sender.room.SendUserMessage(receiver.user, mark, parley.MessageConfigReliableOrdered)
	require.Positive(t, id)
	before := receiver.rec.msgsUntil(t, func(m rxMsg) bool {
		return m.From == sender.user && !m.Broadcast && string(m.Payload) == mark
	})
	res := sender.rec.nextResult(t)
	require.Equal(t, userResult(id, parley.UserMessageSendResultSuccess), res, "barrier result")
	return before
}

// payloadOf returns n bytes with a pattern that depends on seed, so two
// payloads of the same length differ and a shifted or truncated copy shows.
func payloadOf(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223 // an LCG: cheap, deterministic, every byte value
		b[i] = byte(x >> 24)
	}
	return b
}

// textOf returns n bytes of printable ASCII that depend on seed.
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

func clip(b []byte) string {
	if len(b) > 40 {
		return string(b[:40]) + "..."
	}
	return string(b)
}

// countCodes counts the results of ids by code; ids without a result are
// not counted.
func countCodes(results map[int64]txResult, ids []int64) map[int]int {
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
	ch      chan struct{} // nil when open
	entered chan struct{} // receives once per wait that starts
}

func newGate() *gate { return &gate{entered: make(chan struct{}, msgBuffer)} }

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
	case <-time.After(msgWait):
		t.Fatalf("no handler blocked at the gate within %v", msgWait)
	}
}
