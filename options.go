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
}

// defaultMessageTimeout is WithMessageTimeout's default.
const defaultMessageTimeout = 10 * time.Second

// newOptions applies opts over the defaults.
func newOptions(opts []Option) options {
	o := options{messageTimeout: defaultMessageTimeout, joinTimeout: defaultJoinTimeout}
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
