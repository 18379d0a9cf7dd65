package transport

import (
	"fmt"
	"strings"
	"sync"

	"github.com/pion/logging"
	"go.uber.org/zap"
)

// newLoggerFactory routes pion's logs to l: pion's Info and below become
// Debug (pion is chatty at Info), Warn and Error keep their level, except
// the warnings every normal join and leave produces (routine), which
// become Debug. A nil l discards everything, so the library prints
// nothing by default.
func newLoggerFactory(l *zap.Logger) logging.LoggerFactory {
	if l == nil {
		l = zap.NewNop()
	}
	return &loggerFactory{l: l.Named("pion")}
}

// NewLogger returns a pion logger for scope that writes to l as NewAPI's
// does; a nil l discards everything. It is for pion objects made outside
// an API, such as the ICE UDP mux, whose nil logger would print to stderr.
func NewLogger(l *zap.Logger, scope string) logging.LeveledLogger {
	return newLoggerFactory(l).NewLogger(scope)
}

// loggerFactory makes one logger per scope and Debug setting, and hands it
// to every pion object of that scope: pion asks for a logger for each
// agent, candidate, connection, association and channel, some fifteen per
// PeerConnection, and a logger of its own each was a few small objects
// that lived, and that the garbage collector marked, as long as the
// PeerConnection (about 70 per member on a server). A logger holds no
// state of the object it logs for.
type loggerFactory struct {
	l *zap.Logger

	mu      sync.Mutex
	loggers map[loggerKey]logging.LeveledLogger // guarded by mu
}

type loggerKey struct {
	scope string
	debug bool
}

func (f *loggerFactory) NewLogger(scope string) logging.LeveledLogger {
	k := loggerKey{scope, f.l.Core().Enabled(zap.DebugLevel)}
	f.mu.Lock()
	defer f.mu.Unlock()
	if l, ok := f.loggers[k]; ok {
		return l
	}
	if f.loggers == nil {
		f.loggers = make(map[loggerKey]logging.LeveledLogger)
	}
	l := pionLogger{
		s:     f.l.WithLazy(zap.String("scope", scope)).Sugar(),
		scope: scope,
		debug: k.debug,
	}
	f.loggers[k] = l
	return l
}

// routineWarning is a warning (or error) pion logs on a normal join or
// leave: a packet that comes before its endpoint is set up or after it is
// closed. It is logged at Debug. A message of scope that starts with
// prefix and contains every one of contains is one.
type routineWarning struct {
	scope, prefix string
	contains      []string
}

// routine are the routine warnings, as seen with pion's logs on during a
// join and a leave over loopback (TestJoinLeaveLogsNoWarn).
var routine = []routineWarning{
	// DTLS packets that reach the mux before the DTLS endpoint exists:
	// queued and delivered once it does. (A full queue, "not adding to
	// queue", drops the packet and stays a warning.)
	{scope: "mux", prefix: "Warning: mux: no endpoint for packet starting with", contains: []string{", adding to queue"}},
	// The server's ICE agent pings before the offer's candidates are added.
	{scope: "ice", prefix: "Failed to ping without candidate pairs"},
	// A candidate on the server's shared UDP mux whose PeerConnection
	// closed: the mux closes its per-connection pipe.
	{scope: "ice", prefix: "Failed to read from candidate", contains: []string{"closed pipe"}},
	// A packet that reaches the server's UDP mux just after that pipe
	// closed: the client's last packets cross the close. (pion logs it as
	// an error.)
	{scope: "ice", prefix: "Failed to write packet", contains: []string{"closed pipe"}},
	// SCTP writes its last packets (ABORT, SHUTDOWN) after DTLS closed.
	{scope: "sctp", prefix: "[", contains: []string{"failed to write packets on netConn", "conn is closed"}},
	// The same when the server's DTLS connection was closed under it (the
	// session's PeerConnection closes as its session ends).
	{scope: "sctp", prefix: "[", contains: []string{"failed to write packets on netConn", "use of closed network connection"}},
}

// isRoutine reports whether msg, a warning of scope, is a routine one.
func isRoutine(scope, msg string) bool {
	for _, r := range routine {
		if r.scope != scope || !strings.HasPrefix(msg, r.prefix) {
			continue
		}
		all := true
		for _, c := range r.contains {
			if !strings.Contains(msg, c) {
				all = false
				break
			}
		}
		if all {
			return true
		}
	}
	return false
}

type pionLogger struct {
	s     *zap.SugaredLogger
	scope string
	// debug: the logger took Debug when pion made this one. pion traces
	// every SCTP packet; with Debug off (the usual case) they stop here,
	// before zap, which costed a busy server 3% of its CPU. A level raised
	// later applies to PeerConnections made after it.
	debug bool
}

func (p pionLogger) Trace(msg string) {
	if p.debug {
		p.s.Debug(msg)
	}
}

func (p pionLogger) Tracef(format string, args ...any) {
	if p.debug {
		p.s.Debugf(format, args...)
	}
}

func (p pionLogger) Debug(msg string) {
	if p.debug {
		p.s.Debug(msg)
	}
}

func (p pionLogger) Debugf(format string, args ...any) {
	if p.debug {
		p.s.Debugf(format, args...)
	}
}

func (p pionLogger) Info(msg string) {
	if p.debug {
		p.s.Debug(msg)
	}
}

func (p pionLogger) Infof(format string, args ...any) {
	if p.debug {
		p.s.Debugf(format, args...)
	}
}
func (p pionLogger) Error(msg string) {
	if isRoutine(p.scope, msg) {
		p.s.Debug(msg)
		return
	}
	p.s.Error(msg)
}

func (p pionLogger) Errorf(format string, args ...any) { p.Error(fmt.Sprintf(format, args...)) }

func (p pionLogger) Warn(msg string) {
	if isRoutine(p.scope, msg) {
		p.s.Debug(msg)
		return
	}
	p.s.Warn(msg)
}

func (p pionLogger) Warnf(format string, args ...any) {
	if !p.s.Desugar().Core().Enabled(zap.WarnLevel) {
		return // nothing would be logged: spare the formatting
	}
	p.Warn(fmt.Sprintf(format, args...))
}
