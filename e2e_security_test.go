package parley_test

// End-to-end tests of the server's defences and metrics with real
// Engines over loopback: the relay metrics move with the traffic, and a
// flood of requests whose headers never end neither keeps its sockets nor
// stops a normal client from joining and messaging. Only the public API;
// the handlers are this file's own and report on channels.

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
	"github.com/parleyhq/parley/server"
)

// secWait only guards against a hang; every wait ends on an event.
const secWait = 20 * time.Second

// secRoom records a room's events on channels.
type secRoom struct {
	parley.NopRoomEventHandler
	states      chan int
	joined      chan string
	received    chan string
	userResults chan parley.UserMessageSendResult
	roomResults chan parley.RoomMessageSendResult
}

func newSecRoom() *secRoom {
	return &secRoom{
		states: make(chan int, 16), joined: make(chan string, 16), received: make(chan string, 16),
		userResults: make(chan parley.UserMessageSendResult, 16), roomResults: make(chan parley.RoomMessageSendResult, 16),
	}
}

func (h *secRoom) OnRoomStateChanged(_, _ string, state int, _ parley.RoomStateInfo) {
	h.states <- state
}
func (h *secRoom) OnUserJoined(u parley.UserInfo)       { h.joined <- u.UserID }
func (h *secRoom) OnUserMessageReceived(from, m string) { h.received <- from + ":" + m }
func (h *secRoom) OnRoomMessageReceived(from, m string) { h.received <- from + ":" + m }
func (h *secRoom) OnUserMessageSendResult(_ int64, r parley.UserMessageSendResult) {
	h.userResults <- r
}
func (h *secRoom) OnRoomMessageSendResult(_ int64, r parley.RoomMessageSendResult) {
	h.roomResults <- r
}

// secEngine records an Engine's login events on channels.
type secEngine struct {
	parley.NopEngineEventHandler
	logins   chan parley.LoginErrorCode
	params   chan int
	results  chan parley.UserMessageSendResult
	received chan string
}

func newSecEngine() *secEngine {
	return &secEngine{logins: make(chan parley.LoginErrorCode, 4), params: make(chan int, 4), results: make(chan parley.UserMessageSendResult, 16), received: make(chan string, 16)}
}

func (h *secEngine) OnLoginResult(_ string, code parley.LoginErrorCode, _ time.Duration) {
	h.logins <- code
}
func (h *secEngine) OnUserMessageSendResultOutsideRoom(_ int64, r parley.UserMessageSendResult) {
	h.results <- r
}
func (h *secEngine) OnUserMessageReceivedOutsideRoom(from, m string) { h.received <- from + ":" + m }
func (h *secEngine) OnServerParamsSetResult(code int)                { h.params <- code }
func (h *secEngine) OnServerMessageSendResult(_ int64, r parley.UserMessageSendResult, ack []byte) {
	h.results <- r
}

// next waits for the next value on ch.
func next[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(secWait):
		t.Fatalf("no %s within %v", what, secWait)
		panic("unreachable")
	}
}

// secUser is an Engine joined to a room.
type secUser struct {
	engine *parley.Engine
	eh     *secEngine
	room   *parley.Room
	rh     *secRoom
}

// secJoin makes an Engine for userID and joins roomID, waiting for state 0.
func secJoin(t *testing.T, srv *parleytest.Server, roomID, userID string) *secUser {
	t.Helper()
	u := &secUser{eh: newSecEngine(), rh: newSecRoom()}
	var err error
	u.engine, err = parley.NewEngine(parley.EngineConfig{AppID: srv.AppID, ServerURL: srv.URL}, u.eh, parley.WithLoopbackOnly())
	require.NoError(t, err)
	t.Cleanup(func() { _ = u.engine.Close() })
	u.room, err = u.engine.CreateRoom(roomID, u.rh)
	require.NoError(t, err)
	require.NoError(t, u.room.JoinRoom(srv.Token(roomID, userID), parley.UserInfo{UserID: userID}, parley.RoomConfig{}))
	require.Equal(t, 0, next(t, u.rh.states, userID+" joined"))
	return u
}

// scrape fetches the server's metrics.
func scrape(t *testing.T, srv *parleytest.Server) map[string]float64 {
	t.Helper()
	c := &http.Client{Timeout: secWait, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + srv.Server().MetricsAddr().String() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	// The text format: `name{a="x",b="y"} value`, keyed here as
	// "name,a=x,b=y"; the label values of these metrics have no quotes or
	// commas in them.
	out := make(map[string]float64)
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		require.NoError(t, err, line)
		key := line[:i]
		if name, labels, ok := strings.Cut(key, "{"); ok {
			key = name
			for _, l := range strings.Split(strings.TrimSuffix(labels, "}"), ",") {
				k, v, _ := strings.Cut(l, "=")
				key += "," + k + "=" + strings.Trim(v, `"`)
			}
		}
		out[key] = v
	}
	return out
}

// TestSecurityMetricsMove: the metrics DESIGN.md promises (messages and
// bytes by kind, results by code, the relay latency) move when messages
// flow: in a room, to a user and to everyone, and outside rooms.
func TestSecurityMetricsMove(t *testing.T) {
	srv := parleytest.NewServer(t)
	alice := secJoin(t, srv, "metrics", "alice")
	bob := secJoin(t, srv, "metrics", "bob")
	require.Equal(t, "bob", next(t, alice.rh.joined, "alice sees bob"))
	require.Equal(t, "alice", next(t, bob.rh.joined, "bob sees alice"))

	alice.room.SendUserMessage("bob", "reliable", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, next(t, alice.rh.userResults, "reliable result"))
	alice.room.SendUserMessage("bob", "unreliable", parley.MessageConfigUnreliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, next(t, alice.rh.userResults, "unreliable result"))
	alice.room.SendUserMessage("nobody", "lost", parley.MessageConfigUnreliableOrdered)
	require.Equal(t, parley.UserMessageSendResultNoReceiver, next(t, alice.rh.userResults, "no receiver"))
	alice.room.SendRoomMessage("everyone")
	require.Equal(t, parley.RoomMessageSendResultSuccess, next(t, alice.rh.roomResults, "broadcast result"))
	for range 3 {
		next(t, bob.rh.received, "bob's messages")
	}

	alice.engine.Login(srv.LoginToken("alice"), "alice")
	bob.engine.Login(srv.LoginToken("bob"), "bob")
	require.Equal(t, parley.LoginErrorCodeSuccess, next(t, alice.eh.logins, "alice's login"))
	require.Equal(t, parley.LoginErrorCodeSuccess, next(t, bob.eh.logins, "bob's login"))
	alice.engine.SendUserMessageOutsideRoom("bob", "outside", parley.MessageConfigUnreliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, next(t, alice.eh.results, "outside result"))
	require.Equal(t, "alice:outside", next(t, bob.eh.received, "bob's outside message"))

	m := scrape(t, srv)
	require.Equal(t, 3.0, m["parley_messages_received_total,kind=user"])
	require.Equal(t, float64(len("reliable")+len("unreliable")+len("lost")), m["parley_message_bytes_received_total,kind=user"])
	require.Equal(t, 1.0, m["parley_messages_received_total,kind=broadcast"])
	require.Equal(t, float64(len("everyone")), m["parley_message_bytes_received_total,kind=broadcast"])
	require.Equal(t, 1.0, m["parley_messages_received_total,kind=outside"])
	require.Equal(t, float64(len("outside")), m["parley_message_bytes_received_total,kind=outside"])
	require.Equal(t, 2.0, m["parley_relay_latency_seconds_count,kind=user"], "the reliable and the unreliable message reached bob")
	require.Equal(t, 1.0, m["parley_relay_latency_seconds_count,kind=broadcast"])
	require.Equal(t, 1.0, m["parley_relay_latency_seconds_count,kind=outside"])
	require.Equal(t, 2.0, m["parley_results_total,code=0"], "the unreliable message, in and outside the room")
	require.Equal(t, 1.0, m["parley_results_total,code=3"], "NoReceiver")
	require.Equal(t, 1.0, m["parley_results_total,code=200"], "the broadcast")
}

// TestSecuritySlowHeaders: 50 requests whose headers never end are all
// closed by the server within 30 s, and meanwhile two Engines join a room
// and exchange a message as usual.
func TestSecuritySlowHeaders(t *testing.T) {
	srv := parleytest.NewServer(t)
	addr := srv.Server().Addr().String()
	const n = 50
	conns := make([]net.Conn, n)
	for i := range conns {
		c, err := net.DialTimeout("tcp", addr, secWait)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		_, err = io.WriteString(c, "GET /rtc HTTP/1.1\r\nHost: "+addr+"\r\nUpgrade: websocket\r\nConnection: Up")
		require.NoError(t, err)
		conns[i] = c
	}
	start := time.Now()

	alice := secJoin(t, srv, "busy", "alice")
	bob := secJoin(t, srv, "busy", "bob")
	require.Equal(t, "bob", next(t, alice.rh.joined, "alice sees bob"))
	alice.room.SendUserMessage("bob", "hi", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, next(t, alice.rh.userResults, "result"))
	require.Equal(t, "alice:hi", next(t, bob.rh.received, "bob's message"))

	for i, c := range conns {
		require.NoError(t, c.SetReadDeadline(start.Add(30*time.Second)))
		_, err := bufio.NewReader(c).ReadString('\n')
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "half-sent request %d still open after 30 s", i)
		require.True(t, err == io.EOF || strings.Contains(err.Error(), "reset"), "request %d: %v", i, err)
	}
	t.Logf("%d half-sent requests closed by the server within %v", n, time.Since(start).Round(100*time.Millisecond))
}

// TestSecurityServerMessageURL: a URL that a normalising application
// server would resolve outside the allowed prefix is refused (17) however
// it is written, and nothing reaches the application server; an honest URL
// under the prefix works.
func TestSecurityServerMessageURL(t *testing.T) {
	paths := make(chan string, 16)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths <- r.URL.EscapedPath()
		_, _ = io.WriteString(w, "ok")
	}))
	defer app.Close()
	srv := parleytest.NewServer(t, parleytest.WithConfig(func(c *server.Config) {
		c.ServerMessageURLPrefixes = []string{app.URL + "/parley"}
	}))
	h := newSecEngine()
	e, err := parley.NewEngine(parley.EngineConfig{AppID: srv.AppID, ServerURL: srv.URL}, h, parley.WithLoopbackOnly())
	require.NoError(t, err)
	defer e.Close()
	require.NoError(t, e.Login(srv.LoginToken("alice"), "alice"))
	require.Equal(t, parley.LoginErrorCodeSuccess, next(t, h.logins, "login"))

	for _, p := range []string{"/parley/../admin", "/parley/%2e%2e/admin", "/parley/..%2fadmin", "/parley/%2E%2e/admin",
		"/parley/..%5cadmin", "/parleyX", "/parley/./x"} {
		require.NoError(t, e.SetServerParams("sig", app.URL+p))
		require.Equal(t, int(parley.UserMessageSendResultE2BSSendFailed), next(t, h.params, p), p)
		e.SendServerMessage("hi")
		require.Equal(t, parley.UserMessageSendResultServerParamsNotSet, next(t, h.results, p+" result"), p)
	}
	u := strings.Replace(app.URL, "http://", "http://user@", 1) + "/parley/x"
	require.NoError(t, e.SetServerParams("sig", u))
	require.Equal(t, int(parley.UserMessageSendResultE2BSSendFailed), next(t, h.params, "user info"))

	require.NoError(t, e.SetServerParams("sig", app.URL+"/parley/hook"))
	require.Equal(t, 200, next(t, h.params, "honest URL"))
	e.SendServerMessage("hi")
	require.Equal(t, parley.UserMessageSendResultSuccess, next(t, h.results, "server message"))
	require.Equal(t, "/parley/hook", next(t, paths, "the post"))
	require.Empty(t, paths, "nothing else reached the application server")
}
