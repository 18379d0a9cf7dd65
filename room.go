package parley

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"

	"github.com/parleyhq/parley/internal/acks"
	"github.com/parleyhq/parley/internal/ids"
	"github.com/parleyhq/parley/internal/signal"
	"github.com/parleyhq/parley/internal/transport"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// Room is one room of an Engine, ByteRTC's IRTCRoom. Create it with
// Engine.CreateRoom; JoinRoom joins it. A Room can be joined, left and
// joined again; Close releases it for good.
type Room struct {
	e        *Engine
	id       string
	handler  atomic.Value // handlerBox
	silenced atomic.Bool  // set by Close: no further event is queued

	seenMu sync.Mutex
	seen   map[seenKey]int64 // the highest reliable message ID delivered, by sending Engine

	mu      sync.Mutex
	closed  bool
	att     *attempt      // the current join, joining or joined; nil when not in the room
	leaving chan struct{} // closed when the last leave is done; nil if none
}

type handlerBox struct{ h RoomEventHandler }

// attempt is one join of a room, from JoinRoom until the room is left,
// fails or is lost. Its fields are guarded by Room.mu unless noted.
type attempt struct {
	r        *Room
	roomID   string
	token    string
	user     UserInfo
	joinType JoinType
	tries    int // rejoins in a row that failed
	started  time.Time

	ctx    context.Context // cancelled when the attempt ends
	cancel context.CancelFunc

	pc       *webrtc.PeerConnection
	chans    transport.Channels
	writers  [transport.NumChannels]*transport.FlowWriter
	opened   chan struct{} // closed when the data channels are open
	active   chan struct{} // closed when the server has the member active
	joined   bool          // state 0 reported
	joinedAt time.Time
	members  map[string]UserInfo // the other members, as told by the server
	pending  []func()            // membership events that arrived before state 0

	msgState

	endOnce sync.Once
	endErr  error
}

func newRoom(e *Engine, id string, h RoomEventHandler) *Room {
	r := &Room{e: e, id: id}
	r.SetRoomEventHandler(h)
	return r
}

// RoomID is the room's ID.
func (r *Room) RoomID() string { return r.id }

// SetRoomEventHandler sets the room's handler; it applies to the events
// dispatched after it returns. A nil h means no room events.
func (r *Room) SetRoomEventHandler(h RoomEventHandler) {
	if h == nil {
		h = NopRoomEventHandler{}
	}
	r.handler.Store(handlerBox{h})
}

// emit queues a call of the room's handler as it is when the call runs.
// Nothing is queued once the Room is closed.
func (r *Room) emit(f func(h RoomEventHandler)) {
	if r.silenced.Load() {
		return
	}
	r.e.q.Control(func() { f(r.handler.Load().(handlerBox).h) })
}

// JoinRoom joins the room with token as user, ByteRTC's joinRoom. The
// result comes in OnRoomStateChanged: state 0 once the room's data channels
// are open and the server holds the member active, followed by
// OnUserJoined for each member already there; else an ErrorCode.
//
// It returns ErrInvalidArgument for an illegal user ID or extra info over
// 200 bytes, ErrAlreadyInRoom while joining or joined, and ErrRoomClosed
// or ErrEngineClosed after Close; then no callback follows.
func (r *Room) JoinRoom(token string, user UserInfo, cfg RoomConfig) error {
	if err := ids.Check("user ID", user.UserID); err != nil {
		return invalidArg("%v", err)
	}
	if err := ids.CheckExtraInfo(user.ExtraInfo); err != nil {
		return invalidArg("%v", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.usableLocked(); err != nil {
		return err
	}
	if r.att != nil {
		return ErrAlreadyInRoom
	}
	if !r.e.claimUser(user.UserID) {
		// ByteRTC: one Engine, one user ID across its rooms.
		r.emit(func(h RoomEventHandler) {
			h.OnRoomStateChanged(r.id, user.UserID, int(ErrorCodeUserIDDifferent), RoomStateInfo{})
		})
		return nil
	}
	a := r.newAttempt(token, user, JoinTypeFirst)
	prev := r.leaving
	if !r.e.goTracked(func() { r.join(a, prev) }) {
		r.e.releaseUser()
		return ErrEngineClosed
	}
	r.att = a
	return nil
}

func (r *Room) newAttempt(token string, user UserInfo, jt JoinType) *attempt {
	a := &attempt{
		r:        r,
		roomID:   r.id,
		token:    token,
		user:     user,
		joinType: jt,
		started:  time.Now(),
		opened:   make(chan struct{}),
		active:   make(chan struct{}),
		members:  make(map[string]UserInfo),
	}
	a.ctx, a.cancel = context.WithCancel(r.e.ctx)
	a.owed = acks.Batcher{Delay: ackDelay, Flush: a.flushAcks}
	return a
}

// rejoin replaces attempt a, which lost its server side (its transport
// failed, or the server no longer had the session), with a new join of the
// same user and token: once it succeeds the room reports state 0 with
// JoinTypeReconnected. Sends in flight on a get NetworkDisconnected.
func (r *Room) rejoin(a *attempt, why string) {
	r.mu.Lock()
	if r.att != a || r.closed {
		r.mu.Unlock()
		return
	}
	if !r.e.claimUser(a.user.UserID) { // a's claim goes with a.end
		r.mu.Unlock()
		return
	}
	na := r.newAttempt(a.token, a.user, JoinTypeReconnected)
	na.tries = a.tries + 1
	// The rejoin starts from what the handler has been told: the members
	// it knows, and the events still waiting for a state 0 that a failed
	// rejoin never reported.
	na.members = maps.Clone(a.members)
	if !a.joined {
		na.pending = a.pending
	}
	r.att = na
	leaving := make(chan struct{})
	r.leaving = leaving
	r.mu.Unlock()
	r.e.log.Info("rejoining", zap.String("room", r.id), zap.String("why", why))
	// The sends still waiting for results move to the new join, which
	// sends the reliable ones again once it is back (receivers drop what
	// they already have); the unreliable ones in flight get
	// NetworkDisconnected with the old join.
	e := r.e
	e.out.mu.Lock()
	for _, ps := range e.out.pending {
		if ps.att == a && ps.packet != nil {
			ps.att = na
			if ps.book != nil {
				ps.book = &na.unacked
			}
		}
	}
	e.out.mu.Unlock()
	ok := r.e.goTracked(func() {
		defer close(leaving)
		// No leave: the server keeps the member for the grace period, and
		// the new join on this session takes it over unnoticed.
		_ = a.end()
	})
	if !ok || !r.e.goTracked(func() { r.join(na, leaving) }) {
		if !ok {
			close(leaving)
		}
		_ = a.end()
		r.lost(na, int(ErrorCodeJoinRoom), "engine closed")
	}
}

// usableLocked reports ErrEngineClosed once the Engine is closed (its
// rooms close with it), else ErrRoomClosed once the Room is.
func (r *Room) usableLocked() error {
	r.e.mu.Lock()
	closed := r.e.closed
	r.e.mu.Unlock()
	if closed {
		return ErrEngineClosed
	}
	if r.closed {
		return ErrRoomClosed
	}
	return nil
}

// join runs a join attempt to its result.
func (r *Room) join(a *attempt, prev chan struct{}) {
	if prev != nil {
		// The server must see the previous leave before this join.
		select {
		case <-prev:
		case <-a.ctx.Done():
			return
		}
	}
	ctx, cancel := context.WithTimeout(a.ctx, joinTimeout)
	defer cancel()
	code, err := r.connect(ctx, a)
	if err == nil {
		return
	}
	if a.ctx.Err() != nil && ctx.Err() == nil {
		return // left or closed meanwhile: no result owed for this attempt
	}
	if errors.Is(err, signal.ErrSessionLost) {
		return // the Engine rejoins every room of a lost session (onSessionLost)
	}
	if a.joinType == JoinTypeReconnected && code == int(ErrorCodeJoinRoom) {
		// A room coming back by itself keeps trying while the server is
		// out of reach; a refusal (a token, an ID) ends it.
		r.e.log.Info("rejoin failed; trying again", zap.String("room", r.id), zap.Error(err))
		wait := min(500*time.Millisecond<<min(a.tries, 4), 5*time.Second)
		wait = wait/2 + rand.N(wait/2+1)
		r.e.goTracked(func() {
			t := time.NewTimer(wait)
			defer t.Stop()
			select {
			case <-t.C:
				r.rejoin(a, "retry")
			case <-a.ctx.Done():
			}
		})
		return
	}
	r.e.log.Info("join failed", zap.String("room", r.id), zap.Int("code", code), zap.Error(err))
	r.lost(a, code, err.Error())
}

// connect does the work of a join: signaling, PeerConnection, offer and
// answer, then waits for the channels and the server. It returns the room
// state code and the reason when the join fails.
func (r *Room) connect(ctx context.Context, a *attempt) (int, error) {
	fail := func(err error) (int, error) { return int(ErrorCodeJoinRoom), err }
	sig, err := r.e.signal(ctx)
	if err != nil {
		return fail(fmt.Errorf("connect: %w", err))
	}
	pc, err := r.e.api.NewPeerConnection(transport.Configuration(r.e.opts.iceServers))
	if err != nil {
		return fail(err)
	}
	r.mu.Lock()
	if r.att != a {
		r.mu.Unlock()
		_ = pc.Close()
		return 0, nil
	}
	a.pc = pc
	r.mu.Unlock()
	dcs, err := transport.CreateChannels(pc)
	if err != nil {
		return fail(err)
	}
	transport.OnOpen(dcs, func(ch transport.Channels) {
		r.mu.Lock()
		a.chans = ch
		for i := range ch {
			a.writers[i] = transport.NewFlowWriter(dcs[i], ch[i])
		}
		r.mu.Unlock()
		a.readChannels(ch)
		close(a.opened)
	}, func(err error) {
		r.lost(a, int(ErrorCodeJoinRoom), err.Error())
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st != webrtc.PeerConnectionStateFailed && st != webrtc.PeerConnectionStateClosed {
			return
		}
		r.mu.Lock()
		joined := a.joined
		r.mu.Unlock()
		if joined { // a room that worked comes back by itself
			r.rejoin(a, "room transport "+st.String())
			return
		}
		r.lost(a, int(ErrorCodeJoinRoom), "room transport "+st.String())
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return fail(err)
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return fail(err)
	}
	if err := transport.WaitGathered(ctx, pc); err != nil {
		return fail(err)
	}
	resp, err := sig.Request(ctx, &pb.ClientFrame{Body: &pb.ClientFrame_Join{Join: &pb.JoinRequest{
		RoomId:    r.id,
		Token:     a.token,
		UserId:    a.user.UserID,
		ExtraInfo: a.user.ExtraInfo,
		SdpOffer:  pc.LocalDescription().SDP,
		AppId:     r.e.cfg.AppID,
		Rejoin:    a.joinType == JoinTypeReconnected,
	}}})
	if err != nil {
		return fail(fmt.Errorf("join request: %w", err))
	}
	jr := resp.GetJoin()
	if jr == nil {
		return fail(errors.New("join request: answered with something else"))
	}
	if jr.Code != 0 {
		return int(jr.Code), errors.New(jr.Reason)
	}
	// A removal the server sent before this answer (RoomRemoved) ended
	// the attempt on the same signaling goroutine: do not go on to open a
	// member the server would then hold, one that could replace a newer
	// member of the same user.
	r.mu.Lock()
	current := r.att == a
	r.mu.Unlock()
	if !current {
		return 0, nil
	}
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: jr.SdpAnswer}); err != nil {
		return fail(fmt.Errorf("bad SDP answer: %w", err))
	}
	for _, ready := range []chan struct{}{a.opened, a.active} {
		select {
		case <-ready:
		case <-ctx.Done():
			return fail(fmt.Errorf("waiting for the room: %w", ctx.Err()))
		}
	}
	a.sendMu.Lock() // the sends kept across the rejoin go first
	defer a.sendMu.Unlock()
	a.resend()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.att != a {
		return 0, nil
	}
	a.joined = true
	a.joinedAt = time.Now()
	info := RoomStateInfo{Elapsed: a.joinedAt.Sub(a.started), JoinType: a.joinType}
	r.emit(func(h RoomEventHandler) { h.OnRoomStateChanged(r.id, a.user.UserID, 0, info) })
	for _, f := range a.pending {
		f()
	}
	a.pending = nil
	return 0, nil
}

// onSignal applies a server event about this room; it runs on the
// signaling read goroutine.
func (r *Room) onSignal(f *pb.ServerFrame) {
	r.mu.Lock()
	a := r.att
	if a == nil {
		r.mu.Unlock()
		return
	}
	// Membership events queue behind state 0 until the join completes.
	queue := func(ev func(h RoomEventHandler)) {
		if a.joined {
			r.emit(ev)
		} else {
			a.pending = append(a.pending, func() { r.emit(ev) })
		}
	}
	switch b := f.Body.(type) {
	case *pb.ServerFrame_RoomJoined:
		select {
		case <-a.active:
		default:
			if a.joinType == JoinTypeReconnected {
				a.reconcileLocked(b.RoomJoined.Members, queue)
			} else {
				for _, m := range b.RoomJoined.Members {
					u := UserInfo{UserID: m.UserId, ExtraInfo: m.ExtraInfo}
					a.members[u.UserID] = u
					queue(func(h RoomEventHandler) { h.OnUserJoined(u) })
				}
			}
			close(a.active)
		}
	case *pb.ServerFrame_UserJoined:
		u := UserInfo{UserID: b.UserJoined.Member.GetUserId(), ExtraInfo: b.UserJoined.Member.GetExtraInfo()}
		a.members[u.UserID] = u
		queue(func(h RoomEventHandler) { h.OnUserJoined(u) })
	case *pb.ServerFrame_UserLeft:
		id, reason := b.UserLeft.UserId, UserOfflineReason(b.UserLeft.Reason)
		delete(a.members, id)
		queue(func(h RoomEventHandler) { h.OnUserLeave(id, reason) })
	case *pb.ServerFrame_TokenWillExpire:
		// A rejoin continues the same stay in the room, so the warning is
		// news now, not after the rejoin's state 0 (a transport failure
		// can start a rejoin just as the warning and the expiry arrive).
		if a.joinType == JoinTypeReconnected {
			r.emit(func(h RoomEventHandler) { h.OnTokenWillExpire() })
		} else {
			queue(func(h RoomEventHandler) { h.OnTokenWillExpire() })
		}
	case *pb.ServerFrame_RoomRemoved:
		r.mu.Unlock()
		r.lost(a, int(b.RoomRemoved.Code), b.RoomRemoved.Reason)
		return
	}
	r.mu.Unlock()
}

// reconcileLocked brings the members a rejoin knows (those the handler
// was told of) to the server's list: OnUserLeave with Dropped for each that
// left meanwhile (the reason was lost with the session), then OnUserJoined
// for each that came (and for one that came back with other extra info,
// after its leave). Members present throughout hear nothing, so the
// handler's picture of the room is exact again once state 0 is out.
func (a *attempt) reconcileLocked(list []*pb.Member, queue func(func(RoomEventHandler))) {
	now := make(map[string]UserInfo, len(list))
	for _, m := range list {
		now[m.UserId] = UserInfo{UserID: m.UserId, ExtraInfo: m.ExtraInfo}
	}
	for _, id := range slices.Sorted(maps.Keys(a.members)) {
		if u, ok := now[id]; !ok || u != a.members[id] {
			delete(a.members, id)
			queue(func(h RoomEventHandler) { h.OnUserLeave(id, UserOfflineReasonDropped) })
		}
	}
	for _, m := range list {
		if _, ok := a.members[m.UserId]; !ok {
			u := now[m.UserId]
			a.members[u.UserID] = u
			queue(func(h RoomEventHandler) { h.OnUserJoined(u) })
		}
	}
}

// lost ends attempt a (the current one if a is nil) with state code: the
// join failed, the server removed the member, or the transport or the
// connection died. It reports code once, and only if a is still current.
func (r *Room) lost(a *attempt, code int, reason string) {
	r.mu.Lock()
	if a == nil {
		a = r.att
	}
	if a == nil || r.att != a {
		r.mu.Unlock()
		return
	}
	r.att = nil
	leaving := make(chan struct{})
	r.leaving = leaving // a rejoin waits until the server has this leave
	r.mu.Unlock()
	r.e.log.Info("room lost", zap.String("room", r.id), zap.Int("code", code), zap.String("reason", reason))
	userID := a.user.UserID
	r.emit(func(h RoomEventHandler) { h.OnRoomStateChanged(r.id, userID, code, RoomStateInfo{}) })
	// Tell the server, in case it still holds the member, and release the
	// transport off this goroutine (it may be the signaling reader). The
	// member did not choose to leave: the others are told Dropped.
	ok := r.e.goTracked(func() {
		defer close(leaving)
		a.cancel()
		r.sendLeave(UserOfflineReasonDropped)
		_ = a.end()
	})
	if !ok {
		close(leaving)
		_ = a.end()
	}
}

// LeaveRoom leaves the room, ByteRTC's leaveRoom: the others see
// OnUserLeave with UserOfflineReasonQuit, and OnLeaveRoom follows once the
// server has confirmed (or after a few seconds without it). It is harmless
// when not in the room: OnLeaveRoom then follows with zero stats.
func (r *Room) LeaveRoom() error {
	r.mu.Lock()
	if err := r.usableLocked(); err != nil {
		r.mu.Unlock()
		return err
	}
	a := r.att
	if a == nil {
		r.mu.Unlock()
		r.emit(func(h RoomEventHandler) { h.OnLeaveRoom(RoomStats{}) })
		return nil
	}
	r.att = nil
	stats := a.statsLocked(time.Now())
	leaving := make(chan struct{})
	r.leaving = leaving
	r.mu.Unlock()
	a.cancel()
	ok := r.e.goTracked(func() {
		defer close(leaving)
		r.sendLeave(UserOfflineReasonQuit)
		_ = a.end()
		r.emit(func(h RoomEventHandler) { h.OnLeaveRoom(stats) })
	})
	if !ok {
		close(leaving)
		return ErrEngineClosed
	}
	return nil
}

// sendLeave asks the server to remove the member, telling the others
// reason, and waits for its answer.
func (r *Room) sendLeave(reason UserOfflineReason) {
	sig := r.e.liveSignal()
	if sig == nil {
		return
	}
	ctx, cancel := context.WithTimeout(r.e.ctx, leaveTimeout)
	defer cancel()
	if _, err := sig.Request(ctx, leaveFrame(r.id, reason)); err != nil {
		r.e.log.Debug("leave request", zap.String("room", r.id), zap.Error(err))
	}
}

// UpdateToken replaces the room's token, ByteRTC's updateToken: answer
// OnTokenWillExpire with it before the token expires, or the server
// removes the member (OnRoomStateChanged -1009). A valid token moves the
// expiry and nothing is reported; an invalid one is reported as
// OnRoomStateChanged(-1010) and the member keeps its old token. The token
// is also the one a rejoin uses. Outside the room it is only kept. It
// returns ErrRoomClosed or ErrEngineClosed after Close.
func (r *Room) UpdateToken(token string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.usableLocked(); err != nil {
		return err
	}
	a := r.att
	if a == nil {
		return nil
	}
	a.token = token
	if !a.joined {
		return nil
	}
	sig := r.e.liveSignal()
	if sig == nil {
		return nil
	}
	// Sent now, so it reaches the server before anything called after it.
	wait, err := sig.Start(&pb.ClientFrame{Body: &pb.ClientFrame_UpdateToken{UpdateToken: &pb.UpdateTokenRequest{
		RoomId: r.id, Token: token,
	}}})
	if err != nil {
		return nil
	}
	r.e.goTracked(func() {
		ctx, cancel := context.WithTimeout(a.ctx, r.e.opts.messageTimeout)
		defer cancel()
		resp, err := wait(ctx)
		if err != nil {
			r.e.log.Info("token update", zap.String("room", r.id), zap.Error(err))
			return
		}
		if code := resp.GetUpdateToken().GetCode(); code != 0 {
			r.e.log.Info("token update refused", zap.String("room", r.id), zap.String("reason", resp.GetUpdateToken().GetReason()))
			r.mu.Lock()
			current := r.att == a
			r.mu.Unlock()
			if current {
				r.emit(func(h RoomEventHandler) { h.OnRoomStateChanged(r.id, a.user.UserID, int(code), RoomStateInfo{}) })
			}
		}
	})
	return nil
}

// Close leaves the room if it is in it and releases it, ByteRTC's
// destroy(): every method but RoomID returns ErrRoomClosed and every send
// -1. Events queued before Close still run, and so does the one result of
// each send in flight (NetworkDisconnected); no other callback of the room
// follows. It is idempotent.
func (r *Room) Close() error {
	a := r.destroy()
	r.e.mu.Lock()
	if r.e.rooms[r.id] == r {
		delete(r.e.rooms, r.id)
	}
	r.e.mu.Unlock()
	if a != nil {
		r.e.failPending(a)
	}
	r.silenced.Store(true)
	if a == nil {
		return nil
	}
	r.sendLeave(UserOfflineReasonQuit)
	return a.end()
}

// destroy marks the room closed and detaches its attempt, which the caller
// ends; nil if the room was closed already or not in use.
func (r *Room) destroy() *attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	a := r.att
	r.att = nil
	return a
}

// end cancels the attempt, releases its user ID and closes its transport;
// it runs once and returns the transport's close error.
func (a *attempt) end() error {
	a.endOnce.Do(func() {
		a.cancel()
		a.r.e.failPending(a)
		a.r.e.releaseUser()
		a.r.mu.Lock()
		pc := a.pc
		a.r.mu.Unlock()
		if pc != nil {
			a.endErr = pc.Close()
		}
	})
	return a.endErr
}

// statsLocked is the room's RoomStats at now.
func (a *attempt) statsLocked(now time.Time) RoomStats {
	var s RoomStats
	if a.joined {
		s.Duration = now.Sub(a.joinedAt)
		s.UserCount = len(a.members) + 1
	}
	s.SentMessages = a.stats.sentMessages.Load()
	s.SentBytes = a.stats.sentBytes.Load()
	s.ReceivedMessages = a.stats.receivedMessages.Load()
	s.ReceivedBytes = a.stats.receivedBytes.Load()
	return s
}
