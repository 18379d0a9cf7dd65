package transport

import (
	"github.com/pion/logging"
	"go.uber.org/zap"
)

// newLoggerFactory routes pion's logs to l: pion's Info and below become
// Debug (pion is chatty at Info), Warn and Error keep their level. A nil l
// discards everything, so the library prints nothing by default.
func newLoggerFactory(l *zap.Logger) logging.LoggerFactory {
	if l == nil {
		l = zap.NewNop()
	}
	return loggerFactory{l.Named("pion")}
}

// NewLogger returns a pion logger for scope that writes to l as NewAPI's
// does; a nil l discards everything. It is for pion objects made outside
// an API, such as the ICE UDP mux, whose nil logger would print to stderr.
func NewLogger(l *zap.Logger, scope string) logging.LeveledLogger {
	return newLoggerFactory(l).NewLogger(scope)
}

type loggerFactory struct{ l *zap.Logger }

func (f loggerFactory) NewLogger(scope string) logging.LeveledLogger {
	return pionLogger{f.l.With(zap.String("scope", scope)).Sugar()}
}

type pionLogger struct{ s *zap.SugaredLogger }

func (p pionLogger) Trace(msg string)                  { p.s.Debug(msg) }
func (p pionLogger) Tracef(format string, args ...any) { p.s.Debugf(format, args...) }
func (p pionLogger) Debug(msg string)                  { p.s.Debug(msg) }
func (p pionLogger) Debugf(format string, args ...any) { p.s.Debugf(format, args...) }
func (p pionLogger) Info(msg string)                   { p.s.Debug(msg) }
func (p pionLogger) Infof(format string, args ...any)  { p.s.Debugf(format, args...) }
func (p pionLogger) Warn(msg string)                   { p.s.Warn(msg) }
func (p pionLogger) Warnf(format string, args ...any)  { p.s.Warnf(format, args...) }
func (p pionLogger) Error(msg string)                  { p.s.Error(msg) }
func (p pionLogger) Errorf(format string, args ...any) { p.s.Errorf(format, args...) }
