package server

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/protobuf/proto"

	pb "github.com/parleyhq/parley/proto/parley/v1"
	"github.com/parleyhq/parley/token"
)

// startObserved runs a loopback server with one app whose logs the test
// reads.
func startObserved(t *testing.T, cfg Config) (*Server, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	cfg.Logger = zap.New(core)
	return startWith(t, cfg), logs
}

// tokenOf is a token of app signed with key for room and user, expiring
// at expire.
func tokenOf(t *testing.T, app, key, room, user string, expire time.Time) string {
	t.Helper()
	tok := token.New(app, key, room, user)
	tok.ExpireTime(expire)
	raw, err := tok.Serialize()
	require.NoError(t, err)
	return raw
}

// logged returns the "reason" fields of the log lines whose message is
// msg.
func logged(logs *observer.ObservedLogs, msg string) []string {
	var out []string
	for _, e := range logs.FilterMessage(msg).All() {
		r, _ := e.ContextMap()["reason"].(string)
		out = append(out, r)
	}
	return out
}

// TestRefusalIsNoOracle: a token of an app the server does not know and a
// token of a known app with a bad signature get the same code and reason,
// expired or not, for a join and for a login, so that a client cannot
// find out which AppIDs exist; the log tells them apart.
func TestRefusalIsNoOracle(t *testing.T) {
	s, logs := startObserved(t, Config{})
	unknownApp := "ffffffffffffffffffffffff"
	past, future := time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
	cases := []struct{ name, app, token string }{
		{"unknown app", unknownApp, tokenOf(t, unknownApp, "some-key", "room1", "alice", future)},
		{"bad signature", testAppID, tokenOf(t, testAppID, "wrong-key", "room1", "alice", future)},
		{"unknown app, expired", unknownApp, tokenOf(t, unknownApp, "some-key", "room1", "alice", past)},
		{"bad signature, expired", testAppID, tokenOf(t, testAppID, "wrong-key", "room1", "alice", past)},
	}
	ws := dial(t, s)
	var joinReasons, loginReasons []string
	for i, c := range cases {
		write(t, ws, &pb.ClientFrame{RequestId: uint64(2*i + 1), Body: &pb.ClientFrame_Join{Join: &pb.JoinRequest{
			AppId: c.app, RoomId: "room1", UserId: "alice", Token: c.token,
		}}})
		jr := read(t, ws).GetJoin()
		require.NotNil(t, jr, c.name)
		require.Equal(t, int32(codeInvalidToken), jr.Code, c.name)
		joinReasons = append(joinReasons, jr.Reason)

		write(t, ws, &pb.ClientFrame{RequestId: uint64(2*i + 2), Body: &pb.ClientFrame_Login{Login: &pb.LoginRequest{
			AppId: c.app, UserId: "alice", Token: c.token,
		}}})
		lr := read(t, ws).GetLogin()
		require.NotNil(t, lr, c.name)
		require.Equal(t, int32(loginInvalidToken), lr.Code, c.name)
		loginReasons = append(loginReasons, lr.Reason)
	}
	for i := range cases {
		require.Equal(t, reasonBadCredentials, joinReasons[i], cases[i].name)
		require.Equal(t, reasonBadCredentials, loginReasons[i], cases[i].name)
	}
	require.NotContains(t, joinReasons[0], unknownApp)

	// A token of a known app, correctly signed but expired, says so.
	write(t, ws, &pb.ClientFrame{RequestId: 100, Body: &pb.ClientFrame_Join{Join: &pb.JoinRequest{
		AppId: testAppID, RoomId: "room1", UserId: "alice", Token: tokenOf(t, testAppID, testAppKey, "room1", "alice", past),
	}}})
	require.Equal(t, "token: expired", read(t, ws).GetJoin().GetReason())

	// The log keeps the detail.
	lines := strings.Join(append(logged(logs, "join refused"), logged(logs, "login refused")...), "\n")
	require.Contains(t, lines, "unknown app ID")
	require.Contains(t, lines, "bad signature")
}

// halfSent opens a TCP connection to s and sends the start of a request
// whose headers never end.
func halfSent(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitTimeout)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	_, err = c.Write([]byte("GET /rtc HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\n"))
	require.NoError(t, err)
	return c
}

// closedByServer waits until the server closes c, up to deadline, and
// reports whether it did.
func closedByServer(c net.Conn, deadline time.Time) bool {
	_ = c.SetReadDeadline(deadline)
	b := make([]byte, 512)
	for {
		if _, err := c.Read(b); err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout())
		}
	}
}

// TestSlowHeaders: requests whose headers never end are all closed by the
// server within 30 s (the 5 s header timeout), while a normal client
// still connects and logs in.
func TestSlowHeaders(t *testing.T) {
	s, _ := startObserved(t, Config{})
	addr := s.Addr().String()
	const n = 50
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = halfSent(t, addr)
	}
	start := time.Now()
	ws := dial(t, s)
	write(t, ws, &pb.ClientFrame{RequestId: 1, Body: &pb.ClientFrame_Login{Login: &pb.LoginRequest{
		AppId: testAppID, Token: validToken(t, "", "alice"), UserId: "alice",
	}}})
	require.Equal(t, int32(loginOK), read(t, ws).GetLogin().GetCode())

	deadline := start.Add(30 * time.Second)
	for i, c := range conns {
		require.True(t, closedByServer(c, deadline), "half-sent request %d still open after 30 s", i)
	}
	t.Logf("%d half-sent requests closed by the server %v after the first", n, time.Since(start).Round(100*time.Millisecond))
	// Each gives its place back as the server closes it.
	require.Eventually(t, func() bool {
		s.admission.mu.Lock()
		defer s.admission.mu.Unlock()
		return s.admission.perIP["127.0.0.1"] == 1 && s.admission.unauth == 0
	}, waitTimeout, 5*time.Millisecond, "only the logged-in connection holds a place")
}

// TestCapsCountFromAccept: a connection counts against the caps as soon
// as it is accepted, before its request arrives; past a cap the server
// answers 429 at once; and every connection gives its place back exactly
// once, whichever way it ends.
func TestCapsCountFromAccept(t *testing.T) {
	t.Run("per address", func(t *testing.T) {
		s := startLimited(t, Config{MaxConnsPerAddress: 3})
		for range 3 {
			halfSent(t, s.Addr().String())
		}
		_, resp, err := websocket.DefaultDialer.Dial(s.URL(), nil)
		require.Error(t, err)
		require.NotNil(t, resp, "an HTTP answer, not a reset: %v", err)
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		body, _ := io.ReadAll(resp.Body)
		require.Equal(t, "too many per address\n", string(body))
		require.Equal(t, 1.0, closes(s, closePerAddress))
	})
	t.Run("unauthenticated", func(t *testing.T) {
		s := startLimited(t, Config{MaxUnauthenticated: 2})
		for range 2 {
			halfSent(t, s.Addr().String())
		}
		_, resp, err := websocket.DefaultDialer.Dial(s.URL(), nil)
		require.Error(t, err)
		require.NotNil(t, resp, "an HTTP answer, not a reset: %v", err)
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		require.Equal(t, 1.0, closes(s, closeUnauthCap))
	})
	t.Run("released once", func(t *testing.T) {
		s, _ := startObserved(t, Config{AllowedOrigins: []string{"https://ok.example"}})
		counts := func() (int, int) {
			s.admission.mu.Lock()
			defer s.admission.mu.Unlock()
			return s.admission.perIP["127.0.0.1"], s.admission.unauth
		}
		// Refused by a handler (403), answered (/healthz, not kept alive),
		// upgraded and closed unauthenticated, upgraded, logged in and
		// closed.
		_, resp, err := websocket.DefaultDialer.Dial(s.URL(), http.Header{"Origin": {"https://evil.example"}})
		require.Error(t, err)
		require.Equal(t, http.StatusForbidden, resp.StatusCode)
		c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
		r, err := c.Get("http://" + s.Addr().String() + "/healthz")
		require.NoError(t, err)
		r.Body.Close()
		a := dial(t, s)
		b := dial(t, s)
		write(t, b, &pb.ClientFrame{RequestId: 1, Body: &pb.ClientFrame_Login{Login: &pb.LoginRequest{
			AppId: testAppID, Token: validToken(t, "", "alice"), UserId: "alice",
		}}})
		require.Equal(t, int32(loginOK), read(t, b).GetLogin().GetCode())
		// The refused and the answered connections are given back as the
		// server closes them, which may come a moment after their answers.
		require.Eventually(t, func() bool { p, _ := counts(); return p <= 2 }, waitTimeout, 5*time.Millisecond)
		perIP, unauth := counts()
		require.Equal(t, 2, perIP, "the two WebSockets")
		require.Equal(t, 1, unauth, "a; b has logged in")
		require.NoError(t, a.Close())
		require.NoError(t, b.Close())
		require.Eventually(t, func() bool { p, u := counts(); return p == 0 && u == 0 }, waitTimeout, 5*time.Millisecond)
		p, u := counts()
		require.Equal(t, [2]int{0, 0}, [2]int{p, u}, "given back exactly once")
	})
	t.Run("auth timeout", func(t *testing.T) {
		s, _ := startObserved(t, Config{AuthTimeout: 100 * time.Millisecond})
		ws := dial(t, s)
		_, _, err := ws.ReadMessage()
		var ce *websocket.CloseError
		require.ErrorAs(t, err, &ce)
		require.Equal(t, websocket.ClosePolicyViolation, ce.Code)
		require.Eventually(t, func() bool {
			s.admission.mu.Lock()
			defer s.admission.mu.Unlock()
			return len(s.admission.perIP) == 0 && s.admission.unauth == 0
		}, waitTimeout, 5*time.Millisecond)
		require.NoError(t, ws.Close())
		s.admission.mu.Lock()
		defer s.admission.mu.Unlock()
		require.Zero(t, s.admission.unauth, "given back exactly once")
	})
}

// TestTimeoutsSpareWebSockets: the HTTP server's timeouts end slow and
// idle HTTP connections, not the WebSockets it has handed over.
func TestTimeoutsSpareWebSockets(t *testing.T) {
	s, err := New(Config{Listen: "127.0.0.1:0", Apps: map[string]string{testAppID: testAppKey}, LoopbackOnly: true})
	require.NoError(t, err)
	s.timeouts = httpTimeouts{header: 100 * time.Millisecond, read: 200 * time.Millisecond, write: 200 * time.Millisecond, idle: 300 * time.Millisecond}
	require.NoError(t, s.Start())
	t.Cleanup(func() { require.NoError(t, s.Shutdown(context.Background())) })

	ws := dial(t, s)
	// An idle kept-alive HTTP connection opened after the WebSocket: when
	// the server has closed it, every timeout has passed for the WebSocket.
	idle, err := net.Dial("tcp", s.Addr().String())
	require.NoError(t, err)
	defer idle.Close()
	_, err = idle.Write([]byte("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"))
	require.NoError(t, err)
	require.True(t, closedByServer(idle, time.Now().Add(waitTimeout)), "idle connection closed")
	slow := halfSent(t, s.Addr().String())
	require.True(t, closedByServer(slow, time.Now().Add(waitTimeout)), "half-sent request closed")

	write(t, ws, &pb.ClientFrame{RequestId: 7, Body: &pb.ClientFrame_Leave{Leave: &pb.LeaveRequest{RoomId: "r"}}})
	f := read(t, ws)
	require.Equal(t, uint64(7), f.RequestId)
	require.NotNil(t, f.GetLeave(), "the WebSocket still works")
}

// TestUnauthenticatedLimits: before a join or login a connection may send
// frames of at most unauthReadLimit bytes; after one, up to
// signal.MaxFrameSize. And a client that never acknowledges what the
// server sends it before it authenticates loses its session once that
// passes unauthReplay bytes.
func TestUnauthenticatedLimits(t *testing.T) {
	s, _ := startObserved(t, Config{})
	big := &pb.ClientFrame{RequestId: 2, Body: &pb.ClientFrame_PeerStatus{PeerStatus: &pb.PeerStatusRequest{
		UserId: strings.Repeat("u", unauthReadLimit),
	}}}

	ws := dial(t, s)
	write(t, ws, big)
	_, _, err := ws.ReadMessage()
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	require.Equal(t, websocket.CloseMessageTooBig, ce.Code)

	ws = dial(t, s)
	write(t, ws, &pb.ClientFrame{RequestId: 1, Body: &pb.ClientFrame_Login{Login: &pb.LoginRequest{
		AppId: testAppID, Token: validToken(t, "", "alice"), UserId: "alice",
	}}})
	require.Equal(t, int32(loginOK), read(t, ws).GetLogin().GetCode())
	write(t, ws, big)
	ps := read(t, ws).GetPeerStatus()
	require.NotNil(t, ps, "a big frame is read once logged in")
	require.Empty(t, ps.UserId, "an illegal user ID is not echoed")

	// Never acknowledged: refusals pile up in the replay buffer.
	ws = dial(t, s)
	var closeErr error
	for i := 0; i < 1000 && closeErr == nil; i++ {
		write(t, ws, &pb.ClientFrame{RequestId: uint64(i + 1), Seq: uint64(i + 1), Body: &pb.ClientFrame_Join{Join: &pb.JoinRequest{
			AppId: testAppID, RoomId: "room1", UserId: "alice", Token: "garbage",
		}}})
		for closeErr == nil {
			_, b, err := ws.ReadMessage()
			if err != nil {
				closeErr = err
				break
			}
			var f pb.ServerFrame
			require.NoError(t, proto.Unmarshal(b, &f))
			if f.GetJoin() != nil {
				break
			}
		}
	}
	require.ErrorAs(t, closeErr, &ce)
	require.Equal(t, websocket.ClosePolicyViolation, ce.Code)
	require.Equal(t, "replay buffer full", ce.Text)
}

// TestAdmittedConnReleasesOnce: a connection gives its places back once
// however often it is closed, and as authenticated once it has been
// marked so; a mark after the close changes nothing.
func TestAdmittedConnReleasesOnce(t *testing.T) {
	var a admission
	open := func() *admittedConn {
		require.Empty(t, a.admit("10.0.0.1", 10, 10))
		c, peer := net.Pipe()
		t.Cleanup(func() { peer.Close() })
		return &admittedConn{Conn: c, adm: &a, ip: "10.0.0.1"}
	}
	x, y := open(), open()
	require.Equal(t, 2, a.perIP["10.0.0.1"])
	require.Equal(t, 2, a.unauth)
	x.markAuthed()
	x.markAuthed()
	require.Equal(t, 1, a.unauth)
	require.NoError(t, x.Close())
	_ = x.Close()
	require.Equal(t, 1, a.perIP["10.0.0.1"])
	require.Equal(t, 1, a.unauth)
	require.NoError(t, y.Close())
	y.markAuthed()
	_ = y.Close()
	require.Empty(t, a.perIP)
	require.Zero(t, a.unauth)
}

// TestEchoesAreShort: what a client sent comes back in a reason, and goes
// to the log, only when it is short; a long one only as its first bytes
// and its length.
func TestEchoesAreShort(t *testing.T) {
	s, logs := startObserved(t, Config{})
	long := strings.Repeat("A", 12<<10)
	illegal := strings.Repeat("b", 100) + "!"
	tok := validToken(t, "room1", "alice")
	ws := dial(t, s)
	for i, j := range []*pb.JoinRequest{
		{AppId: long, RoomId: "room1", UserId: "alice", Token: tok},       // the token is for another app
		{AppId: testAppID, RoomId: illegal, UserId: "alice", Token: tok},  // an illegal room ID
		{AppId: testAppID, RoomId: "room1", UserId: illegal, Token: tok},  // an illegal user ID
		{AppId: testAppID, RoomId: "room1", UserId: long, Token: tok},     // a long user ID
		{AppId: testAppID, RoomId: "room1", UserId: "alice", Token: long}, // a token that does not parse
	} {
		write(t, ws, &pb.ClientFrame{RequestId: uint64(i + 1), Body: &pb.ClientFrame_Join{Join: j}})
		jr := read(t, ws).GetJoin()
		require.NotNil(t, jr)
		require.NotZero(t, jr.Code)
		require.Less(t, len(jr.Reason), 200, "reason %d: %q", i, jr.Reason)
	}
	write(t, ws, &pb.ClientFrame{RequestId: 10, Body: &pb.ClientFrame_Login{Login: &pb.LoginRequest{
		AppId: testAppID, UserId: illegal, Token: tok,
	}}})
	lr := read(t, ws).GetLogin()
	require.Less(t, len(lr.GetReason()), 200, lr.GetReason())
	require.Contains(t, lr.GetReason(), `"bbbbbbbb`)
	require.Contains(t, lr.GetReason(), "(101 bytes)")
	write(t, ws, &pb.ClientFrame{RequestId: 11, Body: &pb.ClientFrame_Resume{Resume: &pb.ResumeRequest{SessionId: long}}})
	_, _, err := ws.ReadMessage() // not the first frame: closed
	require.Error(t, err)
	ws = dial(t, s)
	write(t, ws, &pb.ClientFrame{RequestId: 1, Body: &pb.ClientFrame_Resume{Resume: &pb.ResumeRequest{SessionId: long}}})
	require.False(t, read(t, ws).GetResume().GetOk())

	require.NotZero(t, logs.Len())
	for _, e := range logs.All() {
		for k, v := range e.ContextMap() {
			if str, ok := v.(string); ok {
				require.Less(t, len(str), 200, "log %q field %s: %q", e.Message, k, str)
			}
		}
	}
}
