package parley

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"

	"github.com/parleyhq/parley/internal/acks"
	"github.com/parleyhq/parley/internal/dispatch"
	"github.com/parleyhq/parley/internal/ids"
	"github.com/parleyhq/parley/internal/signal"
	"github.com/parleyhq/parley/internal/transport"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// EngineConfig holds the ByteRTC-shaped settings of an Engine.
type EngineConfig struct {
	// AppID is the application the tokens are signed for: 24 characters.
	AppID string
	// ServerURL is the signaling endpoint, e.g. "ws://127.0.0.1:7880/rtc".
	ServerURL string
}

// Timing of the Engine's own operations.
const (
	dialTimeout        = 10 * time.Second // signaling connect, Welcome included
	defaultJoinTimeout = 20 * time.Second // JoinRoom call to joined
	leaveTimeout       = 5 * time.Second  // wait for the server to confirm a leave
)

// Engine is the root object of the SDK, ByteRTC's IRTCVideo: it owns the
// connection to the server, the rooms, and the goroutine that runs every
// callback. Create it with NewEngine and release it with Close.
//
// An Engine is safe for concurrent use: its methods, and its Rooms', may be
// called from any goroutine, handlers included.
type Engine struct {
	// Lock order: a lock may be taken while holding those before it in
	// these chains, never the reverse.
	//
	//	attempt.sendMu → Room.mu → Engine.mu
	//	attempt.sendMu → outbox.mu → an acks.Book's mutex, dispatch.Queue.mu
	//	Engine.lmu → Engine.mu, outbox.mu (lmu is never taken under Room.mu)
	//	Engine.sigSendMu → outbox.mu
	//	Room.mu → dispatch.Queue.mu
	//
	// Room.seenMu, the acks.Book and acks.Batcher mutexes, dispatch.Queue.mu
	// and the signal package's locks are leaves for this package: nothing
	// of it is taken under them. Engine.mu is never held while a Room's
	// lock is taken. No lock is held while a handler runs: code under a
	// lock only queues events (Queue.Control never blocks).

	cfg     EngineConfig
	opts    options
	log     *zap.Logger
	handler EngineEventHandler
	q       *dispatch.Queue
	api     *webrtc.API
	out     *outbox // sends awaiting results; its own lock

	instance uint64 // names this Engine in its messages, for receivers' duplicate checks

	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc

	mu        sync.Mutex
	closed    bool             // guarded by mu
	rooms     map[string]*Room // guarded by mu
	userID    string           // guarded by mu; the Engine's one user ID while userRefs > 0
	userRefs  int              // guarded by mu; the rooms' attempts and the login that use userID
	attempts  int              // guarded by mu; the rooms' attempts alive (joining, in the room, leaving): they use pr
	idleStop  func() bool      // guarded by mu; stops the timer that closes pr when no attempt is left (closeIdle); nil if none
	sig       *signal.Client   // guarded by mu; the live signaling connection, or nil
	dialing   *dial            // guarded by mu; a connect in progress, or nil
	connected bool             // guarded by mu; has been connected once (for Reconnecting)
	wg        sync.WaitGroup   // Add guarded by mu; joins, leaves and teardowns in flight
	pr        *rtc             // guarded by mu; the PeerConnection of the rooms, or the last one (see rtcFor)
	sessGen   uint64           // guarded by mu; counts server sessions: a lost one ends its rtc

	handles    sync.Map      // Room.handle → *Room: where the rtc's readers send each packet
	lastHandle atomic.Uint32 // the last Room.handle given out

	lmu       sync.Mutex // taken before mu, never under it
	lg        login      // guarded by lmu
	sigSendMu sync.Mutex // held to take an ID and queue the frame, so signaling sends go out in ID order
}

// dial is one connect attempt that several callers may wait for.
type dial struct {
	done chan struct{}
	c    *signal.Client
	err  error
}

// NewEngine checks cfg and returns an Engine. It does no network I/O: the
// Engine connects when it first needs to. A nil h means no engine events.
func NewEngine(cfg EngineConfig, h EngineEventHandler, opts ...Option) (*Engine, error) {
	if len(cfg.AppID) != 24 {
		return nil, invalidArg("AppID %q is %d characters, want 24", cfg.AppID, len(cfg.AppID))
	}
	if !isSignalURL(cfg.ServerURL) {
		return nil, invalidArg("ServerURL %q is not a ws:// or wss:// URL", cfg.ServerURL)
	}
	o := newOptions(opts)
	for _, s := range o.serverURLs {
		if !isSignalURL(s) {
			return nil, invalidArg("WithServerURLs: %q is not a ws:// or wss:// URL", s)
		}
	}
	if h == nil {
		h = NopEngineEventHandler{}
	}
	log := o.logger
	if log == nil {
		log = zap.NewNop()
	}
	e := &Engine{
		cfg:     cfg,
		opts:    o,
		log:     log,
		handler: h,
		q:       dispatch.New(0),
		// Data channels only: pion's media interceptors (NACK, RTCP
		// reports, TWCC) would add goroutines and a 100 ms ticker to every
		// PeerConnection for media it never carries.
		api:   transport.NewAPI(transport.Options{Logger: o.logger, LoopbackOnly: o.loopbackOnly, DataOnly: true}),
		rooms: make(map[string]*Room),
	}
	e.out = newOutbox(o.messageTimeout, func(id int64) { e.resolve(id, int(UserMessageSendResultTimeout)) })
	e.ctx, e.cancel = context.WithCancel(context.Background())
	e.instance = rand.Uint64() | 1 // never 0, which means "unnamed"
	e.lg.owed = acks.Batcher{Delay: ackDelay, Flush: e.flushLoginAcks}
	return e, nil
}

// isSignalURL reports whether s is a ws:// or wss:// URL with a host.
func isSignalURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "ws" || u.Scheme == "wss") && u.Host != ""
}

// CreateRoom returns the Room for roomID, ByteRTC's createRTCRoom. It does
// not join: call JoinRoom. Creating a room whose ID this Engine already has
// closes the earlier Room, as ByteRTC replaces it. A nil h means no room
// events.
func (e *Engine) CreateRoom(roomID string, h RoomEventHandler) (*Room, error) {
	if err := ids.Check("room ID", roomID); err != nil {
		return nil, invalidArg("%v", err)
	}
	r := newRoom(e, roomID, h)
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		e.handles.Delete(r.handle)
		return nil, ErrEngineClosed
	}
	old := e.rooms[roomID]
	e.rooms[roomID] = r
	e.mu.Unlock()
	if old != nil {
		_ = old.Close()
	}
	return r, nil
}

// Close leaves every room (the others see Quit), closes the connection and
// stops every goroutine of the Engine, waiting for the network ones. It is
// idempotent and may be called from a handler. Events already queued still
// run; Done is closed after the last of them. No OnLeaveRoom follows Close.
func (e *Engine) Close() error {
	// lmu only while the login state changes: the login operations Close
	// waits for below take it too.
	e.lmu.Lock()
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		e.lmu.Unlock()
		return nil
	}
	e.closed = true
	e.stopIdleLocked()
	rooms := make([]*Room, 0, len(e.rooms))
	for _, r := range e.rooms {
		rooms = append(rooms, r)
	}
	e.rooms = nil
	sig := e.sig
	e.mu.Unlock()

	// Sends in flight get their one result, then the callbacks stop: what
	// is queued still runs, producers
	// waiting on a full queue are released, nothing new is accepted.
	loggedIn := e.lg.phase == loggedIn || e.lg.phase == loggingIn
	if loggedIn {
		e.endLoginLocked()
		e.emit(func(h EngineEventHandler) { h.OnLogout(LogoutReasonLogout) })
	}
	e.out.close() // no send gets an ID from now on: Send* returns -1
	e.failPending(nil)
	e.q.Close()
	e.lmu.Unlock()
	var atts []*attempt
	for _, r := range rooms {
		if a := r.destroy(); a != nil {
			atts = append(atts, a)
		}
	}
	// The server confirms every leave before the transports close: it
	// would otherwise see a PeerConnection or the connection end first,
	// and tell the others Dropped rather than Quit.
	// While reconnecting there is nobody to confirm: the server drops the
	// members when the session's grace period ends.
	if sig != nil && sig.Connected() && len(atts) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
		var wg sync.WaitGroup
		for _, a := range atts {
			wg.Go(func() { _, _ = sig.Request(ctx, leaveFrame(a.roomID, UserOfflineReasonQuit)) })
		}
		wg.Wait()
		cancel()
	}
	if sig != nil && loggedIn {
		ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
		_ = sig.Send(ctx, &pb.ClientFrame{Body: &pb.ClientFrame_Logout{Logout: &pb.LogoutRequest{}}})
		cancel()
	}
	e.cancel()
	e.lg.owed.Close() // after cancel: a flush running returns at once
	var errs []error
	for _, a := range atts {
		if err := a.end(); err != nil {
			errs = append(errs, err)
		}
	}
	e.mu.Lock()
	x := e.pr
	e.mu.Unlock()
	if x != nil {
		x.fail(ErrEngineClosed, true)
		<-x.freed // when another goroutine ended it first, it may still be closing it
	}
	if sig != nil {
		sig.Close()
		<-sig.Done()
	}
	e.wg.Wait()
	return errors.Join(errs...)
}

// Done is closed once the Engine is closed and its last callback has
// returned.
func (e *Engine) Done() <-chan struct{} { return e.q.Done() }

// emit queues a call of the engine handler.
func (e *Engine) emit(f func(h EngineEventHandler)) {
	e.q.Control(func() { f(e.handler) })
}

// goTracked runs f in a goroutine that Close waits for; false if the Engine
// is closed.
func (e *Engine) goTracked(f func()) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return false
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		f()
	}()
	return true
}

// claimUser claims the Engine's one user ID for a room's attempt (room)
// or the login: false if another user ID holds it. A room's claim also
// keeps the Engine's PeerConnection (pr) from closing as idle.
func (e *Engine) claimUser(userID string, room bool) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.userRefs > 0 && e.userID != userID {
		return false
	}
	e.userID = userID
	e.userRefs++
	if room {
		e.attempts++
		e.stopIdleLocked()
	}
	return true
}

// releaseUser gives back a claim of claimUser. When the last room's
// attempt has ended, the PeerConnection closes after the idle timeout
// unless a room claims it again first (closeIdle).
func (e *Engine) releaseUser(room bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.userRefs--
	if !room {
		return
	}
	e.attempts--
	// No timer is running: the claim that made attempts positive stopped it.
	if x := e.pr; e.attempts == 0 && !e.closed && x != nil && !x.ended() && e.opts.idleTransport > 0 {
		// Tracked: Close waits for a PeerConnection closing as idle.
		t := time.AfterFunc(e.opts.idleTransport, func() { e.goTracked(func() { e.closeIdle(x) }) })
		e.idleStop = t.Stop
	}
}

// stopIdleLocked stops the idle timer, if one runs. e.mu is held.
func (e *Engine) stopIdleLocked() {
	if e.idleStop != nil {
		e.idleStop()
		e.idleStop = nil
	}
}

// signal returns the live signaling connection, connecting if there is
// none. Concurrent callers share one connect.
func (e *Engine) signal(ctx context.Context) (*signal.Client, error) {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, ErrEngineClosed
	}
	if e.sig != nil {
		c := e.sig
		e.mu.Unlock()
		return c, nil
	}
	d := e.dialing
	if d == nil {
		d = &dial{done: make(chan struct{})}
		e.dialing = d
		e.wg.Add(1)
		go e.connect(d, e.connected)
	}
	e.mu.Unlock()
	select {
	case <-d.done:
		return d.c, d.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// connect dials the server for d and publishes the result.
func (e *Engine) connect(d *dial, again bool) {
	defer e.wg.Done()
	if again {
		e.emit(func(h EngineEventHandler) { h.OnConnectionStateChanged(ConnectionStateReconnecting) })
	} else {
		e.emit(func(h EngineEventHandler) { h.OnConnectionStateChanged(ConnectionStateConnecting) })
	}
	ctx, cancel := context.WithTimeout(e.ctx, dialTimeout)
	defer cancel()
	// OnClosed may run before the client is published as e.sig; it then
	// finds no client here, or not the Engine's, and does nothing: gone,
	// set before it takes e.mu, tells the check below, under e.mu, that
	// the connection is dead already. (Done alone would not: it closes
	// after OnClosed has returned.)
	var dialed atomic.Pointer[signal.Client]
	var gone atomic.Bool
	c, err := signal.Dial(ctx, signal.ClientConfig{
		URL:           e.cfg.ServerURL,
		Fallbacks:     e.opts.serverURLs,
		Conn:          signal.Config{QueueLen: e.opts.signalQueue},
		OnEvent:       e.onSignal,
		OnState:       e.onSignalState,
		OnSessionLost: e.onSessionLost,
		// An Engine in no room and not logged in has nothing on the
		// server to resume: it connects again when it needs to.
		ShouldReconnect: e.inUse,
		OnClosed: func(err error) {
			gone.Store(true)
			e.signalClosed(dialed.Load(), err)
		},
	})
	if err == nil {
		dialed.Store(c)
	}
	e.mu.Lock()
	e.dialing = nil
	if err == nil && gone.Load() {
		err = errors.New("parley: connection closed right after connect")
	}
	switch {
	case err != nil:
		d.err = err
	case e.closed:
		d.err = ErrEngineClosed
		c.Close()
	default:
		d.c = c
		e.sig = c
		e.connected = true
	}
	e.mu.Unlock()
	close(d.done)
	switch {
	case d.c == nil:
		e.log.Warn("connect failed", zap.String("url", e.cfg.ServerURL), zap.Error(err))
		e.emit(func(h EngineEventHandler) { h.OnConnectionStateChanged(ConnectionStateDisconnected) })
	case again:
		e.emit(func(h EngineEventHandler) { h.OnConnectionStateChanged(ConnectionStateReconnected) })
	default:
		e.emit(func(h EngineEventHandler) { h.OnConnectionStateChanged(ConnectionStateConnected) })
	}
}

// signalClosed runs when a signaling connection ends. Every room that was
// joining or joined through it has lost its server side.
func (e *Engine) signalClosed(c *signal.Client, err error) {
	e.mu.Lock()
	if c == nil || e.sig != c {
		e.mu.Unlock()
		return
	}
	e.sig = nil
	closed := e.closed
	rooms := make([]*Room, 0, len(e.rooms))
	for _, r := range e.rooms {
		rooms = append(rooms, r)
	}
	e.mu.Unlock()
	if closed {
		return
	}
	e.endSession() // the server's side of the rtc is gone with the session
	if errors.Is(err, signal.ErrNothingToResume) {
		e.emit(func(h EngineEventHandler) { h.OnConnectionStateChanged(ConnectionStateDisconnected) })
		return
	}
	e.log.Warn("connection given up", zap.Error(err))
	// The server refused the session for good (StateFailed was reported:
	// a reconnect was answered 401, 403 or 404, so the server no longer
	// serves this app at this URL): the login and the rooms are gone, and
	// no retry follows. The rooms report AbnormalServerStatus.
	e.lmu.Lock()
	if e.lg.phase == loggedIn {
		e.endLoginLocked()
	}
	e.lmu.Unlock()
	code, reason := int(ErrorCodeJoinRoom), "connection to the server closed"
	if err != nil {
		code, reason = int(ErrorCodeAbnormalServerStatus), "the server refused the connection for good: "+err.Error()
	}
	for _, r := range rooms {
		r.lost(nil, code, reason)
	}
}

// inUse reports whether the Engine has a room joined or joining, or a
// login.
func (e *Engine) inUse() bool {
	e.lmu.Lock()
	login := e.lg.phase == loggedIn || e.lg.phase == loggingIn
	e.lmu.Unlock()
	if login {
		return true
	}
	e.mu.Lock()
	rooms := make([]*Room, 0, len(e.rooms))
	for _, r := range e.rooms {
		rooms = append(rooms, r)
	}
	e.mu.Unlock()
	for _, r := range rooms {
		r.mu.Lock()
		busy := r.att != nil
		r.mu.Unlock()
		if busy {
			return true
		}
	}
	return false
}

// onSignalState reports the signaling connection's ups and downs. A
// resume inside the server's grace period loses nothing and is invisible
// to everybody else; the rooms' data channels do not depend on it.
func (e *Engine) onSignalState(s signal.ClientState) {
	var cs ConnectionState
	switch s {
	case signal.StateReconnecting:
		cs = ConnectionStateReconnecting
	case signal.StateReconnected:
		cs = ConnectionStateReconnected
	case signal.StateLost:
		cs = ConnectionStateLost
	case signal.StateFailed:
		cs = ConnectionStateFailed
	default:
		return
	}
	e.log.Info("connection state", zap.Stringer("state", cs))
	e.emit(func(h EngineEventHandler) { h.OnConnectionStateChanged(cs) })
}

// onSessionLost runs when a reconnect found the session gone on the
// server (its grace period passed, or the server restarted): every room
// joins again (JoinTypeReconnected) and the login logs in again, with the
// tokens they had. It runs on the signaling read goroutine: it only
// starts work.
func (e *Engine) onSessionLost() {
	e.log.Info("session lost: rejoining rooms and logging in again")
	e.endSession()
	e.mu.Lock()
	rooms := make([]*Room, 0, len(e.rooms))
	for _, r := range e.rooms {
		rooms = append(rooms, r)
	}
	e.mu.Unlock()
	for _, r := range rooms {
		r.mu.Lock()
		a := r.att
		r.mu.Unlock()
		if a != nil {
			r.rejoin(a, "session lost")
		}
	}
	e.lmu.Lock()
	defer e.lmu.Unlock()
	// A login still in flight asks the new session by itself (login).
	if e.lg.phase == loggedIn {
		e.failWhere(func(ps *pendingSend) bool { return ps.kind == kindOutside || ps.kind == kindServer })
		e.lg.unacked.Drain()
		e.lg.params = false
		if e.lg.claimed {
			e.lg.claimed = false
			e.releaseUser(false)
		}
		e.startLoginLocked(e.lg.token)
	}
}

// endSession ends the rtc of the server session that is gone: its rooms
// rejoin (or are lost) by themselves, on a new one.
func (e *Engine) endSession() {
	e.mu.Lock()
	e.sessGen++
	x := e.pr
	e.pr = nil
	e.mu.Unlock()
	if x != nil {
		x.fail(errors.New("session lost"), true)
	}
}

// roomOf returns the Room whose handle packets name, or nil.
func (e *Engine) roomOf(handle uint32) *Room {
	r, ok := e.handles.Load(handle)
	if !ok {
		return nil
	}
	return r.(*Room)
}

// onSignal routes a server event to its room; it runs on the signaling
// read goroutine and never blocks, but for a received outside-room message
// waiting for room in the dispatcher's message queue (onLoginEvent).
func (e *Engine) onSignal(f *pb.ServerFrame) {
	var roomID string
	switch b := f.Body.(type) {
	case *pb.ServerFrame_RoomJoined:
		roomID = b.RoomJoined.RoomId
	case *pb.ServerFrame_UserJoined:
		roomID = b.UserJoined.RoomId
	case *pb.ServerFrame_UserLeft:
		roomID = b.UserLeft.RoomId
	case *pb.ServerFrame_Presence:
		roomID = b.Presence.RoomId
	case *pb.ServerFrame_RoomRemoved:
		roomID = b.RoomRemoved.RoomId
	case *pb.ServerFrame_TokenWillExpire:
		roomID = b.TokenWillExpire.RoomId
	case *pb.ServerFrame_GoAway:
		e.log.Info("server going away", zap.String("reason", b.GoAway.Reason))
		return
	case *pb.ServerFrame_LoggedOut, *pb.ServerFrame_Message, *pb.ServerFrame_Ack,
		*pb.ServerFrame_Result, *pb.ServerFrame_ServerResult:
		e.onLoginEvent(f)
		return
	default:
		e.log.Debug("unknown server event dropped")
		return
	}
	e.mu.Lock()
	r := e.rooms[roomID]
	e.mu.Unlock()
	if r != nil {
		r.onSignal(f)
	}
}

// leaveFrame asks the server to remove the member from roomID and to tell
// the others reason.
func leaveFrame(roomID string, reason UserOfflineReason) *pb.ClientFrame {
	return &pb.ClientFrame{Body: &pb.ClientFrame_Leave{Leave: &pb.LeaveRequest{RoomId: roomID, Reason: int32(reason)}}}
}

// isClosed reports whether Close has been called.
func (e *Engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

// liveSignal is the current signaling connection, or nil.
func (e *Engine) liveSignal() *signal.Client {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sig
}
