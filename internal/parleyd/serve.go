package parleyd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/parleyhq/parley/server"
)

// serveOptions are the flags of serve.
type serveOptions struct {
	listen, metricsListen, appID, appKey, config, logLevel string
	pprofListen, nats, nodeID                              string
	udpPort                                                int
}

func serveFlags(output io.Writer) (*flag.FlagSet, *serveOptions) {
	o := new(serveOptions)
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&o.listen, "listen", DefaultListen, "TCP `host:port` of /rtc, /healthz and /metrics; UDP binds the same host")
	fs.StringVar(&o.metricsListen, "metrics-listen", "", "TCP `host:port` to serve /metrics on instead of the listen address, e.g. 127.0.0.1:9090")
	fs.StringVar(&o.pprofListen, "pprof-listen", "", "TCP `host:port` to serve Go's profiler (/debug/pprof/) on, e.g. 127.0.0.1:6060; off by default: keep it on a loopback or private address")
	fs.IntVar(&o.udpPort, "udp-port", DefaultUDPPort, "UDP `port` of all WebRTC traffic (0: any free port)")
	fs.StringVar(&o.appID, "app-id", "", "AppID (24 characters) to accept; replaces the file's apps")
	fs.StringVar(&o.appKey, "app-key", "", "AppKey that tokens of --app-id are signed with")
	fs.StringVar(&o.config, "config", "", "YAML configuration `file`, which flags override")
	fs.StringVar(&o.logLevel, "log-level", DefaultLogLevel, "log `level`: debug, info, warn or error")
	fs.StringVar(&o.nats, "nats", "", "join a cluster of nodes sharing the NATS server at `URL` (nats://host:4222; several comma-separated); without it, a single node that needs no NATS")
	fs.StringVar(&o.nodeID, "node-id", "", "this node's `ID` in its cluster: a-z A-Z 0-9 _ -, at most 64 (default: random)")
	fs.Usage = usageFunc(fs, "parleyd serve [flags]",
		`Serves signaling at /rtc, /healthz and Prometheus /metrics on the listen
address (or /metrics on --metrics-listen), and WebRTC on the UDP port.
With neither --app-id nor --config it runs a development server with
fixed, printed credentials, on a loopback address only. With --nats it is
one node of a cluster: it serves its own clients even while NATS is
unreachable, and /healthz then says "degraded". SIGINT or SIGTERM drains
the server and exits 0.`)
	return fs, o
}

// serveConfig builds serve's configuration from its command line: the
// defaults, then the --config file, then the flags given. dev reports that
// the development credentials were filled in because no app was given.
func serveConfig(args []string, stderr io.Writer) (cfg Config, dev bool, err error) {
	fs, o := serveFlags(stderr)
	set, err := parse(fs, args)
	if err != nil {
		return Config{}, false, err
	}
	if set["app-id"] != set["app-key"] {
		return Config{}, false, fmt.Errorf("%w: --app-id and --app-key go together", ErrUsage)
	}
	cfg = defaultConfig()
	if o.config != "" {
		if err := loadFile(o.config, &cfg); err != nil {
			return Config{}, false, err
		}
	}
	if set["listen"] {
		cfg.Listen = o.listen
	}
	if set["metrics-listen"] {
		cfg.MetricsListen = o.metricsListen
	}
	if set["udp-port"] {
		cfg.UDPPort = o.udpPort
	}
	if set["log-level"] {
		cfg.LogLevel = o.logLevel
	}
	if set["nats"] {
		cfg.NATS = o.nats
	}
	if set["node-id"] {
		cfg.NodeID = o.nodeID
	}
	if set["app-id"] {
		cfg.Apps = []App{{ID: o.appID, Key: o.appKey}}
	}
	if len(cfg.Apps) == 0 {
		if o.config != "" {
			return Config{}, false, fmt.Errorf("%s configures no apps; add apps or pass --app-id and --app-key", o.config)
		}
		dev = true
		cfg.Apps = []App{{ID: DevAppID, Key: DevAppKey}}
	}
	if err := cfg.check(); err != nil {
		return Config{}, false, err
	}
	// The development credentials are public: anyone who can reach the
	// server could join any room with them.
	if cfg.usesDevCredentials() && !isLoopback(cfg.Listen) {
		return Config{}, false, fmt.Errorf("refusing the development credentials on %s, which is not a loopback address; pass --app-id and --app-key", cfg.Listen)
	}
	return cfg, dev, nil
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, dev, err := serveConfig(args, stderr)
	if err != nil {
		return err
	}
	fs, o := serveFlags(io.Discard)
	_ = fs.Parse(args) // serveConfig has parsed them without error
	log, err := newLogger(zapcore.AddSync(stderr), cfg.LogLevel)
	if err != nil {
		return err
	}
	defer log.Sync() //nolint:errcheck // nothing to do about a failed flush of stderr
	if dev {
		log.Warn("serving with the development credentials", zap.String("app_id", DevAppID))
	}
	defer setGC(cfg, gcSettings{getenv: os.Getenv, root: os.DirFS("/")}, log)()
	if q := cfg.Quotas; q.set() {
		log.Info("quotas",
			zap.Int("user_messages_per_second", q.UserMessagesPerSecond),
			zap.Int("broadcasts_per_second", q.BroadcastsPerSecond),
			zap.Int("server_messages_per_second", q.ServerMessagesPerSecond),
			zap.Int("room_broadcasts_per_second", q.RoomBroadcastsPerSecond))
	}

	srv, err := server.New(cfg.serverConfig(log))
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	var prof net.Addr
	if o.pprofListen != "" {
		var hs *http.Server
		if hs, prof, err = servePprof(o.pprofListen); err != nil {
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.shutdownTimeout())
			defer cancel()
			return errors.Join(fmt.Errorf("pprof listen: %w", err), srv.Shutdown(sctx))
		}
		defer hs.Close()
	}
	// Written once the sockets are bound, so that the URL has the real
	// port when --listen asks for port 0; scripts and tests read it.
	if dev {
		printDevBanner(stdout, srv, cfg.MetricsListen != "")
		if prof != nil {
			fmt.Fprintf(stdout, "  pprof http://%s/debug/pprof/\n\n", prof)
		}
	} else {
		fmt.Fprintf(stdout, "parleyd serving %s, WebRTC on UDP %s", srv.URL(), srv.UDPAddr())
		if cfg.MetricsListen != "" {
			fmt.Fprintf(stdout, ", metrics at http://%s/metrics", srv.MetricsAddr())
		}
		if prof != nil {
			fmt.Fprintf(stdout, ", pprof at http://%s/debug/pprof/", prof)
		}
		fmt.Fprintln(stdout)
	}

	<-ctx.Done()
	log.Info("shutting down")
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.shutdownTimeout())
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Error("shutdown", zap.Error(err))
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// servePprof serves Go's profiler on its own listener at addr, apart from
// the public listen address: profiles show the server's internals, so an
// operator puts it where only they reach it. It runs until the returned
// server is closed.
func servePprof(addr string) (*http.Server, net.Addr, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go hs.Serve(ln) //nolint:errcheck // ends with Close
	return hs, ln.Addr(), nil
}

func printDevBanner(w io.Writer, srv *server.Server, metrics bool) {
	m := ""
	if metrics {
		m = fmt.Sprintf("\n  Metrics http://%s/metrics", srv.MetricsAddr())
	}
	fmt.Fprintf(w, `parleyd: development server; its credentials are public, do not use it in production.

  URL     %s
  UDP     %s%s
  AppID   %s
  AppKey  %s

Mint a token for user "alice" in room "demo":

  parleyd token --room demo --user alice

`, srv.URL(), srv.UDPAddr(), m, DevAppID, DevAppKey)
}
