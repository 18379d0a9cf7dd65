package parley

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/parleyhq/parley/internal/acks"
	"github.com/parleyhq/parley/internal/ids"
	"github.com/parleyhq/parley/internal/signal"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// loginPhase is where the Engine's login stands.
type loginPhase int

const (
	loggedOut   loginPhase = iota // no login, or Logout
	loggingIn                     // a login request in flight
	loggedIn                      // logged in
	tokenFailed                   // the last login failed for its token: UpdateLoginToken retries
)

// login is the Engine's login state, guarded by Engine.lmu.
type login struct {
	phase   loginPhase
	userID  string
	token   string
	started time.Time
	params  bool // SetServerParams succeeded
	claimed bool // holds the Engine's user ID

	// gen counts Login, Logout and re-login calls; a login request's
	// answer sets the phase only if no later call came in the meantime.
	gen uint64
	// last is done when the last queued login operation has run: the
	// operations (login, logout) reach the server in the order of the
	// calls, so the server and the Engine end up agreeing.
	last chan struct{}

	unacked acks.Book    // reliable outside-room messages awaiting acks, by receiver
	owed    acks.Batcher // acks owed to senders of outside-room messages
}

// Login logs in as userID with a login token (room ID ""), ByteRTC's
// login, for messages outside rooms, online status and server messages.
// The result comes in OnLoginResult: Success, InvalidToken (-1000) for a
// bad, expired or mismatched token, InvalidUserID (-1002) for an illegal
// user ID or one other than the Engine's rooms', LoginFailed (-1001) when
// the server cannot be reached. Rooms do not need a login, nor a login a
// room. It returns ErrAlreadyLoggedIn while logged in or logging in.
func (e *Engine) Login(token, userID string) error {
	e.lmu.Lock()
	defer e.lmu.Unlock()
	if e.isClosed() {
		return ErrEngineClosed
	}
	if e.lg.phase == loggingIn || e.lg.phase == loggedIn {
		return ErrAlreadyLoggedIn
	}
	e.lg.userID = userID
	e.startLoginLocked(token)
	return nil
}

// queueLoginOpLocked runs op after every login operation queued before it.
func (e *Engine) queueLoginOpLocked(op func()) {
	prev, done := e.lg.last, make(chan struct{})
	e.lg.last = done
	ok := e.goTracked(func() {
		defer close(done)
		if prev != nil {
			select {
			case <-prev:
			case <-e.ctx.Done():
				return
			}
		}
		op()
	})
	if !ok {
		close(done)
	}
}

// startLoginLocked logs in as e.lg.userID with token in the background.
func (e *Engine) startLoginLocked(token string) {
	e.lg.gen++
	gen, userID, started := e.lg.gen, e.lg.userID, time.Now()
	e.lg.phase, e.lg.token, e.lg.started = loggingIn, token, started
	var refused LoginErrorCode
	switch {
	case ids.Check("user ID", userID) != nil:
		refused = LoginErrorCodeInvalidUserID
	case !e.claimUser(userID, false):
		e.log.Info("login refused: the Engine's rooms use another user ID", zap.String("user", userID))
		refused = LoginErrorCodeInvalidUserID
	}
	if refused != 0 {
		e.lg.phase = loggedOut
		e.queueLoginOpLocked(func() {
			e.emit(func(h EngineEventHandler) { h.OnLoginResult(userID, refused, time.Since(started)) })
		})
		return
	}
	e.lg.claimed = true
	e.queueLoginOpLocked(func() { e.login(gen, userID, token, started) })
}

// login sends the login request and reports its result.
func (e *Engine) login(gen uint64, userID, token string, started time.Time) {
	code := LoginErrorCodeLoginFailed
	ctx, cancel := context.WithTimeout(e.ctx, dialTimeout)
	defer cancel()
	if sig, err := e.signal(ctx); err != nil {
		e.log.Warn("login failed: no connection", zap.String("user", userID), zap.Error(err))
	} else {
		req := func() (*pb.ServerFrame, error) {
			return sig.Request(ctx, &pb.ClientFrame{Body: &pb.ClientFrame_Login{Login: &pb.LoginRequest{
				AppId: e.cfg.AppID, Token: token, UserId: userID,
			}}})
		}
		resp, err := req()
		if errors.Is(err, signal.ErrSessionLost) {
			resp, err = req() // the session went while the login was in flight: ask the new one
		}
		switch {
		case err != nil:
			e.log.Warn("login failed", zap.String("user", userID), zap.Error(err))
		case resp.GetLogin() == nil:
			code = LoginErrorCodeServerError
		default:
			code = LoginErrorCode(resp.GetLogin().Code)
			if code != LoginErrorCodeSuccess {
				e.log.Warn("login refused", zap.String("user", userID), zap.Int("code", int(code)), zap.String("reason", resp.GetLogin().Reason))
			}
		}
	}
	e.lmu.Lock()
	defer e.lmu.Unlock()
	if e.lg.gen == gen { // no Logout or other login since: this answer decides
		switch code {
		case LoginErrorCodeSuccess:
			e.lg.phase = loggedIn
		case LoginErrorCodeInvalidToken:
			e.lg.phase = tokenFailed
		default:
			e.lg.phase = loggedOut
		}
		if code != LoginErrorCodeSuccess && e.lg.claimed {
			e.lg.claimed = false
			e.releaseUser(false)
		}
	}
	e.emit(func(h EngineEventHandler) { h.OnLoginResult(userID, code, time.Since(started)) })
}

// Logout ends the login, ByteRTC's logout; OnLogout(LogoutReasonLogout)
// follows. Outside-room sends still in flight get NetworkDisconnected.
// It returns ErrNotLoggedIn when not logged in.
func (e *Engine) Logout() error {
	e.lmu.Lock()
	defer e.lmu.Unlock()
	if e.isClosed() {
		return ErrEngineClosed
	}
	if e.lg.phase != loggedIn && e.lg.phase != loggingIn {
		return ErrNotLoggedIn
	}
	e.endLoginLocked()
	e.queueLoginOpLocked(func() {
		if sig := e.liveSignal(); sig != nil {
			ctx, cancel := context.WithTimeout(e.ctx, leaveTimeout)
			defer cancel()
			if _, err := sig.Request(ctx, &pb.ClientFrame{Body: &pb.ClientFrame_Logout{Logout: &pb.LogoutRequest{}}}); err != nil {
				e.log.Debug("logout request", zap.Error(err))
			}
		}
		e.emit(func(h EngineEventHandler) { h.OnLogout(LogoutReasonLogout) })
	})
	return nil
}

// endLoginLocked forgets the login and fails its sends in flight.
func (e *Engine) endLoginLocked() {
	e.lg.gen++
	e.lg.phase = loggedOut
	e.lg.params = false
	if e.lg.claimed {
		e.lg.claimed = false
		e.releaseUser(false)
	}
	e.lg.unacked.Drain()
	e.failWhere(func(ps *pendingSend) bool { return ps.kind == kindOutside || ps.kind == kindServer })
}

// UpdateLoginToken replaces the login token, ByteRTC's updateLoginToken.
// After a login that failed for its token, the Engine logs in again by
// itself with the new one (OnLoginResult follows); while logged in, the
// token is kept for the next login. It returns ErrNotLoggedIn when Login
// was never called (or after Logout).
func (e *Engine) UpdateLoginToken(token string) error {
	e.lmu.Lock()
	defer e.lmu.Unlock()
	if e.isClosed() {
		return ErrEngineClosed
	}
	switch e.lg.phase {
	case loggedOut:
		return ErrNotLoggedIn
	case tokenFailed:
		e.startLoginLocked(token)
	default:
		e.lg.token = token
	}
	return nil
}

// GetPeerOnlineStatus asks whether peerUserID is logged in, ByteRTC's
// getPeerOnlineStatus; OnGetPeerOnlineStatus follows. Asking about
// yourself works. It needs a login (ErrNotLoggedIn) and a legal user ID
// (ErrInvalidArgument).
func (e *Engine) GetPeerOnlineStatus(peerUserID string) error {
	if err := ids.Check("user ID", peerUserID); err != nil {
		return invalidArg("%v", err)
	}
	e.lmu.Lock()
	defer e.lmu.Unlock()
	if e.isClosed() {
		return ErrEngineClosed
	}
	if e.lg.phase != loggedIn {
		return ErrNotLoggedIn
	}
	e.queueLoginOpLocked(func() {
		status := UserOnlineStatusOffline
		if sig := e.liveSignal(); sig != nil {
			ctx, cancel := context.WithTimeout(e.ctx, e.opts.messageTimeout)
			defer cancel()
			resp, err := sig.Request(ctx, &pb.ClientFrame{Body: &pb.ClientFrame_PeerStatus{PeerStatus: &pb.PeerStatusRequest{UserId: peerUserID}}})
			if err == nil {
				status = UserOnlineStatus(resp.GetPeerStatus().GetStatus())
			}
		}
		e.emit(func(h EngineEventHandler) { h.OnGetPeerOnlineStatus(peerUserID, status) })
	})
	return nil
}

// SendUserMessageOutsideRoom sends a text message to a logged-in user
// outside any room, ByteRTC's sendUserMessageOutsideRoom, over the
// signaling connection. It returns the message ID, from the Engine's one
// sequence; OnUserMessageSendResultOutsideRoom follows exactly once:
// Success for MessageConfigReliableOrdered only once the receiver's SDK has
// it, for the other modes once the server forwarded it; NoReceiver for a
// user not logged in; NotLogin when this Engine is not. On a closed
// Engine it returns -1 and no result follows.
//
// While 1,024 frames wait to be written on the signaling connection (a
// burst faster than the connection takes it), the call waits for room, as
// a send in a room waits for a full data channel; if none comes within
// the message timeout (WithMessageTimeout), the result is Timeout.
func (e *Engine) SendUserMessageOutsideRoom(userID, message string, cfg MessageConfig) int64 {
	return e.sendOutside(userID, []byte(message), false, cfg)
}

// SendUserBinaryMessageOutsideRoom is SendUserMessageOutsideRoom for
// binary data; message is not retained after the call returns.
func (e *Engine) SendUserBinaryMessageOutsideRoom(userID string, message []byte, cfg MessageConfig) int64 {
	return e.sendOutside(userID, message, true, cfg)
}

func (e *Engine) sendOutside(to string, payload []byte, binary bool, cfg MessageConfig) int64 {
	reliable := cfg == MessageConfigReliableOrdered
	e.lmu.Lock()
	in := e.lg.phase == loggedIn
	e.lmu.Unlock()
	code := -1
	switch {
	case !in:
		code = int(UserMessageSendResultNotLogin)
	case to == "":
		code = int(UserMessageSendResultEmptyUser)
	case ids.Check("user ID", to) != nil:
		code = int(UserMessageSendResultNoReceiver) // nobody can log in with that ID
	case len(payload) > MaxMessageSize:
		code = int(UserMessageSendResultExceedMaxLength)
	case cfg < MessageConfigReliableOrdered || cfg > MessageConfigUnreliableUnordered:
		code = int(UserMessageSendResultUnknown)
	}
	if code >= 0 {
		return e.fail(&pendingSend{kind: kindOutside, to: to}, code)
	}
	ps := &pendingSend{kind: kindOutside, to: to}
	if reliable {
		ps.book = &e.lg.unacked
	}
	return e.sendSignal(ps, func(id int64) *pb.ClientFrame {
		if ps.book != nil {
			ps.book.Expect(to, id)
		}
		return &pb.ClientFrame{Body: &pb.ClientFrame_Send{Send: &pb.OutsideMessage{
			MsgId: id, To: to, Binary: binary, Payload: payload, Reliable: reliable,
		}}}
	})
}

// sendSignal assigns an ID to ps and sends the frame built for it on the
// signaling connection, in ID order.
func (e *Engine) sendSignal(ps *pendingSend, frame func(id int64) *pb.ClientFrame) int64 {
	e.sigSendMu.Lock()
	defer e.sigSendMu.Unlock()
	id := e.newID(ps, true)
	if id < 0 {
		return -1
	}
	sig := e.liveSignal()
	if sig == nil {
		e.resolve(id, int(UserMessageSendResultNoConnection))
		return id
	}
	ctx, cancel := context.WithTimeout(e.ctx, e.opts.messageTimeout)
	defer cancel()
	switch err := sig.Send(ctx, frame(id)); {
	case errors.Is(err, context.DeadlineExceeded):
		e.resolve(id, int(UserMessageSendResultTimeout)) // the connection's queue stayed full
	case err != nil:
		e.resolve(id, int(UserMessageSendResultNetworkDisconnected))
	}
	return id
}

// SetServerParams sets the application server's URL and the signature
// the server sends it, ByteRTC's setServerParams; OnServerParamsSetResult
// follows: 200 on success, NotLogin (105) before a login, E2BSSendFailed
// (17) when the server's operator does not allow that URL.
func (e *Engine) SetServerParams(signature, url string) error {
	e.lmu.Lock()
	defer e.lmu.Unlock()
	if e.isClosed() {
		return ErrEngineClosed
	}
	if e.lg.phase != loggedIn {
		e.emit(func(h EngineEventHandler) { h.OnServerParamsSetResult(int(UserMessageSendResultNotLogin)) })
		return nil
	}
	e.queueLoginOpLocked(func() {
		code := int(UserMessageSendResultNoConnection)
		if sig := e.liveSignal(); sig != nil {
			ctx, cancel := context.WithTimeout(e.ctx, e.opts.messageTimeout)
			defer cancel()
			resp, err := sig.Request(ctx, &pb.ClientFrame{Body: &pb.ClientFrame_ServerParams{ServerParams: &pb.ServerParamsRequest{
				Signature: signature, Url: url,
			}}})
			if err == nil {
				code = int(resp.GetServerParams().GetCode())
			}
		}
		e.lmu.Lock() // a refused URL leaves no params set, as on the server
		e.lg.params = code == 200 && e.lg.phase == loggedIn
		e.lmu.Unlock()
		e.emit(func(h EngineEventHandler) { h.OnServerParamsSetResult(code) })
	})
	return nil
}

// SendServerMessage sends a text message to the application server set by
// SetServerParams, ByteRTC's sendServerMessage. It returns the message ID;
// OnServerMessageSendResult follows exactly once, with the server's answer
// body as ack: Success on a 2xx answer, E2BSReturnFailed (18) on another
// status, E2BSSendFailed (17) when it could not be reached in time,
// ServerParamsNotSet (106), NotLogin (105). On a closed Engine it returns
// -1 and no result follows.
func (e *Engine) SendServerMessage(message string) int64 {
	return e.sendServer([]byte(message), false)
}

// SendServerBinaryMessage is SendServerMessage for binary data.
func (e *Engine) SendServerBinaryMessage(message []byte) int64 {
	return e.sendServer(message, true)
}

func (e *Engine) sendServer(payload []byte, binary bool) int64 {
	e.lmu.Lock()
	in, params := e.lg.phase == loggedIn, e.lg.params
	e.lmu.Unlock()
	code := -1
	switch {
	case !in:
		code = int(UserMessageSendResultNotLogin)
	case !params:
		code = int(UserMessageSendResultServerParamsNotSet)
	case len(payload) > MaxMessageSize:
		code = int(UserMessageSendResultExceedMaxLength)
	}
	if code >= 0 {
		return e.fail(&pendingSend{kind: kindServer}, code)
	}
	return e.sendSignal(&pendingSend{kind: kindServer}, func(id int64) *pb.ClientFrame {
		return &pb.ClientFrame{Body: &pb.ClientFrame_ServerMessage{ServerMessage: &pb.ServerMessage{
			MsgId: id, Binary: binary, Payload: payload,
		}}}
	})
}

// onLoginEvent applies a login-level server event; it runs on the
// signaling read goroutine. Only a received message may wait (for room in
// the dispatcher's message queue).
func (e *Engine) onLoginEvent(f *pb.ServerFrame) {
	switch b := f.Body.(type) {
	case *pb.ServerFrame_LoggedOut:
		e.lmu.Lock()
		was := e.lg.phase == loggedIn
		if was {
			e.endLoginLocked()
		}
		e.lmu.Unlock()
		if was {
			reason := LogoutReason(b.LoggedOut.Reason)
			e.emit(func(h EngineEventHandler) { h.OnLogout(reason) })
		}
	case *pb.ServerFrame_Message:
		// A message event, bounded as a room's are: while the dispatcher
		// holds its maximum of messages this waits, the signaling reader
		// with it, and TCP pushes back on the server, whose queue for this
		// connection bounds the rest (see docs/architecture.md, Queues).
		m := b.Message
		from, payload := m.From, m.Payload
		var ev func(h EngineEventHandler)
		if m.Binary {
			ev = func(h EngineEventHandler) { h.OnUserBinaryMessageReceivedOutsideRoom(from, payload) }
		} else {
			ev = func(h EngineEventHandler) { h.OnUserMessageReceivedOutsideRoom(from, string(payload)) }
		}
		if !e.q.Message(func() { ev(e.handler) }) {
			return // Engine closed: not accepted, so not acknowledged
		}
		if m.Reliable {
			e.lg.owed.Ack(from, m.MsgId)
		}
	case *pb.ServerFrame_Ack:
		for _, id := range e.lg.unacked.Settle(b.Ack.Peer, b.Ack.UpTo) {
			e.resolve(id, int(UserMessageSendResultSuccess))
		}
	case *pb.ServerFrame_Result:
		e.resolve(b.Result.MsgId, int(b.Result.Code))
	case *pb.ServerFrame_ServerResult:
		e.resolveAck(b.ServerResult.MsgId, int(b.ServerResult.Code), b.ServerResult.Ack)
	}
}

// flushLoginAcks sends the acks owed for outside-room messages.
func (e *Engine) flushLoginAcks(upTo map[string]int64) {
	sig := e.liveSignal()
	if sig == nil {
		return
	}
	for peer, id := range upTo {
		if err := sig.Send(e.ctx, &pb.ClientFrame{Body: &pb.ClientFrame_Ack{Ack: &pb.Ack{Peer: peer, UpTo: id}}}); err != nil {
			e.log.Debug("send ack", zap.Error(err))
			return
		}
	}
}
