package parleyd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/parleyhq/parley/internal/bytesize"
	"github.com/parleyhq/parley/internal/devapp"
	"github.com/parleyhq/parley/server"
)

// Defaults of `parleyd serve`.
const (
	DefaultListen          = "127.0.0.1:7880"
	DefaultUDPPort         = 7882
	DefaultLogLevel        = "info"
	DefaultShutdownTimeout = 10 * time.Second
)

// The development credentials: `parleyd serve` uses them when no app is
// configured, and only on a loopback address; `parleyd token` defaults to
// them so that its tokens work against that server.
const (
	DevAppID  = devapp.ID
	DevAppKey = devapp.Key
)

// Config is the configuration of `parleyd serve`: the YAML file's keys,
// which the command-line flags override. cmd/parleyd/parleyd.sample.yaml
// documents every key.
type Config struct {
	Listen   string `yaml:"listen"`
	UDPPort  int    `yaml:"udp_port"`
	Apps     []App  `yaml:"apps"`
	LogLevel string `yaml:"log_level"`

	// MetricsListen, when set, moves /metrics off Listen to this
	// host:port.
	MetricsListen string `yaml:"metrics_listen"`

	// Zero durations take the server's defaults.
	AuthTimeout  Duration `yaml:"auth_timeout"`
	JoinTimeout  Duration `yaml:"join_timeout"`
	PingInterval Duration `yaml:"ping_interval"`
	DrainTimeout Duration `yaml:"drain_timeout"`

	// ServerMessageURLPrefixes are the URLs server messages may be posted
	// to; none (the default) turns server messages off.
	ServerMessageURLPrefixes []string `yaml:"server_message_url_prefixes"`
	// ServerMessageTimeout bounds one post; zero is the server's default.
	ServerMessageTimeout Duration `yaml:"server_message_timeout"`

	// GracePeriod and TokenWarning (server.Config); zero takes the
	// server's default.
	GracePeriod  Duration `yaml:"grace_period"`
	TokenWarning Duration `yaml:"token_warning"`

	// Connection limits (server.Config); zero takes the server's default.
	AllowedOrigins     []string `yaml:"allowed_origins"`
	MaxConnsPerAddress int      `yaml:"max_conns_per_address"`
	MaxUnauthenticated int      `yaml:"max_unauthenticated"`
	MaxFramesPerSecond int      `yaml:"max_frames_per_second"`

	// MemberQueueBytes bounds what the relay holds for one member's data
	// channel; zero takes the server's default (8 MiB).
	MemberQueueBytes int `yaml:"member_queue_bytes"`

	Quotas Quotas `yaml:"quotas"`

	// GCPercent is the garbage collector's GOGC for parleyd; zero takes
	// DefaultGCPercent. GOGC in the environment overrides both (gc.go).
	GCPercent int `yaml:"gc_percent"`
	// MemoryLimit is the collector's soft memory limit, as GOMEMLIMIT
	// writes it ("4GiB"); empty: 80% of the cgroup's memory limit if there
	// is one, else none. GOMEMLIMIT in the environment overrides both.
	MemoryLimit string `yaml:"memory_limit"`

	// NATS joins the server to a cluster (server.Config.NATS): a NATS
	// URL, or several comma-separated. Empty: a single node.
	NATS string `yaml:"nats"`
	// NodeID names the node in its cluster; empty: a random ID.
	NodeID string `yaml:"node_id"`
	// NodeHeartbeat (server.Config): how often the node tells the others
	// it is alive; zero takes the server's default.
	NodeHeartbeat Duration `yaml:"node_heartbeat"`
}

// App is one application the server accepts tokens of.
type App struct {
	ID  string `yaml:"id"`
	Key string `yaml:"key"`
}

// Quotas are the per-user and per-room rate limits, in messages per second;
// zero is unlimited (server.Quotas).
type Quotas struct {
	UserMessagesPerSecond   int `yaml:"user_messages_per_second"`
	BroadcastsPerSecond     int `yaml:"broadcasts_per_second"`
	ServerMessagesPerSecond int `yaml:"server_messages_per_second"`
	RoomBroadcastsPerSecond int `yaml:"room_broadcasts_per_second"`
}

func (q Quotas) set() bool { return q != Quotas{} }

// Duration is a time.Duration written in YAML as a Go duration string:
// "500ms", "10s", "1m30s"; 0 and null are zero.
type Duration time.Duration

func (d Duration) String() string { return time.Duration(d).String() }

// UnmarshalYAML implements yaml.NodeUnmarshaler: unlike the decoder's own
// time.Duration support, its errors carry the key and the line.
func (d *Duration) UnmarshalYAML(node ast.Node) error {
	var s string
	switch n := node.(type) {
	case *ast.NullNode:
		*d = 0
		return nil
	case *ast.StringNode:
		s = n.Value
	case *ast.IntegerNode: // 0 is a valid duration; 10 lacks its unit
		s = n.GetToken().Value
	default:
		return durationError(node, fmt.Sprintf("%s is not a duration", node.Type()))
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return durationError(node, err.Error())
	}
	*d = Duration(v)
	return nil
}

func durationError(node ast.Node, msg string) error {
	key := strings.TrimPrefix(node.GetPath(), "$.")
	return &yaml.SyntaxError{
		Message: fmt.Sprintf(`%s: %s (want a Go duration such as "10s")`, key, msg),
		Token:   node.GetToken(),
	}
}

// defaultConfig is the configuration with neither file nor flags.
func defaultConfig() Config {
	return Config{Listen: DefaultListen, UDPPort: DefaultUDPPort, LogLevel: DefaultLogLevel}
}

// loadFile decodes the YAML file at path over cfg: keys the file does not
// name keep their value. Unknown keys are an error that gives their line.
func loadFile(path string, cfg *Config) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.UnmarshalWithOptions(b, cfg, yaml.Strict()); err != nil {
		// FormatError adds the offending lines of the file under the message.
		return fmt.Errorf("%s: %s", path, strings.TrimRight(yaml.FormatError(err, false, true), "\n"))
	}
	return nil
}

// check validates what server.New does not.
func (c Config) check() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen %q: %w", c.Listen, err))
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			errs = append(errs, fmt.Errorf("metrics_listen %q: %w", c.MetricsListen, err))
		}
	}
	if c.UDPPort < 0 || c.UDPPort > 65535 {
		errs = append(errs, fmt.Errorf("udp_port %d out of range 0-65535", c.UDPPort))
	}
	if _, err := zapcore.ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("log_level: %w", err))
	}
	seen := make(map[string]bool, len(c.Apps))
	for i, a := range c.Apps {
		switch {
		case len(a.ID) != 24:
			errs = append(errs, fmt.Errorf("apps[%d]: id %q is %d characters, want 24", i, a.ID, len(a.ID)))
		case a.Key == "":
			errs = append(errs, fmt.Errorf("apps[%d]: id %q has an empty key", i, a.ID))
		case seen[a.ID]:
			errs = append(errs, fmt.Errorf("apps[%d]: id %q appears twice", i, a.ID))
		}
		seen[a.ID] = true
	}
	for _, d := range []struct {
		name string
		v    Duration
	}{
		{"auth_timeout", c.AuthTimeout},
		{"join_timeout", c.JoinTimeout},
		{"ping_interval", c.PingInterval},
		{"drain_timeout", c.DrainTimeout},
		{"server_message_timeout", c.ServerMessageTimeout},
		{"grace_period", c.GracePeriod},
		{"token_warning", c.TokenWarning},
		{"node_heartbeat", c.NodeHeartbeat},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %v is negative", d.name, d.v))
		}
	}
	q := c.Quotas
	if q.UserMessagesPerSecond < 0 || q.BroadcastsPerSecond < 0 ||
		q.ServerMessagesPerSecond < 0 || q.RoomBroadcastsPerSecond < 0 {
		errs = append(errs, errors.New("quotas: negative rate (0 is unlimited)"))
	}
	if c.MemberQueueBytes < 0 {
		errs = append(errs, errors.New("member_queue_bytes is negative"))
	}
	if c.MemoryLimit != "" {
		if _, err := bytesize.Parse(c.MemoryLimit); err != nil {
			errs = append(errs, fmt.Errorf("memory_limit %q: %w", c.MemoryLimit, err))
		}
	}
	if c.GCPercent < 0 {
		errs = append(errs, errors.New("gc_percent is negative (0 is the default; to turn the collector off, set GOGC=off with a GOMEMLIMIT in the environment)"))
	}
	if c.MaxConnsPerAddress < 0 || c.MaxUnauthenticated < 0 || c.MaxFramesPerSecond < 0 {
		errs = append(errs, errors.New("connection limits: negative value (0 is the default)"))
	}
	return errors.Join(errs...)
}

// usesDevCredentials reports whether an app has the development AppID or key.
func (c Config) usesDevCredentials() bool {
	for _, a := range c.Apps {
		if a.ID == DevAppID || a.Key == DevAppKey {
			return true
		}
	}
	return false
}

// serverConfig is c for server.New.
func (c Config) serverConfig(log *zap.Logger) server.Config {
	apps := make(map[string]string, len(c.Apps))
	for _, a := range c.Apps {
		apps[a.ID] = a.Key
	}
	return server.Config{
		Listen:        c.Listen,
		MetricsListen: c.MetricsListen,
		UDPPort:       c.UDPPort,
		Apps:          apps,
		Logger:        log,
		AuthTimeout:   time.Duration(c.AuthTimeout),
		JoinTimeout:   time.Duration(c.JoinTimeout),
		PingInterval:  time.Duration(c.PingInterval),
		DrainTimeout:  time.Duration(c.DrainTimeout),
		MemberQueue:   c.MemberQueueBytes,

		ServerMessageURLPrefixes: c.ServerMessageURLPrefixes,
		ServerMessageTimeout:     time.Duration(c.ServerMessageTimeout),

		AllowedOrigins:     c.AllowedOrigins,
		MaxConnsPerAddress: c.MaxConnsPerAddress,
		MaxUnauthenticated: c.MaxUnauthenticated,
		MaxFramesPerSecond: c.MaxFramesPerSecond,
		GracePeriod:        time.Duration(c.GracePeriod),
		TokenWarning:       time.Duration(c.TokenWarning),
		Quotas:             server.Quotas(c.Quotas),

		NATS:          c.NATS,
		NodeID:        c.NodeID,
		NodeHeartbeat: time.Duration(c.NodeHeartbeat),
	}
}

// shutdownTimeout bounds Shutdown: the drain timeout, 10s by default.
func (c Config) shutdownTimeout() time.Duration {
	if c.DrainTimeout > 0 {
		return time.Duration(c.DrainTimeout)
	}
	return DefaultShutdownTimeout
}

// isLoopback reports whether the host of a host:port listen address is a
// loopback address or "localhost". An empty host (all interfaces) is not.
func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// newLogger returns a zap production logger (JSON, sampled, stack traces
// from error level) writing to w at level.
func newLogger(w zapcore.WriteSyncer, level string) (*zap.Logger, error) {
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	core := zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()), zapcore.Lock(w), lvl)
	core = zapcore.NewSamplerWithOptions(core, time.Second, 100, 100) // zap.NewProductionConfig's sampling
	return zap.New(core, zap.AddCaller(), zap.AddStacktrace(zapcore.ErrorLevel), zap.ErrorOutput(zapcore.Lock(w))), nil
}
