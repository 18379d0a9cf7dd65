package parley_test

import (
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
)

// TestMain fails the package if any goroutine outlives the tests: every
// Engine and server is closed by then, so pion, the dispatcher and the
// signaling pumps must all have stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout only guards against a hang: every wait in these tests ends on
// an event, long before it on a healthy run, even with -race on a loaded
// 2-core machine.
const waitTimeout = 15 * time.Second

// Room events, as a roomRecorder records them.
type (
	stateChanged struct {
		RoomID, UserID string
		State          int
		Info           parley.RoomStateInfo
	}
	userJoined struct{ User parley.UserInfo }
	userLeave  struct {
		UserID string
		Reason parley.UserOfflineReason
	}
	leaveRoom       struct{ Stats parley.RoomStats }
	tokenWillExpire struct{}
	otherRoomEvent  struct{ What string } // a message event; none is expected here
)

// roomRecorder is a RoomEventHandler that records every event, in order, on
// one channel. The buffer is large enough that the dispatcher never waits
// on a test.
type roomRecorder struct {
	ev chan any
	// onState, if set, runs in OnRoomStateChanged after the event is
	// recorded, on the dispatcher goroutine.
	onState func(state int)
}

func newRoomRecorder() *roomRecorder { return &roomRecorder{ev: make(chan any, 1024)} }

func (r *roomRecorder) OnRoomStateChanged(roomID, userID string, state int, info parley.RoomStateInfo) {
	r.ev <- stateChanged{roomID, userID, state, info}
	if r.onState != nil {
		r.onState(state)
	}
}
func (r *roomRecorder) OnLeaveRoom(stats parley.RoomStats) { r.ev <- leaveRoom{stats} }
func (r *roomRecorder) OnTokenWillExpire()                 { r.ev <- tokenWillExpire{} }
func (r *roomRecorder) OnUserJoined(user parley.UserInfo)  { r.ev <- userJoined{user} }
func (r *roomRecorder) OnUserLeave(userID string, reason parley.UserOfflineReason) {
	r.ev <- userLeave{userID, reason}
}
func (r *roomRecorder) OnUserMessageReceived(userID, message string) {
	r.ev <- otherRoomEvent{"OnUserMessageReceived " + userID}
}
func (r *roomRecorder) OnUserBinaryMessageReceived(userID string, message []byte) {
	r.ev <- otherRoomEvent{"OnUserBinaryMessageReceived " + userID}
}
func (r *roomRecorder) OnUserMessageSendResult(msgID int64, result parley.UserMessageSendResult) {
	r.ev <- otherRoomEvent{fmt.Sprintf("OnUserMessageSendResult %d %v", msgID, result)}
}
func (r *roomRecorder) OnRoomMessageReceived(userID, message string) {
	r.ev <- otherRoomEvent{"OnRoomMessageReceived " + userID}
}
func (r *roomRecorder) OnRoomBinaryMessageReceived(userID string, message []byte) {
	r.ev <- otherRoomEvent{"OnRoomBinaryMessageReceived " + userID}
}
func (r *roomRecorder) OnRoomMessageSendResult(msgID int64, result parley.RoomMessageSendResult) {
	r.ev <- otherRoomEvent{fmt.Sprintf("OnRoomMessageSendResult %d %v", msgID, result)}
}

// next returns the next event, failing t if none comes in waitTimeout.
func (r *roomRecorder) next(t *testing.T) any {
	t.Helper()
	select {
	case ev := <-r.ev:
		return ev
	case <-time.After(waitTimeout):
		t.Fatalf("no room event within %v", waitTimeout)
		return nil
	}
}

// requireState requires the next event to be OnRoomStateChanged with state.
func (r *roomRecorder) requireState(t *testing.T, state int) stateChanged {
	t.Helper()
	ev := r.next(t)
	sc, ok := ev.(stateChanged)
	require.Truef(t, ok, "want OnRoomStateChanged(%d), got %#v", state, ev)
	require.Equalf(t, state, sc.State, "room state (%v)", parley.ErrorCode(sc.State))
	return sc
}

// requireJoined requires the next event to be OnUserJoined(user).
func (r *roomRecorder) requireJoined(t *testing.T, user parley.UserInfo) {
	t.Helper()
	ev := r.next(t)
	require.Equal(t, userJoined{user}, ev, "want OnUserJoined(%q)", user.UserID)
}

// requireLeave requires the next event to be OnUserLeave(userID, reason).
func (r *roomRecorder) requireLeave(t *testing.T, userID string, reason parley.UserOfflineReason) {
	t.Helper()
	ev := r.next(t)
	require.Equal(t, userLeave{userID, reason}, ev, "want OnUserLeave(%q, %v)", userID, reason)
}

// requireLeft requires the next event to be OnLeaveRoom and returns its
// stats.
func (r *roomRecorder) requireLeft(t *testing.T) parley.RoomStats {
	t.Helper()
	ev := r.next(t)
	lr, ok := ev.(leaveRoom)
	require.Truef(t, ok, "want OnLeaveRoom, got %#v", ev)
	return lr.Stats
}

// engineRecorder is an EngineEventHandler that records connection states.
type engineRecorder struct {
	parley.NopEngineEventHandler
	states chan parley.ConnectionState
}

func newEngineRecorder() *engineRecorder {
	return &engineRecorder{states: make(chan parley.ConnectionState, 64)}
}

func (r *engineRecorder) OnConnectionStateChanged(s parley.ConnectionState) { r.states <- s }

// waitState waits for connection state want, skipping any other state.
func (r *engineRecorder) waitState(t *testing.T, want parley.ConnectionState) {
	t.Helper()
	timeout := time.After(waitTimeout)
	for {
		select {
		case s := <-r.states:
			if s == want {
				return
			}
		case <-timeout:
			t.Fatalf("no connection state %v within %v", want, waitTimeout)
		}
	}
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

// member is one user in one room, on an Engine of its own.
type member struct {
	e    *parley.Engine
	eng  *engineRecorder
	room *parley.Room
	rec  *roomRecorder
	user parley.UserInfo
}

// newMember creates an Engine and a Room for user in roomID; it does not
// join.
func newMember(t *testing.T, srv *parleytest.Server, roomID string, user parley.UserInfo) *member {
	t.Helper()
	return newMemberAt(t, parley.EngineConfig{AppID: srv.AppID, ServerURL: srv.URL}, roomID, user)
}

// newMemberAt is newMember with an Engine for cfg.
func newMemberAt(t *testing.T, cfg parley.EngineConfig, roomID string, user parley.UserInfo, opts ...parley.Option) *member {
	t.Helper()
	m := &member{eng: newEngineRecorder(), rec: newRoomRecorder(), user: user}
	m.e = newEngineFor(t, cfg, m.eng, opts...)
	room, err := m.e.CreateRoom(roomID, m.rec)
	require.NoError(t, err)
	m.room = room
	return m
}

// join joins the member's room with a valid token and waits for state 0.
func (m *member) join(t *testing.T, srv *parleytest.Server) stateChanged {
	t.Helper()
	require.NoError(t, m.room.JoinRoom(srv.Token(m.room.RoomID(), m.user.UserID), m.user, parley.RoomConfig{}))
	return m.rec.requireState(t, 0)
}

// joined is newMember and join: a member in roomID with state 0 reported.
// The OnUserJoined events for the members already there are left to the
// caller.
func joined(t *testing.T, srv *parleytest.Server, roomID, userID, extra string) *member {
	t.Helper()
	m := newMember(t, srv, roomID, parley.UserInfo{UserID: userID, ExtraInfo: extra})
	m.join(t, srv)
	return m
}

// requireNothingBefore proves that m's room has no pending event: it has
// another user join the room and requires that join to be m's next event.
// Events are dispatched in order, so anything queued earlier would come
// first.
func requireNothingBefore(t *testing.T, srv *parleytest.Server, m *member, probeID string) *member {
	t.Helper()
	probe := joined(t, srv, m.room.RoomID(), probeID, "probe")
	m.rec.requireJoined(t, probe.user)
	return probe
}

// requireNoRoomEvent proves that a room that is not joined has no pending
// event: LeaveRoom when not in the room reports OnLeaveRoom with zero
// stats, and it must be the next event.
func requireNoRoomEvent(t *testing.T, room *parley.Room, rec *roomRecorder) {
	t.Helper()
	require.NoError(t, room.LeaveRoom())
	require.Equal(t, parley.RoomStats{}, rec.requireLeft(t), "OnLeaveRoom of a room not joined")
}

// cutProxy forwards TCP connections to a server's signaling address until
// cut, which closes every one of them at once, as a network failure would:
// neither end sends a close frame or a leave. New connections are still
// forwarded after a cut.
type cutProxy struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu      sync.Mutex
	conns   []net.Conn
	blocked bool // refuse new connections (close them at once)
}

// block makes the proxy refuse new connections until unblock, as a
// network that is down would.
func (p *cutProxy) block() {
	p.mu.Lock()
	p.blocked = true
	p.mu.Unlock()
}

func (p *cutProxy) unblock() {
	p.mu.Lock()
	p.blocked = false
	p.mu.Unlock()
}

// newCutProxy forwards to srv's signaling address; it is closed in
// t.Cleanup.
func newCutProxy(t *testing.T, srv *parleytest.Server) *cutProxy {
	t.Helper()
	u, err := url.Parse(srv.URL)
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &cutProxy{ln: ln, target: u.Host}
	p.wg.Add(1)
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

// URL is the signaling URL to give an Engine instead of the server's.
func (p *cutProxy) URL() string { return "ws://" + p.ln.Addr().String() + "/rtc" }

func (p *cutProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		blocked := p.blocked
		p.mu.Unlock()
		if blocked {
			_ = c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, s)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, s)
		go p.pipe(s, c)
	}
}

// pipe copies src to dst; when either fails, both close.
func (p *cutProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// cut closes every forwarded connection.
func (p *cutProxy) cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}
