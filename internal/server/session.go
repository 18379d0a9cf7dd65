package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/parleyhq/parley/internal/ids"
	"github.com/parleyhq/parley/internal/signal"
	pb "github.com/parleyhq/parley/proto/parley/v1"
	"github.com/parleyhq/parley/token"
)

// Close codes and reasons of connections the server closes; the reason is
// also the label of parley_connections_closed_total.
const (
	closeMalformed   = "malformed_frame"
	closeTooBig      = "frame_too_big"
	closeTextFrame   = "text_frame"
	closeAuthTimeout = "auth_timeout"
	closeSlow        = "slow_consumer"
	closeShutdown    = "shutdown"
)

// session is one client's state on the server: its user ID once it has
// joined or logged in, its room memberships, its login, and the frames in
// flight both ways. It lives on a connection (a link) and outlives it by
// the grace period: a client that comes back with the resume secret in
// time takes it over on a new connection, and nobody else notices.
type session struct {
	srv    *Server
	id     string
	secret []byte
	log    *zap.Logger
	out    *signal.Stream // frames both ways: numbered, kept until acknowledged

	authTimer *time.Timer               // guarded by mu
	quota     atomic.Pointer[userQuota] // the user's, once it has one (claimUserLocked)
	sendMu    sync.Mutex                // orders frames to the client where order matters (login)
	ackTimer  *time.Timer

	// While logged in: the reliable outside-room messages awaiting this
	// login's ack, and its own awaiting their receivers'. Each login has
	// its own (see outbox); endLogin closes them.
	inbox  atomic.Pointer[retention]
	outbox atomic.Pointer[outbox]
	posts  atomic.Int32 // server messages being posted

	mu      sync.Mutex
	userID  string             // set by the first accepted join or login; one per session
	quotaOf quotaKey           // whose quota the session holds while userID is set
	members map[string]*member // by room ID, pending and active
	handles map[uint32]*member // the same members, by the client's handle of their room (JoinRequest.room)
	rtc     *rtc               // the session's transport, shared by its rooms; nil until the client sets it up, or after it failed
	waiting []*member          // members waiting for rtc to open (see attachWhenOpen)
	app     string             // the app of the login
	login   string             // the logged-in user ID, "" if not logged in
	params  *serverParams      // set by SetServerParams while logged in
	authed  bool
	ended   bool
	link    *link       // the current connection; nil while detached
	grace   *time.Timer // ends a detached session
}

// authExpired closes a connection that neither logged in nor joined in time.
func (ss *session) authExpired() {
	ss.mu.Lock()
	authed := ss.authed
	ss.mu.Unlock()
	if !authed {
		ss.closeFor(websocket.ClosePolicyViolation, closeAuthTimeout,
			fmt.Sprintf("no join within %v", ss.srv.cfg.AuthTimeout), true)
	}
}

// closeFor closes the session's connection for a reason of the server's,
// with a log line and a metric; with end, the session ends with it (no
// resume).
func (ss *session) closeFor(code int, label, reason string, end bool) {
	ss.srv.metrics.closes.WithLabelValues(label).Inc()
	ss.log.Info("closing connection", zap.String("reason", label), zap.String("detail", reason))
	ss.mu.Lock()
	lk := ss.link
	ss.mu.Unlock()
	if lk != nil {
		lk.close(code, reason, end)
	}
}

// send numbers a frame and queues it for the client, or keeps it for the
// next connection while detached. A client that cannot keep up with its
// signaling (1024 frames queued) loses its connection as a slow consumer;
// it may resume and get the frames replayed, until what it has not
// acknowledged outgrows the replay buffer: then the session ends, as if
// it had dropped. That is the only bound that cannot stall the room that
// produces the events.
func (ss *session) send(requestID uint64, f *pb.ServerFrame) {
	ss.sendMu.Lock()
	defer ss.sendMu.Unlock()
	ss.sendLocked(requestID, f)
}

// sendLocked is send with sendMu held.
func (ss *session) sendLocked(requestID uint64, f *pb.ServerFrame) {
	f.RequestId = requestID
	ss.sent(ss.out.Send(func(seq, acked uint64) []byte {
		f.Seq, f.Acked = seq, acked
		b, err := proto.Marshal(f)
		if err != nil {
			panic("parley: marshal frame: " + err.Error()) // only a programming error gets here
		}
		return b
	}))
}

// sendEncodedLocked is sendLocked of an event already encoded, body: a
// ServerFrame without seq and acked (and request_id 0), which it appends.
// An event many sessions get (a room's presence) is encoded once.
func (ss *session) sendEncodedLocked(body []byte) {
	ss.sent(ss.out.Send(func(seq, acked uint64) []byte {
		b := make([]byte, len(body), len(body)+2*(2+binary.MaxVarintLen64))
		copy(b, body)
		b = protowire.AppendTag(b, fieldFrameSeq, protowire.VarintType)
		b = protowire.AppendVarint(b, seq)
		b = protowire.AppendTag(b, fieldFrameAcked, protowire.VarintType)
		return protowire.AppendVarint(b, acked)
	}))
}

// Field numbers of ServerFrame's seq and acked.
const (
	fieldFrameSeq   = 25
	fieldFrameAcked = 26
)

// sent acts on the error of queueing a frame.
func (ss *session) sent(err error) {
	switch {
	case errors.Is(err, signal.ErrQueueFull):
		ss.closeFor(websocket.ClosePolicyViolation, closeSlow, "signaling queue full", false)
	case errors.Is(err, signal.ErrReplayFull):
		ss.log.Info("session ended: the client left too much unacknowledged")
		ss.closeFor(websocket.ClosePolicyViolation, closeSlow, "replay buffer full", true)
		go ss.end(err) // detached sessions have no connection to close
	}
}

// onFrame handles one frame of the client's sequence.
func (ss *session) onFrame(f *pb.ClientFrame) error {
	fresh, err := ss.out.Receive(f.Seq, f.Acked)
	if err != nil {
		ss.srv.metrics.closes.WithLabelValues(closeMalformed).Inc()
		return &signal.CloseError{Code: websocket.CloseInvalidFramePayloadData, Reason: err.Error()}
	}
	if !fresh {
		return nil // a replayed frame the server already has
	}
	if f.Seq != 0 {
		ss.ackSoon()
	}
	switch body := f.Body.(type) {
	case *pb.ClientFrame_Join:
		ss.handleJoin(f.RequestId, body.Join)
	case *pb.ClientFrame_Leave:
		ss.handleLeave(f.RequestId, body.Leave)
	case *pb.ClientFrame_Login:
		ss.handleLogin(f.RequestId, body.Login)
	case *pb.ClientFrame_Logout:
		ss.handleLogout(f.RequestId)
	case *pb.ClientFrame_PeerStatus:
		ss.handlePeerStatus(f.RequestId, body.PeerStatus)
	case *pb.ClientFrame_Send:
		ss.handleSend(body.Send)
	case *pb.ClientFrame_Ack:
		ss.handleAck(body.Ack)
	case *pb.ClientFrame_ServerParams:
		ss.handleServerParams(f.RequestId, body.ServerParams)
	case *pb.ClientFrame_ServerMessage:
		ss.handleServerMessage(body.ServerMessage)
	case *pb.ClientFrame_UpdateToken:
		ss.handleUpdateToken(f.RequestId, body.UpdateToken)
	case *pb.ClientFrame_Transport:
		ss.handleTransport(f.RequestId, body.Transport)
	case *pb.ClientFrame_Resume:
		return &signal.CloseError{Code: websocket.CloseProtocolError, Reason: "resume is only the first frame"}
	}
	return nil
}

// ackSoon acknowledges what the session has received: at once when 32
// frames wait for it, else within 100 ms (unless a frame to the client
// carries it first).
func (ss *session) ackSoon() {
	if ss.out.Unacknowledged() >= 32 {
		ss.sendAck()
		return
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.ackTimer == nil {
		ss.ackTimer = time.AfterFunc(100*time.Millisecond, func() {
			ss.mu.Lock()
			ss.ackTimer = nil
			ss.mu.Unlock()
			if ss.out.Unacknowledged() > 0 {
				ss.sendAck()
			}
		})
	}
}

func (ss *session) sendAck() {
	_ = ss.out.SendUnsequenced(func(acked uint64) []byte {
		b, _ := proto.Marshal(&pb.ServerFrame{Acked: acked, Body: &pb.ServerFrame_AckOnly{AckOnly: &pb.SeqAck{}}})
		return b
	})
}

// markAuthedLocked records the session's first accepted join or login.
func (ss *session) markAuthedLocked() {
	ss.authed = true
	ss.out.SetMax(maxReplay)
	ss.stopAuthTimerLocked()
	if ss.link != nil {
		ss.link.markAuthed()
	}
}

// stopAuthTimerLocked stops the timer that closes a connection that
// neither joins nor logs in.
func (ss *session) stopAuthTimerLocked() {
	if ss.authTimer != nil {
		ss.authTimer.Stop()
	}
}

// end ends the session for good: its members leave their rooms as
// Dropped, its login ends. It runs once.
func (ss *session) end(err error) {
	ss.mu.Lock()
	ss.stopAuthTimerLocked()
	if ss.ended {
		ss.mu.Unlock()
		return
	}
	if ss.grace != nil {
		ss.grace.Stop()
	}
	ss.ended = true
	members := make([]*member, 0, len(ss.members))
	for _, m := range ss.members {
		members = append(members, m)
	}
	ss.members = nil
	ss.handles = nil
	ss.waiting = nil
	app, login := ss.app, ss.login
	x := ss.rtc
	ss.mu.Unlock()
	for _, m := range members {
		m.room.remove(m, reasonDropped, true)
	}
	if x != nil {
		x.fail("session ended")
	}
	if login != "" {
		k := loginKey{app, login}
		ss.srv.unregister(k, ss)
		ss.endLogin(k)
	}
	s := ss.srv
	s.mu.Lock()
	delete(s.sessions, ss.id)
	s.mu.Unlock()
	s.metrics.sessions.Dec()
	ss.log.Debug("session ended", zap.Error(err))
	s.wg.Done()
}

// claimUserLocked makes user of app the session's user, if it has none
// yet, and takes the user's quota, shared with its other sessions.
func (ss *session) claimUserLocked(app, user string) {
	if ss.userID != "" {
		return
	}
	ss.userID, ss.quotaOf = user, quotaKey{app, user}
	ss.quota.Store(ss.srv.acquireQuota(ss.quotaOf))
}

// dropUserLocked clears the session's user and gives back its quota. The
// pointer stays: a send still in flight spends from it harmlessly.
func (ss *session) dropUserLocked() {
	if ss.userID == "" {
		return
	}
	ss.srv.releaseQuota(ss.quotaOf, ss.quota.Load())
	ss.userID, ss.quotaOf = "", quotaKey{}
}

func (ss *session) refuse(reqID uint64, je *joinError) {
	ss.srv.metrics.joins.WithLabelValues(je.result).Inc()
	ss.log.Info("join refused", zap.Int32("code", je.code), zap.String("reason", je.logDetail()))
	ss.send(reqID, &pb.ServerFrame{Body: &pb.ServerFrame_Join{Join: &pb.JoinResponse{
		Code: je.code, Reason: je.reason,
	}}})
}

func (ss *session) handleJoin(reqID uint64, j *pb.JoinRequest) {
	if je := checkIDs(j.RoomId, j.UserId, j.ExtraInfo); je != nil {
		ss.refuse(reqID, je)
		return
	}
	if je := ss.srv.checkToken(j.Token, j.AppId, j.RoomId, j.UserId); je != nil {
		ss.refuse(reqID, je)
		return
	}
	switch {
	case j.SdpOffer != "" || j.PacketVersion < packetVersionRooms:
		// Version 2 and earlier had a PeerConnection per room.
		ss.refuse(reqID, &joinError{codeJoinRoom, joinFailed,
			fmt.Sprintf("packet version %d is not served: 3 needed (rooms on one transport per session, a room handle, no SDP in the join)", j.PacketVersion), ""})
		return
	case j.Room == 0:
		ss.refuse(reqID, &joinError{codeJoinRoom, joinFailed, "room handle 0: a join names its room with a handle of 1 or more", ""})
		return
	}
	ss.mu.Lock()
	switch {
	case ss.ended:
		ss.mu.Unlock()
		return
	case ss.userID != "" && ss.userID != j.UserId:
		ss.mu.Unlock()
		ss.refuse(reqID, &joinError{codeUserIDDifferent, joinUserIDDiffers,
			fmt.Sprintf("this connection is user %q, not %q", ss.userID, j.UserId), ""})
		return
	case j.Rejoin && ss.members[j.RoomId] != nil && ss.members[j.RoomId].userID == j.UserId && ss.members[j.RoomId].handle == j.Room:
		m := ss.members[j.RoomId]
		ss.mu.Unlock()
		m.room.mu.Lock()
		in := m.state == stateActive || m.state == stateSuspended
		if t, err := token.Parse(j.Token); err == nil && in { // the rejoin's token rules from now
			m.armTokenLocked(t.ExpireAt)
		}
		m.room.mu.Unlock()
		if !in { // an earlier join still setting up: the client tries again
			ss.refuse(reqID, &joinError{codeJoinRoom, joinFailed, "a join of this room is still in progress", ""})
			return
		}
		ss.srv.metrics.joins.WithLabelValues(joinOK).Inc()
		ss.send(reqID, &pb.ServerFrame{Body: &pb.ServerFrame_Join{Join: &pb.JoinResponse{PacketVersion: packetVersionRooms}}})
		ss.attachWhenOpen(m) // reopened once the transport is open
		return
	case ss.members[j.RoomId] != nil:
		ss.mu.Unlock()
		ss.refuse(reqID, &joinError{codeJoinRoom, joinFailed, "already in this room on this connection", ""})
		return
	case ss.handles[j.Room] != nil:
		ss.mu.Unlock()
		ss.refuse(reqID, &joinError{codeJoinRoom, joinFailed, fmt.Sprintf("room handle %d is another room's on this connection", j.Room), ""})
		return
	}
	ss.claimUserLocked(j.AppId, j.UserId)
	ss.markAuthedLocked()
	r := ss.srv.room(j.AppId, j.RoomId)
	m := newMember(r, ss, j.UserId, j.ExtraInfo, j.Room)
	m.batches = j.PresenceBatches
	if t, err := token.Parse(j.Token); err == nil {
		m.expireAt = t.ExpireAt // timed once the member is active
	}
	ss.members[j.RoomId] = m
	if ss.handles == nil {
		ss.handles = make(map[uint32]*member)
	}
	ss.handles[j.Room] = m
	ss.mu.Unlock()
	m.start()
	ss.srv.metrics.joins.WithLabelValues(joinOK).Inc()
	ss.send(reqID, &pb.ServerFrame{Body: &pb.ServerFrame_Join{Join: &pb.JoinResponse{PacketVersion: packetVersionRooms}}})
	ss.attachWhenOpen(m) // active once the transport is open
}

func (ss *session) handleLeave(reqID uint64, l *pb.LeaveRequest) {
	ss.mu.Lock()
	m := ss.members[l.RoomId]
	ss.mu.Unlock()
	if m != nil {
		reason := int32(reasonQuit)
		if l.Reason == reasonDropped {
			reason = reasonDropped
		}
		m.room.remove(m, reason, true)
	}
	echoed := l.RoomId
	if ids.Check("room ID", echoed) != nil {
		echoed = "" // no room has it: the answer does not echo what it cannot be
	}
	ss.send(reqID, &pb.ServerFrame{Body: &pb.ServerFrame_Leave{Leave: &pb.LeaveResponse{RoomId: echoed}}})
}

// handleUpdateToken replaces the token of the session's member of a room:
// a valid one moves the expiry; an invalid one is -1010 and changes
// nothing.
func (ss *session) handleUpdateToken(reqID uint64, u *pb.UpdateTokenRequest) {
	answer := func(code int32, reason string) {
		ss.send(reqID, &pb.ServerFrame{Body: &pb.ServerFrame_UpdateToken{UpdateToken: &pb.UpdateTokenResponse{Code: code, Reason: reason}}})
	}
	ss.mu.Lock()
	m := ss.members[u.RoomId]
	ss.mu.Unlock()
	if m == nil {
		answer(codeUpdateTokenInvalid, "not in the room")
		return
	}
	if je := ss.srv.checkToken(u.Token, m.room.key.app, u.RoomId, m.userID); je != nil {
		ss.log.Info("token update refused", zap.String("room", u.RoomId), zap.String("reason", je.logDetail()))
		answer(codeUpdateTokenInvalid, je.reason)
		return
	}
	t, _ := token.Parse(u.Token)
	m.room.mu.Lock()
	if m.state == stateActive || m.state == stateSuspended {
		m.armTokenLocked(t.ExpireAt)
	} else {
		m.expireAt = t.ExpireAt // timed once active
	}
	m.room.mu.Unlock()
	answer(0, "")
}

// forget drops m from the session's memberships if it is still there.
func (ss *session) forget(m *member) {
	ss.mu.Lock()
	if ss.members[m.room.id] == m {
		delete(ss.members, m.room.id)
	}
	if ss.handles[m.handle] == m {
		delete(ss.handles, m.handle)
	}
	if i := slices.Index(ss.waiting, m); i >= 0 {
		ss.waiting = slices.Delete(ss.waiting, i, i+1)
	}
	if len(ss.members) == 0 && ss.login == "" {
		ss.dropUserLocked() // nothing holds the user ID: the next join may choose another
	}
	ss.mu.Unlock()
}

// goAway tells the client the server is going away and closes the
// connection, ending the session: the client reconnects (to this server
// when it comes back, or another), finds its session gone, and joins its
// rooms and logs in again by itself. Nobody is told of anybody leaving
// meanwhile (see room.remove).
func (ss *session) goAway(reason string) {
	ss.srv.metrics.closes.WithLabelValues(closeShutdown).Inc()
	ss.mu.Lock()
	lk := ss.link
	ss.mu.Unlock()
	if lk == nil {
		ss.end(errors.New(reason)) // detached: nobody to tell
		return
	}
	b, _ := proto.Marshal(&pb.ServerFrame{Body: &pb.ServerFrame_GoAway{GoAway: &pb.GoAway{Reason: reason}}})
	_ = lk.write(b)
	lk.close(websocket.CloseGoingAway, reason, true)
}
