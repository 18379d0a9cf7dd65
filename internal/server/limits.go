package server

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

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

// admitListener counts every connection it accepts against the caps, at
// once: a connection that never finishes its request holds a place until
// the header timeout closes it, and a flood past the caps is refused
// before it costs more than an accept. The place is given back when the
// connection closes, whichever way: refused by a handler, answered and
// closed, timed out, or upgraded and closed later.
type admitListener struct {
	net.Listener
	s *Server
}

func (l *admitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := remoteIP(c.RemoteAddr().String())
		cfg := &l.s.cfg
		if broken := l.s.admission.admit(ip, cfg.MaxConnsPerAddress, cfg.MaxUnauthenticated); broken != "" {
			l.s.refuseConn(c, broken)
			continue
		}
		return &admittedConn{Conn: c, adm: &l.s.admission, ip: ip}, nil
	}
}

// admittedKey is the request context key of the *admittedConn a request
// came on.
type admittedKey struct{}

// admittedConn is an accepted connection holding its places in the
// admission counts until it is closed.
type admittedConn struct {
	net.Conn
	adm *admission
	ip  string

	mu       sync.Mutex
	authed   bool // guarded by mu; moved out of the unauthenticated count
	released bool // guarded by mu
}

// Close closes the connection and gives back its places, once.
func (c *admittedConn) Close() error {
	err := c.Conn.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.released {
		c.released = true
		c.adm.release(c.ip, !c.authed)
	}
	return err
}

// CloseWrite shuts down the writing side, as a *net.TCPConn does: net/http
// half-closes a connection it is done with this way before it closes it.
func (c *admittedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// markAuthed moves the connection out of the unauthenticated count, once.
func (c *admittedConn) markAuthed() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.authed && !c.released {
		c.authed = true
		c.adm.authenticated()
	}
}

// Refusals past a cap are answered in the background, each within
// refuseTimeout, at most maxRefusing at a time; more are closed unanswered.
const (
	maxRefusing   = 64
	refuseTimeout = time.Second
)

// refuseConn answers a connection that breaks a cap with 429 and closes
// it, without reading its request: its headers may never come. It shuts
// its side down first and reads what the client sent until the client
// closes or refuseTimeout passes, so that the kernel does not reset the
// connection and lose the answer.
func (s *Server) refuseConn(c net.Conn, label string) {
	s.metrics.closes.WithLabelValues(label).Inc()
	s.log.Info("connection refused", zap.String("reason", label), zap.String("remote", c.RemoteAddr().String()))
	select {
	case s.refusals <- struct{}{}:
	default:
		_ = c.Close()
		return
	}
	s.refusing.Add(1)
	go func() {
		defer s.refusing.Done()
		defer func() { <-s.refusals }()
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(refuseTimeout))
		body := strings.ReplaceAll(label, "_", " ") + "\n"
		_, err := fmt.Fprintf(c, "HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain; charset=utf-8\r\n"+
			"Content-Length: %d\r\nConnection: close\r\n\r\n%s", len(body), body)
		if err != nil {
			return
		}
		if tc, ok := c.(interface{ CloseWrite() error }); ok {
			_ = tc.CloseWrite()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(c, 64<<10))
	}()
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
// header (a program, not a browser) passes, and so does a page this
// server served (sameOrigin, web.go); another browser page's origin must
// be one of Config.AllowedOrigins ("*" allows any).
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || sameOrigin(r) {
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
