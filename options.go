package parley

import (
	"time"

	"go.uber.org/zap"
)

// Option sets a Go-only knob of an Engine, in the manner of pion's
// SettingEngine. The ByteRTC-shaped settings are in EngineConfig.
type Option func(*options)

// options are an Engine's Go-only settings; NewEngine fills in the
// defaults, and they do not change afterwards.
type options struct {
	logger         *zap.Logger // nil: no logging
	iceServers     []string
	loopbackOnly   bool
	messageTimeout time.Duration
	joinTimeout    time.Duration // a join's try, JoinRoom or rejoin, to state 0; tests shorten it
	serverURLs     []string      // more nodes to move to (WithServerURLs)
	signalQueue    int           // the signaling connection's send queue; 0: signal's default. Tests shorten it
	idleTransport  time.Duration // how long the PeerConnection outlives the last room; 0: until Close
}

// defaultMessageTimeout is WithMessageTimeout's default.
const defaultMessageTimeout = 10 * time.Second

// defaultIdleTransport is WithIdleTransportTimeout's default.
const defaultIdleTransport = 30 * time.Second

// newOptions applies opts over the defaults.
func newOptions(opts []Option) options {
	o := options{messageTimeout: defaultMessageTimeout, joinTimeout: defaultJoinTimeout, idleTransport: defaultIdleTransport}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// WithLogger sends the Engine's logs, pion's included, to l. Why a join
// or a login failed (the server's reason, or the dial error) is logged at
// Warn.
// Default: no logging at all.
func WithLogger(l *zap.Logger) Option { return func(o *options) { o.logger = l } }

// WithICEServers sets the STUN/TURN URLs used to gather candidates.
// Default: none (host candidates only).
func WithICEServers(urls ...string) Option {
	return func(o *options) { o.iceServers = append([]string(nil), urls...) }
}

// WithLoopbackOnly restricts ICE to 127.0.0.1: interface "lo", loopback
// candidates, no mDNS. For tests and single-host setups.
// Default: off (every interface's host candidates).
func WithLoopbackOnly() Option { return func(o *options) { o.loopbackOnly = true } }

// WithServerURLs gives the Engine more signaling URLs of the same service,
// other nodes of a cluster, beside EngineConfig.ServerURL: when a connect
// or a reconnect to its node fails, the Engine tries the next, round
// robin. On a node that does not have its session, it starts a new one:
// its rooms join again (JoinTypeReconnected) and its login logs in again,
// by themselves, as after any session loss. Each URL must be ws:// or
// wss://, or NewEngine returns ErrInvalidArgument.
// Default: EngineConfig.ServerURL only.
func WithServerURLs(urls ...string) Option {
	return func(o *options) { o.serverURLs = append(o.serverURLs, urls...) }
}

// WithMessageTimeout sets how long a send may wait for its result before
// it reports Timeout. Zero or negative keeps the default.
// Default: 10s.
func WithMessageTimeout(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.messageTimeout = d
		}
	}
}

// WithIdleTransportTimeout sets how long the Engine keeps its
// PeerConnection to the server once no room uses it (every room left,
// lost or closed). A join within that time is one signaling round trip;
// after it the PeerConnection closes, at both ends, and the next join sets
// up a new one first (what the first join of an Engine costs). A login
// does not need it: messages outside rooms go over the signaling
// connection. Negative keeps it until Close; zero keeps the default.
// Default: 30s.
func WithIdleTransportTimeout(d time.Duration) Option {
	return func(o *options) {
		switch {
		case d < 0:
			o.idleTransport = 0
		case d > 0:
			o.idleTransport = d
		}
	}
}
