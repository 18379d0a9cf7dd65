package parley

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/parleyhq/parley/internal/ids"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// Room is one room of an Engine, ByteRTC's IRTCRoom. Create it with
// Engine.CreateRoom; JoinRoom joins it. A Room can be joined, left and
// joined again; Close releases it for good.
//
// A Room is safe for concurrent use: its methods may be called from any
// goroutine, handlers included.
type Room struct {
	e        *Engine
	id       string
	handle   uint32       // names the room in packets (JoinRequest.room); unique in the Engine
	handler  atomic.Value // handlerBox
	silenced atomic.Bool  // set by Close: no further event is queued

	// deliverMu is held from a received message's duplicate check until
	// the dispatcher has queued it, so the room's messages reach the
	// handler in the order they were checked. Two readers can deliver to
	// the room at once: the reader of a transport that just died may be
	// waiting for room in a full queue with a message while the rejoin's
	// reader delivers the ones after it.
	deliverMu sync.Mutex
	seen      map[seenKey]int64 // guarded by deliverMu; the highest reliable message ID delivered, by sending Engine

	// mu also guards the current attempt's fields that say so (attempt).
	// Lock order: see Engine.
	mu      sync.Mutex
	closed  bool          // guarded by mu
	att     *attempt      // guarded by mu; the current join, joining or joined; nil when not in the room
	leaving chan struct{} // guarded by mu; closed when the last leave is done; nil if none
}

type handlerBox struct{ h RoomEventHandler }

func newRoom(e *Engine, id string, h RoomEventHandler) *Room {
	r := &Room{e: e, id: id, handle: e.lastHandle.Add(1)}
	r.SetRoomEventHandler(h)
	e.handles.Store(r.handle, r)
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
	r.e.q.Control(func() { f(r.handlerNow()) })
}

// handlerNow is the room's handler as it is now.
func (r *Room) handlerNow() RoomEventHandler { return r.handler.Load().(handlerBox).h }

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
	if !r.e.claimUser(user.UserID, true) {
		// ByteRTC: one Engine, one user ID across its rooms.
		r.emit(func(h RoomEventHandler) {
			h.OnRoomStateChanged(r.id, user.UserID, int(ErrorCodeUserIDDifferent), RoomStateInfo{})
		})
		return nil
	}
	a := r.newAttempt(token, user, JoinTypeFirst)
	prev := r.leaving
	if !r.e.goTracked(func() { r.join(a, prev) }) {
		r.e.releaseUser(true)
		return ErrEngineClosed
	}
	r.att = a
	return nil
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
	r.e.handles.Delete(r.handle)
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
