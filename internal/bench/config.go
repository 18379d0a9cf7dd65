package bench

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"time"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/internal/ids"
)

// Modes of a run.
const (
	ModeRooms = "rooms" // Members Engines in rooms of RoomSize, broadcasting
	ModeBot   = "bot"   // one Engine in Rooms rooms, one peer in each
)

// Bounds of the configuration: a typo must not start a million Engines.
const (
	MaxMembers  = 100_000
	MaxRate     = 1_000 // messages per second per room
	MaxDuration = 24 * time.Hour
)

// DefaultURL is the signaling URL of a local `parleyd serve`.
const DefaultURL = "ws://127.0.0.1:7880/rtc"

// The development credentials of `parleyd serve` (internal/parleyd's
// DevAppID and DevAppKey, which a test holds these to), copied so that the
// load tool does not link the server.
const (
	devAppID  = "parleydevparleydevparley"
	devAppKey = "parley-dev-key-not-secret"
)

// ErrConfig is wrapped by the errors of a configuration that cannot run.
var ErrConfig = errors.New("parley: bad bench configuration")

// Config is one run's configuration; the flags of `parley bench` set it.
type Config struct {
	Mode   string // ModeRooms or ModeBot
	URL    string // signaling URL
	AppID  string // 24 characters
	AppKey string

	Members  int // rooms mode: Engines, one member each
	RoomSize int // rooms mode: members per room (the last room may have fewer)
	Rooms    int // bot mode: rooms the bot joins, one peer in each
	// PeerRooms is, in bot mode, how many rooms one peer Engine sits in
	// (one user in each). 1: every peer is an Engine of its own.
	PeerRooms int

	Rate    float64 // messages per second per room
	Payload int     // bytes per message, at least headerSize

	Warmup   time.Duration // sending before the measurement starts
	Duration time.Duration // the measurement
	Drain    time.Duration // at most this long after it, for results and deliveries in flight

	JoinConcurrency int           // joins in flight at once
	JoinTimeout     time.Duration // one join's bound

	// GCBudget, in bytes, turns the load process's garbage collector off
	// until its heap reaches it (debug.SetMemoryLimit, GOGC off), for the
	// run, whatever GOGC and GOMEMLIMIT say; at least MinGCBudget. 0: the
	// collector as the environment set it.
	GCBudget int64
	// Pretouch, with a GCBudget, maps most of the budget into the process
	// before the joins (pretouch.go), so that the run's heap growth does
	// not page-fault. Default true.
	Pretouch bool

	MetricsURL string // the server's Prometheus /metrics; "" for none
	CPUProfile string // where to write the load process's CPU profile of the measurement; "" for none
	RoomPrefix string // room IDs are RoomPrefix-0, RoomPrefix-1, …; default: "bench-" and 6 random hex digits
	JSON       bool   // print the summary as JSON
	Quiet      bool   // no progress lines when stdout is not a terminal
}

// DefaultConfig is the configuration with no flags.
func DefaultConfig() Config {
	return Config{
		Mode:            ModeRooms,
		URL:             DefaultURL,
		AppID:           devAppID,
		AppKey:          devAppKey,
		Members:         100,
		RoomSize:        5,
		Rooms:           100,
		PeerRooms:       1,
		Rate:            10,
		Payload:         64,
		Warmup:          5 * time.Second,
		Duration:        30 * time.Second,
		Drain:           5 * time.Second,
		JoinConcurrency: 32,
		JoinTimeout:     30 * time.Second,
		Pretouch:        true,
	}
}

// Flags returns the flag set of `parley bench`, writing into cfg.
func Flags(cfg *Config, output io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&cfg.Mode, "mode", cfg.Mode, "`mode`: rooms (--members in rooms of --room-size, broadcasting) or bot (one Engine in --rooms rooms, a peer in each)")
	fs.StringVar(&cfg.URL, "url", cfg.URL, "server's signaling `URL`; a loopback host keeps ICE on loopback")
	fs.StringVar(&cfg.AppID, "app-id", cfg.AppID, "AppID tokens are minted for (24 characters)")
	fs.StringVar(&cfg.AppKey, "app-key", cfg.AppKey, "AppKey tokens are signed with")
	fs.IntVar(&cfg.Members, "members", cfg.Members, "rooms mode: members, one Engine each")
	fs.IntVar(&cfg.RoomSize, "room-size", cfg.RoomSize, "rooms mode: members per room")
	fs.IntVar(&cfg.Rooms, "rooms", cfg.Rooms, "bot mode: rooms the bot joins")
	fs.IntVar(&cfg.PeerRooms, "peer-rooms", cfg.PeerRooms, "bot mode: rooms per peer Engine (1: an Engine per peer)")
	fs.Float64Var(&cfg.Rate, "rate", cfg.Rate, "messages per second per room")
	fs.IntVar(&cfg.Payload, "payload", cfg.Payload, "message size in `bytes` (at least 25)")
	fs.DurationVar(&cfg.Warmup, "warmup", cfg.Warmup, "sending before the measurement starts")
	fs.DurationVar(&cfg.Duration, "duration", cfg.Duration, "length of the measurement")
	fs.DurationVar(&cfg.Drain, "drain", cfg.Drain, "longest wait after the measurement for results and messages in flight")
	fs.IntVar(&cfg.JoinConcurrency, "join-concurrency", cfg.JoinConcurrency, "joins in flight at once")
	fs.DurationVar(&cfg.JoinTimeout, "join-timeout", cfg.JoinTimeout, "longest wait for one join")
	fs.Var((*byteSize)(&cfg.GCBudget), "gc-budget", "load process's memory budget, e.g. 8GiB (`SIZE`: B, KiB, MiB, GiB or TiB, as in GOMEMLIMIT): it collects garbage only when its heap reaches it, keeping its own pauses out of the latencies; the cost: its RSS grows up to it. Overrides GOGC and GOMEMLIMIT (default: none, Go's collector as they set it)")
	fs.BoolVar(&cfg.Pretouch, "pretouch", cfg.Pretouch, "with --gc-budget, map 90% of the budget into the process before the joins, so that its heap's growth during the run does not page-fault (as the JVM's AlwaysPreTouch; it takes a second or more a GiB on a VM with costly page faults, and the RSS is the budget from the start); --pretouch=false: grow into it")
	fs.StringVar(&cfg.MetricsURL, "metrics", cfg.MetricsURL, "server's Prometheus `URL`, e.g. http://127.0.0.1:7880/metrics, for its CPU and memory")
	fs.StringVar(&cfg.CPUProfile, "cpuprofile", cfg.CPUProfile, "write the load process's CPU profile of the measurement to `file` (go tool pprof reads it): where the tool's own core goes")
	fs.StringVar(&cfg.RoomPrefix, "room-prefix", cfg.RoomPrefix, "room IDs' `prefix` (default: bench- and 6 random hex digits)")
	fs.BoolVar(&cfg.JSON, "json", cfg.JSON, "print the summary as JSON")
	fs.BoolVar(&cfg.Quiet, "quiet", cfg.Quiet, "no progress lines when stdout is not a terminal")
	return fs
}

// check validates cfg and fills in the room prefix.
func (c *Config) check() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, a...)...)
	}
	switch c.Mode {
	case ModeRooms:
		if c.Members < 2 || c.Members > MaxMembers {
			return bad("--members %d: want 2 to %d", c.Members, MaxMembers)
		}
		if c.RoomSize < 2 || c.RoomSize > c.Members {
			return bad("--room-size %d: want 2 to --members (%d)", c.RoomSize, c.Members)
		}
	case ModeBot:
		if c.Rooms < 1 || c.Rooms > MaxMembers/2 {
			return bad("--rooms %d: want 1 to %d", c.Rooms, MaxMembers/2)
		}
		if c.PeerRooms < 1 || c.PeerRooms > c.Rooms {
			return bad("--peer-rooms %d: want 1 to --rooms (%d)", c.PeerRooms, c.Rooms)
		}
	default:
		return bad("--mode %q: want %s or %s", c.Mode, ModeRooms, ModeBot)
	}
	switch {
	case !(c.Rate > 0 && c.Rate <= MaxRate):
		return bad("--rate %v: want more than 0, at most %d", c.Rate, MaxRate)
	case c.Payload < headerSize || c.Payload > parley.MaxMessageSize:
		return bad("--payload %d: want %d to %d bytes", c.Payload, headerSize, parley.MaxMessageSize)
	case c.Duration <= 0 || c.Duration > MaxDuration:
		return bad("--duration %v: want more than 0, at most %v", c.Duration, MaxDuration)
	case c.Warmup < 0 || c.Warmup > MaxDuration:
		return bad("--warmup %v: want 0 to %v", c.Warmup, MaxDuration)
	case c.Drain < 0 || c.Drain > time.Hour:
		return bad("--drain %v: want 0 to 1h", c.Drain)
	case c.JoinConcurrency < 1 || c.JoinConcurrency > 10_000:
		return bad("--join-concurrency %d: want 1 to 10000", c.JoinConcurrency)
	case c.JoinTimeout <= 0 || c.JoinTimeout > time.Hour:
		return bad("--join-timeout %v: want more than 0, at most 1h", c.JoinTimeout)
	case len(c.AppID) != 24:
		return bad("--app-id %q is %d characters, want 24", c.AppID, len(c.AppID))
	case c.AppKey == "":
		return bad("empty --app-key")
	}
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "ws" && u.Scheme != "wss") || u.Host == "" {
		return bad("--url %q: want ws://host:port/rtc or wss://…", c.URL)
	}
	if c.GCBudget != 0 {
		if err := checkGCBudget(c.GCBudget); err != nil {
			return bad("--gc-budget %v", err)
		}
	}
	if c.MetricsURL != "" {
		m, err := url.Parse(c.MetricsURL)
		if err != nil || (m.Scheme != "http" && m.Scheme != "https") || m.Host == "" {
			return bad("--metrics %q: want http://host:port/metrics", c.MetricsURL)
		}
	}
	if c.RoomPrefix == "" {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		c.RoomPrefix = "bench-" + hex.EncodeToString(b)
	}
	// The longest room ID is the prefix, "-" and up to 6 digits.
	if err := ids.Check("room ID", c.RoomPrefix+"-000000"); err != nil {
		return bad("--room-prefix %q: %v", c.RoomPrefix, err)
	}
	return nil
}

// loopback reports whether the URL's host is a loopback address, or
// "localhost".
func (c *Config) loopback() bool {
	u, err := url.Parse(c.URL)
	if err != nil {
		return false
	}
	host := u.Hostname()
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// engines is how many Engines the run starts.
func (c *Config) engines() int {
	if c.Mode == ModeBot {
		return 1 + (c.Rooms+c.PeerRooms-1)/c.PeerRooms
	}
	return c.Members
}
