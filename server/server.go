// Package server is the Parley relay server as a library: embed it in a Go
// program, or run it as parleyd. A Server accepts signaling WebSockets at
// /rtc, serves /healthz and Prometheus /metrics on the same TCP address
// (or /metrics on Config.MetricsListen), and carries every room's WebRTC
// traffic on one UDP port.
//
//	srv, err := server.New(server.Config{Apps: map[string]string{appID: appKey}})
//	if err != nil { ... }
//	if err := srv.Start(); err != nil { ... }
//	defer srv.Shutdown(context.Background())
//	// clients use srv.URL()
package server

import (
	"context"
	"net"
	"time"

	"go.uber.org/zap"

	iserver "github.com/parleyhq/parley/internal/server"
)

// Config configures a Server. Zero fields take the default their comment
// gives; New checks the rest.
type Config struct {
	// Listen is the TCP host:port for /rtc, /healthz and /metrics. The ICE
	// UDP port is bound on the same host. A request's headers must arrive
	// within 5 s of the connection (or of the previous request on it), the
	// whole request within 10 s; an idle kept-alive connection is closed
	// after 60 s. A WebSocket, once upgraded, has its own keepalive
	// instead (PingInterval). Default: "127.0.0.1:7880".
	Listen string
	// MetricsListen, when set, is another TCP host:port that serves
	// /metrics, and the listen address then answers 404 there: to keep
	// the metrics off the address clients reach, such as
	// "127.0.0.1:9090". Default: "", /metrics on Listen.
	MetricsListen string
	// UDPPort is the one UDP port all WebRTC traffic uses (pion's ICE UDP
	// mux). Default: 0, an ephemeral port (parleyd defaults to 7882).
	UDPPort int
	// Apps maps each AppID (24 characters) to its AppKey, the secret tokens
	// are signed with. Required.
	Apps map[string]string
	// Logger receives the server's structured logs. Default: none.
	Logger *zap.Logger
	// LoopbackOnly restricts ICE to loopback host candidates even when
	// Listen is not a loopback address. A loopback Listen implies it.
	// Default: false.
	LoopbackOnly bool
	// AuthTimeout closes a connection that has not joined a room in time.
	// Default: 10s.
	AuthTimeout time.Duration
	// JoinTimeout removes a member whose session's transport (its one
	// PeerConnection) has not opened in time after its join was answered.
	// Default: 15s.
	JoinTimeout time.Duration
	// PingInterval is how often the server pings each signaling connection;
	// a connection silent for three intervals is closed. Default: 10s.
	PingInterval time.Duration
	// DrainTimeout bounds Shutdown. Default: 10s.
	DrainTimeout time.Duration
	// Clock is the time tokens are checked against and their expiry is
	// timed by. Default: the wall clock. Tests pass a fake
	// (parleytest.Clock) to move time on without waiting.
	Clock Clock
	// MemberQueue bounds, in bytes, what the relay holds for one member's
	// data channel. Past it, unreliable messages to the member are dropped
	// (the sender gets NoRelayPath) and a member whose reliable backlog
	// overflows is disconnected as a slow consumer (the others see Dropped,
	// the senders of its unacknowledged messages get NoReceiver).
	// Default: 8 MiB.
	MemberQueue int
	// Quotas are the rate limits; over a quota the sender gets ExceedQPS and
	// nothing is relayed. Default: all zero, no limits.
	Quotas Quotas
	// ServerMessageURLPrefixes are the URLs server messages may be posted
	// to: SetServerParams is refused (E2BSSendFailed) for a URL that starts
	// with none of them. A relay must not become a way to reach internal
	// addresses, so the feature is off until an operator lists a prefix.
	// Default: none.
	ServerMessageURLPrefixes []string
	// ServerMessageTimeout bounds one post to the application server; past
	// it the message fails with E2BSSendFailed. Default: 5s.
	ServerMessageTimeout time.Duration

	// AllowedOrigins are the web origins whose browsers may connect; "*"
	// allows any. A request with no Origin header (a program, not a
	// browser) always may, and so may a page this server served itself
	// (its Origin names the host the request went to: /demo/, or your
	// page behind the same host). Default: none, so cross-site pages
	// cannot open connections in their visitors' names.
	AllowedOrigins []string
	// MaxConnsPerAddress caps the TCP connections open from one remote IP
	// address to Listen, counted from their accept, whatever their request
	// (one whose headers have not arrived yet counts too); past it a
	// connection is answered 429 and closed without its request being
	// read. Default: 256.
	MaxConnsPerAddress int
	// MaxUnauthenticated caps the TCP connections to Listen that have not
	// yet joined a room or logged in, counted from their accept (plain
	// HTTP requests such as /healthz count while their connection is
	// open); past it a connection is answered 429 and closed. Until it
	// authenticates, a connection may send frames of at most 16 KiB, and
	// the frames the server keeps for it unacknowledged may add up to
	// 8 KiB (past that its session ends). Default: 1024.
	MaxUnauthenticated int
	// MaxFramesPerSecond caps the frames one connection may send, with a
	// burst of twice as many; past it the connection is closed (1008).
	// Default: 5000.
	MaxFramesPerSecond int
	// GracePeriod is how long a session outlives its connection: a client
	// that reconnects within it resumes the session and loses nothing, and
	// nobody else notices; after it, its rooms see it leave (Dropped) and
	// its login ends. Default: 20s.
	GracePeriod time.Duration
	// TokenWarning is how long before a member's room token expires it is
	// told (OnTokenWillExpire); at expiry without UpdateToken it is removed
	// (-1009) and the others see it leave (Dropped). Default: 30s.
	TokenWarning time.Duration

	// NATS joins the node to a cluster: the URL of the NATS server the
	// nodes share, e.g. "nats://127.0.0.1:4222", or several of one NATS
	// cluster, comma-separated. The node names itself to NATS as
	// "parleyd <NodeID>" and reconnects for as long as it runs: a node
	// that cannot reach NATS, at Start or later, keeps serving its local
	// members, and /healthz says "degraded" until NATS is back (the
	// metric parley_nats_connected is 0 meanwhile). Default: "", a single
	// node that needs no NATS.
	NATS string
	// NodeID names the node in the cluster: 1 to 64 characters of a-z A-Z
	// 0-9 _ -, unique among the nodes. Default: a random ID.
	NodeID string
	// NodeHeartbeat is how often a node of a cluster tells the others it is
	// alive; a node silent for three of them is dead to the others (its
	// members leave as Dropped). Default: 1 s.
	NodeHeartbeat time.Duration
}

// Clock tells the time and runs functions later; the server's token
// timers use it.
type Clock interface {
	Now() time.Time
	// AfterFunc runs f in its own goroutine after d; stop cancels it and
	// reports whether it did so before f started.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// Quotas are per-second rate limits; zero is unlimited. ByteRTC's
// production values are 100 user messages, 65 broadcasts and 20 server
// messages per user, and 100 broadcasts per room. A user is an app and a
// user ID: all the Engines of one user spend from the same buckets. Each
// is a token bucket of n per second with a burst of n, refilled by
// Config.Clock.
type Quotas struct {
	// UserMessagesPerSecond limits one user's user messages, in rooms and
	// outside together.
	UserMessagesPerSecond int
	// BroadcastsPerSecond limits one user's room broadcasts.
	BroadcastsPerSecond int
	// ServerMessagesPerSecond limits one user's messages to the app server.
	ServerMessagesPerSecond int
	// RoomBroadcastsPerSecond limits the broadcasts of one room, all
	// members together.
	RoomBroadcastsPerSecond int
}

// Server is a relay server.
type Server struct {
	s *iserver.Server
}

// New checks cfg and returns a server that is not yet listening.
func New(cfg Config) (*Server, error) {
	c := iserver.Config{
		Listen:        cfg.Listen,
		MetricsListen: cfg.MetricsListen,
		UDPPort:       cfg.UDPPort,
		Apps:          cfg.Apps,
		Logger:        cfg.Logger,
		LoopbackOnly:  cfg.LoopbackOnly,
		AuthTimeout:   cfg.AuthTimeout,
		JoinTimeout:   cfg.JoinTimeout,
		PingInterval:  cfg.PingInterval,
		DrainTimeout:  cfg.DrainTimeout,
		MemberQueue:   cfg.MemberQueue,
		Quotas:        iserver.Quotas(cfg.Quotas),

		ServerMessageURLPrefixes: cfg.ServerMessageURLPrefixes,
		ServerMessageTimeout:     cfg.ServerMessageTimeout,

		AllowedOrigins:     cfg.AllowedOrigins,
		MaxConnsPerAddress: cfg.MaxConnsPerAddress,
		MaxUnauthenticated: cfg.MaxUnauthenticated,
		MaxFramesPerSecond: cfg.MaxFramesPerSecond,
		GracePeriod:        cfg.GracePeriod,
		TokenWarning:       cfg.TokenWarning,

		NATS:          cfg.NATS,
		NodeID:        cfg.NodeID,
		NodeHeartbeat: cfg.NodeHeartbeat,
	}
	if cfg.Clock != nil {
		c.Clock = cfg.Clock
	}
	s, err := iserver.New(c)
	if err != nil {
		return nil, err
	}
	return &Server{s: s}, nil
}

// Start binds the listen address and the UDP port and serves in the
// background.
func (s *Server) Start() error { return s.s.Start() }

// URL is the signaling URL clients put in EngineConfig.ServerURL, e.g.
// "ws://127.0.0.1:7880/rtc". Valid after Start.
func (s *Server) URL() string { return s.s.URL() }

// Addr is the bound TCP address. Valid after Start.
func (s *Server) Addr() net.Addr { return s.s.Addr() }

// MetricsAddr is the bound TCP address of /metrics: Addr, unless
// Config.MetricsListen moved it. Valid after Start.
func (s *Server) MetricsAddr() net.Addr { return s.s.MetricsAddr() }

// UDPAddr is the bound ICE UDP address. Valid after Start.
func (s *Server) UDPAddr() net.Addr { return s.s.UDPAddr() }

// Shutdown tells every connection the server is going away (GoAway),
// closes it and ends its session, and waits for them, until ctx is done or
// Config.DrainTimeout has passed. Clients reconnect: to this server when it
// is back (their rooms rejoin and their logins log in again), or to
// another at the same address.
func (s *Server) Shutdown(ctx context.Context) error { return s.s.Shutdown(ctx) }

// Kill stops the server as a crash would, for tests: every connection is
// cut at once, with no GoAway, no close frame and no DTLS or SCTP goodbye;
// nobody, client or other node of the cluster, is told that anyone left;
// every session, room and login is dropped. Clients see their connection
// drop and reconnect, and a server started on the same address later
// knows none of their sessions, as after a crash. It returns once all the
// server's goroutines have ended. Kill after Shutdown or Kill does
// nothing.
func (s *Server) Kill() error { return s.s.Kill() }
