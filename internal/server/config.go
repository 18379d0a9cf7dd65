// Package server is the relay server: sessions over signaling WebSockets,
// rooms of members, one PeerConnection per session for all its rooms, and the relay between
// their data channels. The public package server wraps it; parleyd and
// parleytest run it.
package server

import (
	"time"

	"go.uber.org/zap"

	"github.com/parleyhq/parley/internal/clock"
	"github.com/parleyhq/parley/internal/transport"
)

// Config holds the public server.Config's fields (server.New copies them;
// their documentation is there) and ICENet, which only tests set.
type Config struct {
	Listen        string
	MetricsListen string
	UDPPort       int
	Apps          map[string]string
	Logger        *zap.Logger
	LoopbackOnly  bool
	AuthTimeout   time.Duration
	JoinTimeout   time.Duration
	PingInterval  time.Duration
	DrainTimeout  time.Duration
	Clock         clock.Clock
	MemberQueue   int
	Quotas        Quotas

	ServerMessageURLPrefixes []string
	ServerMessageTimeout     time.Duration

	AllowedOrigins     []string
	MaxConnsPerAddress int
	MaxUnauthenticated int
	MaxFramesPerSecond int
	GracePeriod        time.Duration
	TokenWarning       time.Duration

	NATS          string // cluster.go
	NodeID        string
	NodeHeartbeat time.Duration // nodes.go

	// ICENet, when set, carries the WebRTC traffic instead of the host's
	// network: Start opens the ICE UDP port on its first IPv4 address that
	// is not loopback (Listen still binds the host's TCP). Tests in this
	// module pass a pion vnet to put packet loss between the ends; the
	// public Config has no such field. Nil: the host's network.
	ICENet transport.Net
}

// Quotas mirrors the public server.Quotas.
type Quotas struct {
	UserMessagesPerSecond   int
	BroadcastsPerSecond     int
	ServerMessagesPerSecond int
	RoomBroadcastsPerSecond int
}

// Defaults of the zero Config fields.
const (
	DefaultListen       = "127.0.0.1:7880"
	DefaultAuthTimeout  = 10 * time.Second
	DefaultJoinTimeout  = 15 * time.Second
	DefaultPingInterval = 10 * time.Second
	DefaultDrainTimeout = 10 * time.Second
	DefaultMemberQueue  = 8 << 20

	DefaultServerMessageTimeout = 5 * time.Second

	DefaultMaxConnsPerAddress = 256
	DefaultMaxUnauthenticated = 1024
	DefaultMaxFramesPerSecond = 5000
	DefaultGracePeriod        = 20 * time.Second
	DefaultNodeHeartbeat      = time.Second
	DefaultTokenWarning       = 30 * time.Second
)

func (c Config) withDefaults() Config {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.AuthTimeout <= 0 {
		c.AuthTimeout = DefaultAuthTimeout
	}
	if c.JoinTimeout <= 0 {
		c.JoinTimeout = DefaultJoinTimeout
	}
	if c.PingInterval <= 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = DefaultDrainTimeout
	}
	if c.GracePeriod <= 0 {
		c.GracePeriod = DefaultGracePeriod
	}
	if c.MaxConnsPerAddress <= 0 {
		c.MaxConnsPerAddress = DefaultMaxConnsPerAddress
	}
	if c.MaxUnauthenticated <= 0 {
		c.MaxUnauthenticated = DefaultMaxUnauthenticated
	}
	if c.MaxFramesPerSecond <= 0 {
		c.MaxFramesPerSecond = DefaultMaxFramesPerSecond
	}
	if c.ServerMessageTimeout <= 0 {
		c.ServerMessageTimeout = DefaultServerMessageTimeout
	}
	if c.MemberQueue <= 0 {
		c.MemberQueue = DefaultMemberQueue
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.TokenWarning <= 0 {
		c.TokenWarning = DefaultTokenWarning
	}
	if c.Logger == nil {
		c.Logger = zap.NewNop()
	}
	if c.NodeID == "" {
		c.NodeID = newID()
	}
	if c.NodeHeartbeat <= 0 {
		c.NodeHeartbeat = DefaultNodeHeartbeat
	}
	return c
}
