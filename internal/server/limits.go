package server

import (
	"net"
	"net/http"
	"strings"
	"sync"

	"github.com/gorilla/websocket"
	"go.uber.org/zap"

	"github.com/parleyhq/parley/internal/signal"
)

// Reasons a connection is refused or closed for breaking a limit; each is
// a label of parley_connections_closed_total.
const (
	closeOrigin      = "origin_not_allowed"
	closePerAddress  = "too_many_per_address"
	closeUnauthCap   = "too_many_unauthenticated"
	closeRateLimited = "rate_limited"
)

// admission counts the open connections per remote address and those not
// yet authenticated (no accepted join or login), to refuse a flood before
// it costs a session.
type admission struct {
	mu     sync.Mutex
	perIP  map[string]int
	unauth int
}

// admit reserves a place for a connection from ip, or says which limit it
// breaks ("" when admitted).
func (a *admission) admit(ip string, perIP, unauth int) string {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.perIP[ip] >= perIP {
		return closePerAddress
	}
	if a.unauth >= unauth {
		return closeUnauthCap
	}
	if a.perIP == nil {
		a.perIP = make(map[string]int)
	}
	a.perIP[ip]++
	a.unauth++
	return ""
}

// authenticated moves one connection out of the unauthenticated count.
func (a *admission) authenticated() {
	a.mu.Lock()
	a.unauth--
	a.mu.Unlock()
}

// release gives back a connection's places.
func (a *admission) release(ip string, unauth bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.perIP[ip]--; a.perIP[ip] <= 0 {
		delete(a.perIP, ip)
	}
	if unauth {
		a.unauth--
	}
}

// checkOrigin applies the origin policy: a request without an Origin
// header (a program, not a browser) passes; a browser's must be one of
// Config.AllowedOrigins ("*" allows any).
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, o := range s.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

// refuse answers an HTTP request the limits refuse, with a log line and a
// metric.
func (s *Server) refuse(w http.ResponseWriter, r *http.Request, label string, status int) {
	s.metrics.closes.WithLabelValues(label).Inc()
	s.log.Info("connection refused", zap.String("reason", label), zap.String("remote", r.RemoteAddr))
	http.Error(w, strings.ReplaceAll(label, "_", " "), status)
}

func remoteIP(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// rateLimited closes a session whose client sends frames faster than
// Config.MaxFramesPerSecond allows.
func (ss *session) rateLimited() error {
	ss.srv.metrics.closes.WithLabelValues(closeRateLimited).Inc()
	ss.log.Info("closing connection", zap.String("reason", closeRateLimited))
	return &signal.CloseError{Code: websocket.ClosePolicyViolation, Reason: "too many frames per second"}
}
