package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/parleyhq/parley/internal/acks"
	"github.com/parleyhq/parley/internal/signal"
	pb "github.com/parleyhq/parley/proto/parley/v1"
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

// session is one signaling connection: its user ID once it has joined,
// and its room memberships.
type session struct {
	srv  *Server
	id   string
	log  *zap.Logger
	conn *signal.Conn

	ip        string        // the remote address's host, for the admission counts
	frames    *rate.Limiter // frames per second the client may send
	authTimer *time.Timer
	quota     userQuota
	sendMu    sync.Mutex // orders frames to the client where order matters (login)

	unacked acks.Book    // reliable outside-room messages awaiting this session's ack
	posts   atomic.Int32 // server messages being posted

	mu      sync.Mutex
	userID  string             // set by the first accepted join or login; one per session
	members map[string]*member // by room ID, pending and active
	app     string             // the app of the login
	login   string             // the logged-in user ID, "" if not logged in
	params  *serverParams      // set by SetServerParams while logged in
	authed  bool
	ended   bool
}

func (s *Server) startSession(ws *websocket.Conn, remote, ip string) {
	ss := &session{
		srv:     s,
		id:      newID(),
		ip:      ip,
		members: make(map[string]*member),
		quota:   newUserQuota(s.cfg.Quotas),
		frames:  rate.NewLimiter(rate.Limit(s.cfg.MaxFramesPerSecond), 2*s.cfg.MaxFramesPerSecond),
	}
	ss.log = s.log.With(zap.String("session", ss.id), zap.String("remote", remote))
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		s.admission.release(ip, true)
		msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down")
		_ = ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		_ = ws.Close()
		return
	}
	s.sessions[ss] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	s.metrics.sessions.Inc()

	ss.conn = signal.Start(ws, signal.Config{PingInterval: s.cfg.PingInterval}, ss.onFrame, ss.onClose)
	ss.authTimer = time.AfterFunc(s.cfg.AuthTimeout, ss.authExpired)
	ss.send(0, &pb.ServerFrame{Body: &pb.ServerFrame_Welcome{Welcome: &pb.Welcome{
		SessionId: ss.id, ServerVersion: Version,
	}}})
	ss.log.Debug("session started")
}

// authExpired closes a connection that neither logged in nor joined in time.
func (ss *session) authExpired() {
	ss.mu.Lock()
	authed := ss.authed
	ss.mu.Unlock()
	if !authed {
		ss.closeFor(websocket.ClosePolicyViolation, closeAuthTimeout,
			fmt.Sprintf("no join within %v", ss.srv.cfg.AuthTimeout))
	}
}

// closeFor closes the connection for a reason of the server's, with a log
// line and a metric.
func (ss *session) closeFor(code int, label, reason string) {
	ss.srv.metrics.closes.WithLabelValues(label).Inc()
	ss.log.Info("closing connection", zap.String("reason", label), zap.String("detail", reason))
	ss.conn.Close(code, reason)
}

// send queues a frame for the client. A client that cannot keep up with its
// signaling (1024 frames queued) is disconnected: its state is torn down
// as if it had dropped, which is the only bound that cannot stall the room
// that produces the events.
func (ss *session) send(requestID uint64, f *pb.ServerFrame) {
	ss.sendMu.Lock()
	defer ss.sendMu.Unlock()
	ss.sendLocked(requestID, f)
}

// sendLocked is send with sendMu held.
func (ss *session) sendLocked(requestID uint64, f *pb.ServerFrame) {
	f.RequestId = requestID
	b, err := proto.Marshal(f)
	if err != nil {
		ss.log.Error("marshal frame", zap.Error(err))
		return
	}
	ss.sendRawLocked(b)
}

func (ss *session) onFrame(b []byte) error {
	if !ss.frames.Allow() {
		return ss.rateLimited()
	}
	f, err := signal.DecodeClientFrame(b)
	if err != nil {
		ss.srv.metrics.closes.WithLabelValues(closeMalformed).Inc()
		ss.log.Info("closing connection", zap.String("reason", closeMalformed), zap.Error(err))
		return &signal.CloseError{Code: websocket.CloseInvalidFramePayloadData, Reason: err.Error()}
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
	}
	return nil
}

// markAuthedLocked records the session's first accepted join or login.
func (ss *session) markAuthedLocked() {
	if !ss.authed {
		ss.authed = true
		ss.srv.admission.authenticated()
	}
}

func (ss *session) onClose(err error) {
	ss.authTimer.Stop()
	ss.mu.Lock()
	ss.srv.admission.release(ss.ip, !ss.authed)
	ss.mu.Unlock()
	var ce *signal.CloseError
	if errors.As(err, &ce) {
		switch ce.Code {
		case websocket.CloseMessageTooBig:
			ss.srv.metrics.closes.WithLabelValues(closeTooBig).Inc()
			ss.log.Info("closing connection", zap.String("reason", closeTooBig), zap.String("detail", ce.Reason))
		case websocket.CloseUnsupportedData:
			ss.srv.metrics.closes.WithLabelValues(closeTextFrame).Inc()
			ss.log.Info("closing connection", zap.String("reason", closeTextFrame))
		}
	}
	ss.mu.Lock()
	ss.ended = true
	members := make([]*member, 0, len(ss.members))
	for _, m := range ss.members {
		members = append(members, m)
	}
	ss.members = nil
	app, login := ss.app, ss.login
	ss.mu.Unlock()
	for _, m := range members {
		m.room.remove(m, reasonDropped, true)
	}
	if login != "" {
		k := loginKey{app, login}
		ss.srv.unregister(k, ss)
		ss.endLogin(k)
	}
	s := ss.srv
	s.mu.Lock()
	delete(s.sessions, ss)
	s.mu.Unlock()
	s.metrics.sessions.Dec()
	ss.log.Debug("session ended", zap.Error(err))
	s.wg.Done()
}

func (ss *session) refuse(reqID uint64, je *joinError) {
	ss.srv.metrics.joins.WithLabelValues(je.result).Inc()
	ss.log.Info("join refused", zap.Int32("code", je.code), zap.String("reason", je.reason))
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
	ss.mu.Lock()
	switch {
	case ss.ended:
		ss.mu.Unlock()
		return
	case ss.userID != "" && ss.userID != j.UserId:
		ss.mu.Unlock()
		ss.refuse(reqID, &joinError{codeUserIDDifferent, joinUserIDDiffers,
			fmt.Sprintf("this connection is user %q, not %q", ss.userID, j.UserId)})
		return
	case ss.members[j.RoomId] != nil:
		ss.mu.Unlock()
		ss.refuse(reqID, &joinError{codeJoinRoom, joinFailed, "already in this room on this connection"})
		return
	}
	ss.userID = j.UserId
	ss.markAuthedLocked()
	r := ss.srv.room(j.AppId, j.RoomId)
	m := newMember(r, ss, j.UserId, j.ExtraInfo)
	ss.members[j.RoomId] = m
	ss.mu.Unlock()
	ss.authTimer.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	answer, err := m.start(ctx, j.SdpOffer)
	if err != nil {
		r.remove(m, reasonDropped, false)
		ss.refuse(reqID, &joinError{codeJoinRoom, joinFailed, err.Error()})
		return
	}
	ss.srv.metrics.joins.WithLabelValues(joinOK).Inc()
	ss.send(reqID, &pb.ServerFrame{Body: &pb.ServerFrame_Join{Join: &pb.JoinResponse{SdpAnswer: answer}}})
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
	ss.send(reqID, &pb.ServerFrame{Body: &pb.ServerFrame_Leave{Leave: &pb.LeaveResponse{RoomId: l.RoomId}}})
}

// forget drops m from the session's memberships if it is still there.
func (ss *session) forget(m *member) {
	ss.mu.Lock()
	if ss.members[m.room.id] == m {
		delete(ss.members, m.room.id)
	}
	if len(ss.members) == 0 && ss.login == "" {
		ss.userID = "" // nothing holds the user ID: the next join may choose another
	}
	ss.mu.Unlock()
}

// goAway tells the client that each of its rooms is gone (-1084) and that
// the server is going away, and closes the connection. onClose removes the
// members once the client has read this: closing their PeerConnections
// first would race these frames, and the client could report its room
// transport lost instead. Nobody is told of anybody leaving meanwhile (see
// room.remove).
func (ss *session) goAway(reason string) {
	ss.mu.Lock()
	rooms := make([]string, 0, len(ss.members))
	for id := range ss.members {
		rooms = append(rooms, id)
	}
	ss.mu.Unlock()
	for _, id := range rooms {
		ss.send(0, &pb.ServerFrame{Body: &pb.ServerFrame_RoomRemoved{RoomRemoved: &pb.RoomRemoved{
			RoomId: id, Code: codeAbnormalServerState, Reason: reason,
		}}})
	}
	ss.send(0, &pb.ServerFrame{Body: &pb.ServerFrame_GoAway{GoAway: &pb.GoAway{Reason: reason}}})
	ss.srv.metrics.closes.WithLabelValues(closeShutdown).Inc()
	ss.conn.Close(websocket.CloseGoingAway, reason)
}

// sendRaw queues an encoded frame (request ID 0), as send does.
func (ss *session) sendRaw(b []byte) {
	ss.sendMu.Lock()
	defer ss.sendMu.Unlock()
	ss.sendRawLocked(b)
}

func (ss *session) sendRawLocked(b []byte) {
	if err := ss.conn.Send(b); err == signal.ErrQueueFull {
		ss.closeFor(websocket.ClosePolicyViolation, closeSlow, "signaling queue full")
	}
}
