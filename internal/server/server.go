package server

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/ice/v4"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"

	"github.com/parleyhq/parley/internal/transport"
)

// Version is reported in Welcome.
const Version = "parley/0.1"

// Server is one relay node.
type Server struct {
	cfg      Config
	log      *zap.Logger
	metrics  *metrics
	upgrader websocket.Upgrader

	api  *webrtc.API
	udp  net.PacketConn // the ICE UDP socket: the host's, or Config.ICENet's
	mux  ice.UDPMux
	ln   net.Listener
	http *http.Server
	url  string

	mu       sync.Mutex
	rooms    map[roomKey]*room
	logins   map[loginKey]*session
	sessions map[string]*session // by ID, attached or detached
	closing  bool
	served   chan struct{} // closed when the HTTP server has returned

	admission admission

	qmu    sync.Mutex
	quotas map[quotaKey]*userQuota // the users' rate quotas, shared by their sessions

	ctx    context.Context // cancelled by Shutdown: ends posts to app servers
	cancel context.CancelFunc
	client *http.Client // posts server messages; follows no redirect

	wg sync.WaitGroup // sessions and member teardown goroutines
}

// New checks cfg and prepares a server; it opens no socket.
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if len(cfg.Apps) == 0 {
		return nil, errors.New("server: no apps configured (Config.Apps is empty)")
	}
	for id, key := range cfg.Apps {
		if len(id) != 24 {
			return nil, fmt.Errorf("server: app ID %q is %d characters; tokens need exactly 24", id, len(id))
		}
		if key == "" {
			return nil, fmt.Errorf("server: app %q has an empty key", id)
		}
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return nil, fmt.Errorf("server: listen address %q: %w", cfg.Listen, err)
	}
	if cfg.UDPPort < 0 || cfg.UDPPort > 65535 {
		return nil, fmt.Errorf("server: UDP port %d out of range", cfg.UDPPort)
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		metrics:  newMetrics(),
		rooms:    make(map[roomKey]*room),
		logins:   make(map[loginKey]*session),
		sessions: make(map[string]*session),
		quotas:   make(map[quotaKey]*userQuota),
		served:   make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.client = &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	s.upgrader = websocket.Upgrader{
		ReadBufferSize:  16 << 10,
		WriteBufferSize: 16 << 10,
		// serveRTC applies the origin policy before upgrading.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	return s, nil
}

// Start binds the TCP listener and the ICE UDP port on the listen host and
// serves in the background.
func (s *Server) Start() error {
	host, _, _ := net.SplitHostPort(s.cfg.Listen)
	ln, err := net.Listen("tcp", s.cfg.Listen)
	if err != nil {
		return fmt.Errorf("server: listen: %w", err)
	}
	ip := net.ParseIP(host)
	if ip == nil && host != "" {
		addrs, err := net.LookupIP(host)
		if err != nil || len(addrs) == 0 {
			ln.Close()
			return fmt.Errorf("server: resolve %q: %v", host, err)
		}
		ip = addrs[0]
	}
	var udp net.PacketConn
	if s.cfg.ICENet != nil {
		udp, err = transport.ListenNetUDP(s.cfg.ICENet, s.cfg.UDPPort)
	} else {
		udp, err = transport.ListenUDP(&net.UDPAddr{IP: ip, Port: s.cfg.UDPPort})
	}
	if err != nil {
		ln.Close()
		return fmt.Errorf("server: listen UDP: %w", err)
	}
	s.ln, s.udp = ln, udp
	s.mux = webrtc.NewICEUDPMux(transport.NewLogger(s.log, "ice"), udp)
	loopback := s.cfg.LoopbackOnly || (ip != nil && ip.IsLoopback())
	s.api = transport.NewAPI(transport.Options{
		Logger:       s.log,
		LoopbackOnly: loopback,
		UDPMux:       s.mux,
		Net:          s.cfg.ICENet,
	})
	s.url = "ws://" + ln.Addr().String() + "/rtc"

	mux := http.NewServeMux()
	mux.HandleFunc("/rtc", s.serveRTC)
	mux.HandleFunc("/healthz", s.serveHealth)
	mux.Handle("/metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	s.http = &http.Server{Handler: mux, ErrorLog: zap.NewStdLog(s.log.Named("http"))}
	go func() {
		defer close(s.served)
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("http serve", zap.Error(err))
		}
	}()
	s.log.Info("serving", zap.String("url", s.url), zap.String("udp", udp.LocalAddr().String()))
	return nil
}

// URL is the signaling URL, valid after Start.
func (s *Server) URL() string { return s.url }

// Addr is the TCP listen address, valid after Start.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// UDPAddr is the ICE UDP address, valid after Start.
func (s *Server) UDPAddr() net.Addr { return s.udp.LocalAddr() }

func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	if s.shuttingDown() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte("ok\n"))
}

func (s *Server) serveRTC(w http.ResponseWriter, r *http.Request) {
	if s.shuttingDown() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	if !s.checkOrigin(r) {
		s.refuse(w, r, closeOrigin, http.StatusForbidden)
		return
	}
	ip := remoteIP(r.RemoteAddr)
	if broken := s.admission.admit(ip, s.cfg.MaxConnsPerAddress, s.cfg.MaxUnauthenticated); broken != "" {
		s.refuse(w, r, broken, http.StatusTooManyRequests)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.admission.release(ip, true)
		return // the upgrader has answered
	}
	s.startLink(ws, r.RemoteAddr, ip)
}

// Shutdown tells every session the server is going away, removes every
// member, closes the connections and waits for them, up to ctx's deadline
// or Config.DrainTimeout, whichever comes first.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing = true
	sessions := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, s.cfg.DrainTimeout)
	defer cancel()
	var errs []error
	if s.http != nil {
		if err := s.http.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("http shutdown: %w", err))
		}
	}
	s.cancel() // posts to app servers in flight end now
	for _, ss := range sessions {
		ss.goAway("server shutting down")
	}
	drained := make(chan struct{})
	go func() { s.wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-ctx.Done():
		errs = append(errs, fmt.Errorf("drain: %w", ctx.Err()))
		for _, ss := range sessions {
			ss.mu.Lock()
			lk := ss.link
			ss.mu.Unlock()
			if lk != nil {
				lk.conn.Abort()
			}
		}
		select { // aborted connections end at once; do not hang on a bug
		case <-drained:
		case <-time.After(2 * time.Second):
			errs = append(errs, errors.New("drain: connections still open after abort"))
		}
	}
	if s.mux != nil {
		if err := s.mux.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close UDP mux: %w", err))
		}
	}
	if s.ln != nil {
		<-s.served
	}
	s.log.Info("stopped")
	return errors.Join(errs...)
}

// room returns app's room id, creating it, and takes a reference that
// release gives back. Apps do not share rooms: each app's room IDs are its
// own.
func (s *Server) room(app, id string) *room {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := roomKey{app, id}
	r := s.rooms[key]
	if r == nil {
		r = &room{srv: s, key: key, id: id, members: make(map[string]*member), quota: perSecond(s.cfg.Quotas.RoomBroadcastsPerSecond)}
		s.rooms[key] = r
		s.metrics.rooms.Inc()
	}
	r.refs++
	return r
}

func (s *Server) release(r *room) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r.refs--
	if r.refs == 0 && s.rooms[r.key] == r {
		delete(s.rooms, r.key)
		s.metrics.rooms.Dec()
	}
}

// shuttingDown reports whether Shutdown has begun.
func (s *Server) shuttingDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
