package server

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/parleyhq/parley/internal/signal"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// maxReplay bounds what a session keeps for replay after a resume: the
// frames its client has not acknowledged.
const maxReplay = 16 << 20

// Until a connection's session has a join or a login accepted, it may
// send frames of at most unauthReadLimit bytes (a join with its SDP offer
// fits), and the frames the server keeps for it unacknowledged may add up
// to unauthReplay bytes; past that the session ends ("replay buffer
// full"). Both are raised to signal.MaxFrameSize and maxReplay once it
// authenticates. So a client without a token costs the server a few KiB,
// not megabytes.
const (
	unauthReadLimit = 16 << 10
	unauthReplay    = 8 << 10
)

// link is one signaling connection and the session it currently carries:
// the session it started with, or an earlier one it resumed.
type link struct {
	srv    *Server
	conn   *signal.Conn
	adm    *admittedConn // the connection's places in the admission counts; nil in tests that make links by hand
	log    *zap.Logger
	frames *rate.Limiter // frames per second the client may send
	sess   atomic.Pointer[session]

	mu      sync.Mutex
	first   bool // no frame read yet: a ResumeRequest may come
	authed  bool // authenticated: counted so, and its limits raised
	endSess bool // closing ends the session too (no resume)
}

// startLink serves a new connection: a new session is made for it, and
// its Welcome carries the secret that resumes it later.
func (s *Server) startLink(ws *websocket.Conn, remote string, adm *admittedConn) {
	lk := &link{
		srv:    s,
		adm:    adm,
		log:    s.log.WithLazy(zap.String("remote", remote)),
		frames: rate.NewLimiter(rate.Limit(s.cfg.MaxFramesPerSecond), 2*s.cfg.MaxFramesPerSecond),
		first:  true,
	}
	ss := s.newSession(lk.log)
	s.mu.Lock()
	if s.closing {
		killed := s.killed
		s.mu.Unlock()
		if !killed { // a killed server says nothing
			msg := websocket.FormatCloseMessage(websocket.CloseGoingAway, "server shutting down")
			_ = ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(time.Second))
		}
		_ = ws.Close()
		return
	}
	s.sessions[ss.id] = ss
	s.wg.Add(1)
	// Published with its link and connection in one step: Shutdown, which
	// finds sessions under s.mu, never sees one without them. The pumps
	// only wait for s.mu if they need it.
	lk.sess.Store(ss)
	ss.link = lk
	lk.conn = signal.Start(ws, signal.Config{PingInterval: s.cfg.PingInterval, ReadLimit: unauthReadLimit, ReadPause: readPause}, lk.onFrame, lk.onClose)
	s.mu.Unlock()
	s.metrics.sessions.Inc()

	ss.mu.Lock()
	if !ss.authed && !ss.ended { // a frame may have been quicker
		ss.authTimer = time.AfterFunc(s.cfg.AuthTimeout, ss.authExpired)
	}
	ss.mu.Unlock()
	welcome, _ := proto.Marshal(&pb.ServerFrame{Body: &pb.ServerFrame_Welcome{Welcome: &pb.Welcome{
		SessionId: ss.id, ServerVersion: Version, ResumeSecret: ss.secret,
		GraceMs: uint32(s.cfg.GracePeriod / time.Millisecond),
	}}})
	_ = lk.conn.Send(welcome)
	_ = ss.out.Attach(0, lk.conn.SendForced, lk.write)
	ss.log.Debug("session started")
}

func (s *Server) newSession(log *zap.Logger) *session {
	ss := &session{
		srv:     s,
		id:      newID(),
		secret:  make([]byte, 32),
		out:     signal.NewStream(unauthReplay), // raised by markAuthedLocked
		members: make(map[string]*member),
	}
	_, _ = rand.Read(ss.secret)
	ss.quota.Store(newUserQuota(s.cfg.Quotas)) // nothing spends it: every send needs a user
	ss.log = log.WithLazy(zap.String("session", ss.id))
	return ss
}

// write queues a frame on the connection.
func (lk *link) write(b []byte) error { return lk.conn.Send(b) }

// close closes the connection; with end, the session ends with it.
func (lk *link) close(code int, reason string, end bool) {
	if end {
		lk.mu.Lock()
		lk.endSess = true
		lk.mu.Unlock()
	}
	lk.conn.Close(code, reason)
}

func (lk *link) onFrame(b []byte) error {
	if !lk.frames.Allow() {
		lk.mu.Lock()
		lk.endSess = true
		lk.mu.Unlock()
		return lk.sess.Load().rateLimited()
	}
	f, err := signal.DecodeClientFrame(b)
	if err != nil {
		lk.mu.Lock()
		lk.endSess = true
		lk.mu.Unlock()
		lk.srv.metrics.closes.WithLabelValues(closeMalformed).Inc()
		lk.log.Info("closing connection", zap.String("reason", closeMalformed), zap.Error(err))
		return &signal.CloseError{Code: websocket.CloseInvalidFramePayloadData, Reason: err.Error()}
	}
	lk.mu.Lock()
	first := lk.first
	lk.first = false
	lk.mu.Unlock()
	if r := f.GetResume(); r != nil && first {
		lk.resume(f.RequestId, r)
		return nil
	}
	if err := lk.sess.Load().onFrame(f); err != nil {
		lk.mu.Lock()
		lk.endSess = true
		lk.mu.Unlock()
		return err
	}
	return nil
}

// readPause is how long the server stops reading a client whose queue of
// frames is full (signal.Config.ReadPause): a client's frames make frames
// for it (results, answers), and a burst of its own is then held back by
// TCP rather than closed as a slow consumer. Frames from elsewhere (rooms,
// other users) still find the queue full and close it.
const readPause = time.Second

// resume moves the session named in r onto this connection, if it exists
// and r proves it is the client's; the session this connection started
// with is dropped. Otherwise this connection keeps its new session.
func (lk *link) resume(reqID uint64, r *pb.ResumeRequest) {
	s := lk.srv
	fresh := lk.sess.Load()
	s.mu.Lock()
	old := s.sessions[r.SessionId]
	s.mu.Unlock()
	answer := func(resp *pb.ResumeResponse) {
		b, _ := proto.Marshal(&pb.ServerFrame{RequestId: reqID, Body: &pb.ServerFrame_Resume{Resume: resp}})
		_ = lk.conn.Send(b)
	}
	if old == nil || old == fresh || subtle.ConstantTimeCompare(old.secret, r.Secret) != 1 {
		lk.log.Info("resume refused", quoted("session", r.SessionId))
		s.metrics.resumes.WithLabelValues("refused").Inc()
		answer(&pb.ResumeResponse{Reason: "unknown or expired session"})
		return
	}
	old.mu.Lock()
	// Once Shutdown or Kill has taken the sessions and their links, none
	// moves to a link they would not find.
	if old.ended || s.shuttingDown() {
		old.mu.Unlock()
		s.metrics.resumes.WithLabelValues("refused").Inc()
		answer(&pb.ResumeResponse{Reason: "unknown or expired session"})
		return
	}
	prev := old.link
	old.link = lk
	if old.grace != nil {
		old.grace.Stop()
		old.grace = nil
	}
	authed := old.authed
	old.mu.Unlock()
	if prev != nil {
		// A half-open connection the server had not noticed yet. Its read
		// pump may still be handling a frame it read before the cut, or
		// have more in its socket buffer: it must be done before the
		// session's Received is taken for the answer, or it and this
		// connection's replay would handle frames of one sequence at once,
		// and a later one could be relayed first.
		prev.conn.Abort()
		<-prev.conn.Done()
	}
	lk.sess.Store(old)
	fresh.mu.Lock()
	fresh.link = nil
	fresh.mu.Unlock()
	fresh.end(errors.New("replaced by a resumed session"))
	if authed {
		lk.markAuthed()
	}
	old.sendMu.Lock() // the answer, then the replay, then new frames
	answer(&pb.ResumeResponse{Ok: true, Ack: old.out.Received()})
	// SendForced takes the whole replay (the replay buffer bounds it); it
	// refuses only a connection that is closing already, and then the
	// replay waits for the next one.
	_ = old.out.Attach(r.Ack, lk.conn.SendForced, lk.write)
	old.sendMu.Unlock()
	s.metrics.resumes.WithLabelValues("ok").Inc()
	old.log.Info("session resumed")
}

// markAuthed moves the connection out of the unauthenticated count and
// lets it send frames up to signal.MaxFrameSize.
func (lk *link) markAuthed() {
	lk.mu.Lock()
	defer lk.mu.Unlock()
	if !lk.authed {
		lk.authed = true
		lk.conn.SetReadLimit(signal.MaxFrameSize)
		if lk.adm != nil {
			lk.adm.markAuthed()
		}
	}
}

// onClose runs when the connection has ended. Its session ends too if it
// never joined or logged in, if the client closed normally (Engine.Close),
// or if the server closed it for what it sent; otherwise the session waits
// the grace period for a resume, and nobody is told anything yet.
func (lk *link) onClose(err error) {
	lk.mu.Lock() // the connection gave back its admission places as it closed
	end := lk.endSess
	lk.mu.Unlock()
	var ce *signal.CloseError
	if errors.As(err, &ce) {
		switch ce.Code {
		case websocket.CloseMessageTooBig:
			end = true
			lk.srv.metrics.closes.WithLabelValues(closeTooBig).Inc()
			lk.log.Info("closing connection", zap.String("reason", closeTooBig), zap.String("detail", ce.Reason))
		case websocket.CloseUnsupportedData:
			end = true
			lk.srv.metrics.closes.WithLabelValues(closeTextFrame).Inc()
			lk.log.Info("closing connection", zap.String("reason", closeTextFrame))
		}
	}
	if websocket.IsCloseError(err, websocket.CloseNormalClosure) {
		end = true // the client said goodbye
	}
	ss := lk.sess.Load()
	ss.mu.Lock()
	if ss.link != lk || ss.ended {
		ss.mu.Unlock()
		return // resumed elsewhere meanwhile, or over already
	}
	ss.link = nil
	ss.out.Detach()
	if !ss.authed || end || lk.srv.shuttingDown() {
		ss.mu.Unlock()
		ss.end(err)
		return
	}
	ss.grace = time.AfterFunc(lk.srv.cfg.GracePeriod, func() {
		ss.log.Info("session ended: no resume within the grace period")
		ss.end(errors.New("grace period over"))
	})
	ss.mu.Unlock()
	ss.log.Info("connection lost; session kept for resume", zap.Duration("grace", lk.srv.cfg.GracePeriod), zap.Error(err))
}
