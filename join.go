package parley

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/parleyhq/parley/internal/acks"
	"github.com/parleyhq/parley/internal/signal"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// The join state machine of a Room. An attempt is one join, from JoinRoom
// (or a rejoin) until it is left, fails or is lost. join runs it: connect
// gets the signaling connection and the Engine's PeerConnection (rtc.go),
// sends the join request and waits for the data channels and the server's
// RoomJoined, then reports state 0. A refusal or a timeout ends it through lost, with
// its code. A room that has reported state 0 and loses its transport or
// its session comes back by itself: rejoin replaces the attempt with a new
// one (JoinTypeReconnected) that takes over its kept sends, and retries
// while the server is out of reach. The Room holds the current attempt
// (Room.att).

// attempt is one join of a room, from JoinRoom until the room is left,
// fails or is lost.
type attempt struct {
	// Set at creation, then read-only.
	r        *Room
	roomID   string
	user     UserInfo
	joinType JoinType
	tries    int // rejoins in a row that failed before this one
	started  time.Time
	ctx      context.Context // cancelled when the attempt ends (or is replaced)
	cancel   context.CancelFunc
	active   chan struct{} // closed when the server has the member active (the last RoomJoined page)

	sig *signal.Client // the signaling connection its try got; only join's goroutine uses it

	token    string            // guarded by Room.mu
	rtc      *rtc              // guarded by Room.mu; the Engine's PeerConnection the join uses, once it is open
	joined   bool              // guarded by Room.mu; state 0 queued
	joinedAt time.Time         // guarded by Room.mu
	members  map[string]string // guarded by Room.mu; the other members' extra info by user ID, as told by the server
	pending  []func()          // guarded by Room.mu; membership events that arrived before state 0
	pages    []*pb.Member      // guarded by Room.mu; the RoomJoined pages so far, until the last

	early early // messages that arrived before state 0

	msgState // its own locks: see msgState

	endOnce sync.Once
	endErr  error // written once, in endOnce
}

func (r *Room) newAttempt(token string, user UserInfo, jt JoinType) *attempt {
	a := &attempt{
		r:        r,
		roomID:   r.id,
		token:    token,
		user:     user,
		joinType: jt,
		started:  time.Now(),
		active:   make(chan struct{}),
		members:  make(map[string]string),
	}
	a.ctx, a.cancel = context.WithCancel(r.e.ctx)
	a.owed = acks.Batcher{Delay: ackDelay, Lazy: broadcastAckDelay, LazyBytes: broadcastAckBytes, Flush: a.flushAcks}
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
	if !r.e.claimUser(a.user.UserID, true) { // a's claim goes with a.end
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
	// NetworkDisconnected with the old join. Cancelling a first releases
	// a send waiting on a's flow control; under a's send lock no send of
	// a is between its ID and its keep.
	a.cancel()
	a.sendMu.Lock()
	r.e.out.move(a, na)
	a.sendMu.Unlock()
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
	ctx, cancel := context.WithTimeout(a.ctx, r.e.opts.joinTimeout)
	defer cancel()
	code, err := r.connect(ctx, a)
	if err == nil {
		return
	}
	if a.ctx.Err() != nil {
		return // left, replaced or closed meanwhile: no result owed for this attempt
	}
	if errors.Is(err, signal.ErrSessionLost) {
		return // the Engine rejoins every room of a lost session (onSessionLost)
	}
	if a.sig != nil && a.sig.Stopped() {
		// The try failed because the Engine's connection ended for good
		// (the server closing the transport with it may have started this
		// rejoin a moment before): signalClosed reports the room's end
		// (-1001, -1084), and no retry follows, so no warning -2001
		// either. Once it has run, a room it did not end goes on below.
		<-a.sig.Done()
		r.mu.Lock()
		current := r.att == a
		r.mu.Unlock()
		if !current {
			return
		}
	}
	if a.joinType == JoinTypeReconnected && signal.IsRefused(err) {
		// The server answers, and refuses this endpoint for good: a room
		// that was coming back by itself gives up.
		code = int(ErrorCodeAbnormalServerStatus)
	}
	if a.joinType == JoinTypeReconnected && code == int(ErrorCodeJoinRoom) {
		// A room coming back by itself keeps trying while the server is
		// out of reach; a refusal (a token, an ID) ends it.
		// The handler hears of each failed try: the warning -2001.
		r.e.log.Warn("rejoin failed; trying again", zap.String("room", r.id), zap.Int("code", code), zap.Error(err))
		r.mu.Lock()
		if r.att == a {
			userID := a.user.UserID
			r.emit(func(h RoomEventHandler) {
				h.OnRoomStateChanged(r.id, userID, int(ErrorCodeJoinRoomFailed), RoomStateInfo{JoinType: JoinTypeReconnected})
			})
		}
		r.mu.Unlock()
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
	// Why, as the server gave it (or as the dial failed), is only in the
	// log: the handler gets the code.
	r.e.log.Warn("join failed", zap.String("room", r.id), zap.Int("code", code), zap.Error(err))
	r.lost(a, code, err.Error())
}

// connect does the work of a join: signaling, the Engine's PeerConnection,
// the join request, then waits for the data channels and the server. It
// returns the room state code and the reason when the join fails.
func (r *Room) connect(ctx context.Context, a *attempt) (int, error) {
	fail := func(err error) (int, error) { return int(ErrorCodeJoinRoom), err }
	r.e.prepareRTC() // the offer is made while the signaling connects
	sig, err := r.e.signal(ctx)
	if err != nil {
		return fail(fmt.Errorf("connect: %w", err))
	}
	a.sig = sig
	x, err := r.e.rtcFor(sig)
	if err != nil {
		return fail(err)
	}
	if x.early {
		// A new PeerConnection after a failed one: the server must have
		// it before this join, so that it puts the member on it.
		if err := x.waitSent(ctx); err != nil {
			return fail(fmt.Errorf("room transport: %w", err))
		}
	}
	wait, err := sig.Start(&pb.ClientFrame{Body: &pb.ClientFrame_Join{Join: &pb.JoinRequest{
		RoomId:    r.id,
		Token:     a.token,
		UserId:    a.user.UserID,
		ExtraInfo: a.user.ExtraInfo,
		AppId:     r.e.cfg.AppID,
		Rejoin:    a.joinType == JoinTypeReconnected,
		Room:      r.handle,

		PresenceBatches: true,
		PacketVersion:   packetVersion,
	}}})
	if err != nil {
		return fail(fmt.Errorf("join request: %w", err))
	}
	x.letGo() // the first join of a session goes before the TransportRequest
	resp, err := wait(ctx)
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
	err = x.waitOpen(ctx)
	if errors.Is(err, errTransportRefused) {
		// It went with an earlier join of the session that was refused
		// (a bad token), and this join took it before the refusal came.
		// This join is accepted, so a new TransportRequest is too.
		if x, err = r.e.rtcFor(sig); err == nil {
			x.letGo()
			err = x.waitOpen(ctx)
		}
	}
	if err != nil {
		return fail(fmt.Errorf("room transport: %w", err))
	}
	r.mu.Lock()
	a.rtc = x
	r.mu.Unlock()
	select {
	case <-a.active:
	case <-x.done:
		return fail(fmt.Errorf("room transport: %w", x.err))
	case <-ctx.Done():
		return fail(fmt.Errorf("waiting for the room: %w", ctx.Err()))
	}
	// The sends kept across the rejoin go first: a new send waits for the
	// lock, and then finds the attempt joined.
	a.sendMu.Lock()
	a.resend(ctx)
	r.mu.Lock()
	if r.att != a {
		r.mu.Unlock()
		a.sendMu.Unlock()
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
	r.mu.Unlock()
	// Not held further: a rejoin takes it (below), and a handler that
	// sends while goLive waits for room in the dispatcher's queue would
	// wait for it.
	a.sendMu.Unlock()
	if x.ended() {
		// The transport failed before the room was joined on it, so its
		// failure found nothing to rejoin: the room rejoins now.
		r.rejoin(a, "room transport "+x.err.Error())
	}
	a.goLive() // the messages that came before state 0, then the rest
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
	queueAll := func(evs []memberEvent) {
		if len(evs) > 0 {
			queue(r.memberEvents(evs))
		}
	}
	switch b := f.Body.(type) {
	case *pb.ServerFrame_RoomJoined:
		select {
		case <-a.active:
		default:
			// The member list may come in pages, back to back: gather
			// them, and act on the whole list with the last.
			a.pages = append(a.pages, b.RoomJoined.Members...)
			if b.RoomJoined.More {
				break
			}
			list := a.pages
			a.pages = nil
			if a.joinType == JoinTypeReconnected {
				queueAll(a.reconcileLocked(list))
			} else {
				queueAll(a.listLocked(list))
			}
			close(a.active)
		}
	case *pb.ServerFrame_UserJoined:
		queue(a.userJoinedLocked(b.UserJoined.Member).call)
	case *pb.ServerFrame_UserLeft:
		queue(a.userLeftLocked(b.UserLeft).call)
	case *pb.ServerFrame_Presence:
		queueAll(a.presenceLocked(b.Presence))
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

// end cancels the attempt, releases its user ID and drops what it has
// queued on the Engine's transport; it runs once. The error is always nil
// now that the transport is the Engine's.
func (a *attempt) end() error {
	a.endOnce.Do(func() {
		a.cancel()     // releases a send waiting on flow control
		a.owed.Close() // no ack of this attempt's goes out after its end
		a.sendMu.Lock()
		a.r.e.failPending(a) // every send registered on a, none after
		a.sendMu.Unlock()
		a.r.e.releaseUser(true)
		a.early.drop()
		a.r.mu.Lock()
		x := a.rtc
		a.r.mu.Unlock()
		if x != nil {
			x.forget(a.r.handle) // what is queued for the room goes nowhere now
		}
	})
	return a.endErr
}
