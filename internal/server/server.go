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
	"sync/atomic"
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

	api   *webrtc.API
	certs certs          // the DTLS certificate of every PeerConnection
	udp   net.PacketConn // the ICE UDP socket: the host's, or Config.ICENet's
	mux   ice.UDPMux
	ln    net.Listener
	http  *http.Server
	url   string

	metricsLn   net.Listener // Config.MetricsListen's; nil: /metrics is on ln
	metricsHTTP *http.Server
	timeouts    httpTimeouts // tests shorten them before Start

	refusals chan struct{}  // one token per refusal being answered (refuseConn)
	refusing sync.WaitGroup // the refusals being answered

	cluster       *cluster       // the NATS connection of a node of a cluster; nil on a single node
	clusterLogins *clusterLogins // logins across nodes (remote_login.go); nil on a single node

	mu       sync.Mutex
	rooms    map[roomKey]*room
	logins   map[loginKey]*session
	sessions map[string]*session // by ID, attached or detached
	closing  bool                // Shutdown or Kill has begun
	killed   bool                // it was Kill
	served   chan struct{}       // closed when the HTTP server has returned
	// leaving is set when a node of a cluster begins its Shutdown: from
	// then on its members' reliable messages are left to the node they
	// move to (see member.relay).
	leaving atomic.Bool
	// movers are the members of nodes that left, by room, for rooms this
	// node opens within the grace period (leaving.go); guarded by mu.
	movers map[roomKey][]moversRoom

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
	if cfg.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(cfg.MetricsListen); err != nil {
			return nil, fmt.Errorf("server: metrics listen address %q: %w", cfg.MetricsListen, err)
		}
	}
	if cfg.UDPPort < 0 || cfg.UDPPort > 65535 {
		return nil, fmt.Errorf("server: UDP port %d out of range", cfg.UDPPort)
	}
	if err := checkNodeID(cfg.NodeID); err != nil {
		return nil, err
	}
	if cfg.NATS != "" {
		if err := checkNATS(cfg.NATS); err != nil {
			return nil, err
		}
		cfg.Logger = cfg.Logger.With(zap.String("node", cfg.NodeID))
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
		timeouts: defaultHTTPTimeouts,
		refusals: make(chan struct{}, maxRefusing),
	}
	if cfg.NATS != "" {
		s.cluster = newCluster(cfg.NATS, cfg.NodeID, s.log)
		s.clusterLogins = newClusterLogins(s)
		s.metrics.watchNATS(s.cluster)
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.client = &http.Client{
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	s.upgrader = websocket.Upgrader{
		// A connection reads through the 4 KiB buffer net/http read its
		// request with, and holds a write buffer only while it writes: an
		// idle connection costs no buffer of its own.
		WriteBufferSize: 16 << 10,
		WriteBufferPool: new(sync.Pool),
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
		var conn *net.UDPConn
		if conn, err = transport.ListenUDP(&net.UDPAddr{IP: ip, Port: s.cfg.UDPPort}, s.log); err == nil {
			udp = transport.BatchUDP(conn, s.log)
		}
	}
	if err != nil {
		ln.Close()
		return fmt.Errorf("server: listen UDP: %w", err)
	}
	if s.cfg.MetricsListen != "" {
		if s.metricsLn, err = net.Listen("tcp", s.cfg.MetricsListen); err != nil {
			ln.Close()
			udp.Close()
			return fmt.Errorf("server: metrics listen: %w", err)
		}
	}
	if s.cluster != nil {
		err := s.cluster.connect()
		if err == nil {
			err = s.startCluster()
		}
		if err != nil {
			ln.Close()
			udp.Close()
			if s.metricsLn != nil {
				s.metricsLn.Close()
			}
			return err
		}
	}
	s.ln, s.udp = ln, udp
	s.metrics.watchUDP(udp)
	s.mux = webrtc.NewICEUDPMux(transport.NewLogger(s.log, "ice"), udp)
	loopback := s.cfg.LoopbackOnly || (ip != nil && ip.IsLoopback())
	s.api = transport.NewAPI(transport.Options{
		Logger:       s.log,
		LoopbackOnly: loopback,
		UDPMux:       s.mux,
		Net:          s.cfg.ICENet,
		DataOnly:     true,
		// A client sends an ICE keepalive every 2 s (a browser a consent
		// check every 5 s or so), and the server's answers keep the
		// client's side alive: the server's own keepalives, every 2 s too,
		// doubled the STUN an idle member cost it. Without them, a pair is
		// called disconnected after 10 s of silence (RFC 7675's consent
		// period, which pion takes for an ICE-lite agent) and failed 20 s
		// later: a dead client is failed after 30 s, as before. (An
		// ICE-lite server would send no checks at all, but a client then
		// nominates only at its next check, 200 ms later, and every
		// PeerConnection setup would wait for it.)
		NoICEKeepalive:         true,
		ICEDisconnectedTimeout: serverICEDisconnected,
		ICEFailedTimeout:       transport.ICEDisconnected + transport.ICEFailed - serverICEDisconnected,
	})
	s.url = "ws://" + ln.Addr().String() + "/rtc"

	metricsHandler := promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{})
	mux := http.NewServeMux()
	mux.HandleFunc("/rtc", s.serveRTC)
	mux.HandleFunc("/healthz", s.serveHealth)
	s.registerWeb(mux) // web.go
	if s.metricsLn == nil {
		mux.Handle("/metrics", metricsHandler)
	}
	s.http = s.newHTTPServer(mux)
	// Every connection counts against the connection caps from its
	// accept, so one that never finishes its request holds a place, not
	// an unbounded file descriptor, until the header timeout closes it.
	s.http.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		return context.WithValue(ctx, admittedKey{}, c)
	}
	served := []func() error{func() error { return s.http.Serve(&admitListener{Listener: ln, s: s}) }}
	if s.metricsLn != nil {
		mmux := http.NewServeMux()
		mmux.Handle("/metrics", metricsHandler)
		s.metricsHTTP = s.newHTTPServer(mmux)
		served = append(served, func() error { return s.metricsHTTP.Serve(s.metricsLn) })
	}
	var wg sync.WaitGroup
	for _, serve := range served {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := serve(); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("http serve", zap.Error(err))
			}
		}()
	}
	go func() { wg.Wait(); close(s.served) }()
	fields := []zap.Field{zap.String("url", s.url), zap.String("udp", udp.LocalAddr().String())}
	if s.metricsLn != nil {
		fields = append(fields, zap.String("metrics", "http://"+s.metricsLn.Addr().String()+"/metrics"))
	}
	if s.cluster != nil {
		fields = append(fields, zap.String("nats", redactURLs(s.cfg.NATS)))
	}
	s.log.Info("serving", fields...)
	return nil
}

// httpTimeouts are the HTTP server's: a request's headers must arrive
// within header, the whole request within read, the answer be written
// within write, and a kept-alive connection is closed after idle without
// a request. net/http clears the deadlines of a connection it hands over
// (a WebSocket upgrade); from then on signal.Conn keeps its own.
type httpTimeouts struct {
	header, read, write, idle time.Duration
}

var defaultHTTPTimeouts = httpTimeouts{
	header: 5 * time.Second,
	read:   10 * time.Second,
	write:  10 * time.Second,
	idle:   60 * time.Second,
}

// newHTTPServer is an http.Server with the server's timeouts and logger.
func (s *Server) newHTTPServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: s.timeouts.header,
		ReadTimeout:       s.timeouts.read,
		WriteTimeout:      s.timeouts.write,
		IdleTimeout:       s.timeouts.idle,
		MaxHeaderBytes:    16 << 10, // a request of /rtc has no business with more
		ErrorLog:          zap.NewStdLog(s.log.Named("http")),
	}
}

// URL is the signaling URL, valid after Start.
func (s *Server) URL() string { return s.url }

// Addr is the TCP listen address, valid after Start.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// MetricsAddr is the TCP address of /metrics, valid after Start: Addr,
// unless Config.MetricsListen moved it.
func (s *Server) MetricsAddr() net.Addr {
	if s.metricsLn != nil {
		return s.metricsLn.Addr()
	}
	return s.ln.Addr()
}

// UDPAddr is the ICE UDP address, valid after Start.
func (s *Server) UDPAddr() net.Addr { return s.udp.LocalAddr() }

// serveHealth answers /healthz: "ok", or 503 "shutting down" once
// Shutdown has begun. A node of a cluster that cannot reach NATS answers
// 200 "degraded: <why>": it still serves its local members, and a NATS
// outage must not take every node out of a load balancer at once; a
// balancer that should prefer the nodes in the cluster matches the body.
func (s *Server) serveHealth(w http.ResponseWriter, _ *http.Request) {
	if s.shuttingDown() {
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	if s.cluster != nil {
		if why := s.cluster.health(); why != "" {
			_, _ = w.Write([]byte("degraded: " + why + "\n"))
			return
		}
	}
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
	ac, _ := r.Context().Value(admittedKey{}).(*admittedConn)
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	s.startLink(ws, r.RemoteAddr, ac)
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
	for _, h := range []*http.Server{s.http, s.metricsHTTP} {
		if h != nil {
			if err := h.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("http shutdown: %w", err))
			}
		}
	}
	s.cancel() // posts to app servers in flight end now
	if s.cluster != nil && s.cluster.nodes != nil {
		// Before the clients hear GoAway: the other nodes keep this
		// node's members for them to come back elsewhere, from now on;
		// what they sent before, the members have before they go. With
		// another node to move to, the members' reliable messages are
		// left to it from now on (see member.relay); a node alone in its
		// cluster goes on relaying them until its members go.
		if s.cluster.nodes.count() > 0 {
			s.leaving.Store(true)
		}
		s.cluster.nodes.close(true)
		s.settleMoving(ctx)
	}
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
	s.refusing.Wait() // no more once Serve has returned; each ends within refuseTimeout
	if s.cluster != nil {
		// Last: whatever the sessions' ends published goes out first.
		if err := s.cluster.drain(ctx); err != nil {
			errs = append(errs, err)
		}
	}
	s.log.Info("stopped")
	return errors.Join(errs...)
}

// errKilled ends the sessions of a killed server.
var errKilled = errors.New("server killed")

// Kill stops the server as a crash would, for tests of what the clients
// and the other nodes of a cluster do then. Nobody is told anything: the
// UDP socket closes first (no DTLS or SCTP goodbye reaches a client), then
// the listeners, the NATS connection (its socket cut, nothing buffered
// flushed, no reconnect) and every WebSocket (no close frame, no GoAway).
// Only then do the sessions end, and their ends are silent: no leave, no
// result, no ack goes out, to a client or to NATS. All the state is
// dropped, every PeerConnection is closed, and Kill returns once every
// goroutine of the server has ended. Clients see their connections drop
// and reconnect; a server started on the same address later knows none of
// their sessions. Kill after Shutdown or Kill does nothing.
func (s *Server) Kill() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return nil
	}
	s.closing, s.killed = true, true
	sessions := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	s.mu.Unlock()

	var errs []error
	if s.mux != nil {
		if err := s.mux.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close UDP mux: %w", err))
		}
	}
	for _, h := range []*http.Server{s.http, s.metricsHTTP} {
		if h != nil {
			_ = h.Close() // the listeners and the plain HTTP connections; upgraded ones are below
		}
	}
	if s.cluster != nil {
		if s.cluster.nodes != nil {
			s.cluster.nodes.close(false)
		}
		s.cluster.kill()
	}
	// Detached first, all of them, so that no session's end (in a link's
	// onClose, once its socket is cut) reaches another client whose
	// socket is not cut yet.
	links := make([]*link, 0, len(sessions))
	var detached []*session
	for _, ss := range sessions {
		ss.mu.Lock()
		ss.out.Detach()
		if ss.link != nil {
			links = append(links, ss.link)
		} else {
			detached = append(detached, ss)
		}
		ss.mu.Unlock()
	}
	for _, lk := range links {
		lk.conn.Abort() // its session ends in onClose
	}
	s.cancel()
	for _, ss := range detached {
		ss.end(errKilled)
	}
	drained := make(chan struct{})
	go func() { s.wg.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(s.cfg.DrainTimeout):
		errs = append(errs, fmt.Errorf("kill: sessions still running after %v", s.cfg.DrainTimeout))
	}
	if s.ln != nil {
		<-s.served
	}
	s.refusing.Wait()
	s.log.Info("killed")
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
		if s.cluster != nil {
			r.remote = newRemoteRoom(r, s.cluster)
			r.remote.open()
		}
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
		if r.remote != nil {
			s.cluster.goBackground(r.remote.close) // takes r.mu, which is never taken under s.mu
		}
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
