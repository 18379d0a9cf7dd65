// Package parleytest runs an in-process Parley server for tests, like
// net/http/httptest: loopback only, ephemeral ports, stopped by
// tb.Cleanup. Engines used against it need parley.WithLoopbackOnly().
// Recorder is the handler to give them: it records every callback, and a
// test waits for the events it expects.
//
//	srv := parleytest.NewServer(t)
//	rec := parleytest.NewRecorder()
//	e, _ := parley.NewEngine(parley.EngineConfig{AppID: srv.AppID, ServerURL: srv.URL}, rec, parley.WithLoopbackOnly())
//	room, _ := e.CreateRoom("room1", rec)
//	room.JoinRoom(srv.Token("room1", "alice"), parley.UserInfo{UserID: "alice"}, parley.RoomConfig{})
//	joined := rec.NextRoomState(t) // state 0, or an ErrorCode
//
// Server.Kill crashes a server (nobody is told anything). NewCluster starts
// the nodes of a cluster on an embedded NATS server, for code that spans
// nodes.
package parleytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/parleyhq/parley/server"
	"github.com/parleyhq/parley/token"
)

// Server is a running test server.
type Server struct {
	URL    string // signaling URL to put in EngineConfig.ServerURL
	AppID  string // a 24-character AppID
	AppKey string // the AppID's key

	srv       *server.Server
	tb        testing.TB
	closeOnce sync.Once
}

// ServerOption adjusts the test server's configuration.
type ServerOption func(*server.Config)

// WithLogger sends the server's logs to l.
func WithLogger(l *zap.Logger) ServerOption {
	return func(c *server.Config) { c.Logger = l }
}

// WithQuotas sets the server's rate quotas (server.Quotas; zero is
// unlimited, the default).
func WithQuotas(q server.Quotas) ServerOption {
	return func(c *server.Config) { c.Quotas = q }
}

// WithConfig lets a test change any field of the server's configuration
// (Listen and LoopbackOnly are forced back to loopback).
func WithConfig(f func(*server.Config)) ServerOption {
	return func(c *server.Config) { f(c) }
}

// NewServer starts a server on 127.0.0.1 with ephemeral TCP and UDP ports
// and one app with a random ID and key. It fails tb if the server cannot
// start and stops it in tb.Cleanup.
func NewServer(tb testing.TB, opts ...ServerOption) *Server {
	tb.Helper()
	appID, appKey := newApp()
	cfg := server.Config{Apps: map[string]string{appID: appKey}}
	for _, o := range opts {
		o(&cfg)
	}
	return startServer(tb, cfg, appID, appKey)
}

// newApp is a random AppID (24 characters) and key.
func newApp() (id, key string) { return randomHex(12), randomHex(16) }

// startServer starts a server of cfg on loopback ephemeral ports, stopped
// in tb.Cleanup; appID and appKey are the app its tokens are minted for.
func startServer(tb testing.TB, cfg server.Config, appID, appKey string) *Server {
	tb.Helper()
	cfg.Listen = "127.0.0.1:0"
	cfg.UDPPort = 0
	cfg.LoopbackOnly = true
	srv, err := server.New(cfg)
	if err != nil {
		tb.Fatalf("parleytest: %v", err)
	}
	if err := srv.Start(); err != nil {
		tb.Fatalf("parleytest: %v", err)
	}
	s := &Server{URL: srv.URL(), AppID: appID, AppKey: appKey, srv: srv, tb: tb}
	tb.Cleanup(s.Close)
	return s
}

// Token returns a room token for userID in roomID with publish and
// subscribe privileges, valid for 24 hours.
func (s *Server) Token(roomID, userID string) string {
	return s.mint(roomID, userID, time.Now().Add(24*time.Hour))
}

// LoginToken returns a login token (room "") for userID, valid 24 hours.
func (s *Server) LoginToken(userID string) string {
	return s.Token("", userID)
}

// TokenExpiring returns a room token that expires at expire.
func (s *Server) TokenExpiring(roomID, userID string, expire time.Time) string {
	return s.mint(roomID, userID, expire)
}

func (s *Server) mint(roomID, userID string, expire time.Time) string {
	return mint(s.tb, s.AppID, s.AppKey, roomID, userID, expire)
}

// mint is a token of app appID for userID in roomID, with publish and
// subscribe privileges, valid until expire.
func mint(tb testing.TB, appID, appKey, roomID, userID string, expire time.Time) string {
	t := token.New(appID, appKey, roomID, userID)
	t.ExpireTime(expire)
	t.AddPrivilege(token.PrivPublishStream, expire)
	t.AddPrivilege(token.PrivSubscribeStream, expire)
	raw, err := t.Serialize()
	if err != nil {
		tb.Fatalf("parleytest: token: %v", err)
	}
	return raw
}

// Server is the running server, for tests that need its addresses.
func (s *Server) Server() *server.Server { return s.srv }

// Close shuts the server down gracefully and waits for it: its clients
// are told it is going away (GoAway). Later calls, and Kill after it, do
// nothing.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			s.tb.Errorf("parleytest: shutdown: %v", err)
		}
	})
}

// Kill stops the server as a crash would (server.Server.Kill): every
// connection is cut, nobody is told anything, all its state is lost. It
// returns once the server's goroutines have ended. Later calls, and Close
// after it, do nothing.
func (s *Server) Kill() {
	s.closeOnce.Do(func() {
		if err := s.srv.Kill(); err != nil {
			s.tb.Errorf("parleytest: kill: %v", err)
		}
	})
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// WithClock makes the server tell time, and time tokens' expiry, by c.
func WithClock(c *Clock) ServerOption {
	return func(cfg *server.Config) { cfg.Clock = c }
}

// Clock is a fake server.Clock for tests: time stands still until Advance
// moves it, and the timers due by then fire. Mint tokens against Now.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	at   time.Time
	f    func()
	done bool
}

// NewClock returns a Clock that reads start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now is the Clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc runs f on a goroutine of its own once Advance has moved the Clock
// d on; stop cancels it.
func (c *Clock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		was := !t.done
		t.done = true
		return was
	}
}

// Advance moves the Clock d on and fires the timers now due, earliest
// first.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	kept := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.done:
		case !t.at.After(c.now):
			t.done = true
			due = append(due, t)
		default:
			kept = append(kept, t)
		}
	}
	c.timers = kept
	c.mu.Unlock()
	slices.SortFunc(due, func(a, b *fakeTimer) int { return a.at.Compare(b.at) })
	go func() { // one goroutine, so they run in order
		for _, t := range due {
			t.f()
		}
	}()
}
