package parley_test

// End-to-end tests of the server's defences and metrics with real
// Engines over loopback: the relay metrics move with the traffic; a flood
// of requests whose headers never end neither keeps its sockets nor stops
// a normal client from joining and messaging; a server-message URL that
// leaves its allowed prefix is refused however it is written.
// Only the public API, on the harness (e2e_harness_test.go).

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
)

// scrape fetches the server's metrics.
func scrape(t *testing.T, srv *parleytest.Server) map[string]float64 {
	t.Helper()
	c := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
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
	alice := joined(t, srv, "metrics", "alice", "")
	bob := joined(t, srv, "metrics", "bob", "")
	requireJoined(t, alice.rec, bob.info)
	requireJoined(t, bob.rec, alice.info)

	id := alice.room.SendUserMessage("bob", "reliable", parley.MessageConfigReliableOrdered)
	require.Equal(t, userResult(id, parley.UserMessageSendResultSuccess), alice.rec.NextResult(t), "reliable result")
	id = alice.room.SendUserMessage("bob", "unreliable", parley.MessageConfigUnreliableOrdered)
	require.Equal(t, userResult(id, parley.UserMessageSendResultSuccess), alice.rec.NextResult(t), "unreliable result")
	id = alice.room.SendUserMessage("nobody", "lost", parley.MessageConfigUnreliableOrdered)
	require.Equal(t, userResult(id, parley.UserMessageSendResultNoReceiver), alice.rec.NextResult(t), "no receiver")
	id = alice.room.SendRoomMessage("everyone")
	require.Equal(t, roomResult(id, parley.RoomMessageSendResultSuccess), alice.rec.NextResult(t), "broadcast result")
	// The reliable channel and the unreliable one keep no order between
	// them: the three messages may come in any order.
	require.ElementsMatch(t, []parleytest.Message{
		roomMsg("alice", false, false, []byte("reliable")),
		roomMsg("alice", false, false, []byte("unreliable")),
		roomMsg("alice", true, false, []byte("everyone")),
	}, bob.rec.NextMessages(t, 3), "bob's messages")

	alice.login(t)
	bob.login(t)
	id = alice.e.SendUserMessageOutsideRoom("bob", "outside", parley.MessageConfigUnreliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, alice.sent(t, id), "outside result")
	require.Equal(t, outsideMsg("alice", false, []byte("outside")), bob.recv(t), "bob's outside message")

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
		c, err := net.DialTimeout("tcp", addr, waitTimeout)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		_, err = io.WriteString(c, "GET /rtc HTTP/1.1\r\nHost: "+addr+"\r\nUpgrade: websocket\r\nConnection: Up")
		require.NoError(t, err)
		conns[i] = c
	}
	start := time.Now()

	alice := joined(t, srv, "busy", "alice", "")
	bob := joined(t, srv, "busy", "bob", "")
	requireJoined(t, alice.rec, bob.info)
	id := alice.room.SendUserMessage("bob", "hi", parley.MessageConfigReliableOrdered)
	require.Equal(t, userResult(id, parley.UserMessageSendResultSuccess), alice.rec.NextResult(t), "result")
	require.Equal(t, roomMsg("alice", false, false, []byte("hi")), bob.rec.NextMessage(t), "bob's message")

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
	hook := newHook(t)
	srv := serverFor(t, []string{hook.ts.URL + "/parley"}, nil)
	a := loggedIn(t, srv, "alice")

	for _, p := range []string{"/parley/../admin", "/parley/%2e%2e/admin", "/parley/..%2fadmin", "/parley/%2E%2e/admin",
		"/parley/..%5cadmin", "/parleyX", "/parley/./x"} {
		require.Equal(t, int(parley.UserMessageSendResultE2BSSendFailed), a.setParams(t, "sig", hook.ts.URL+p), p)
		id := a.e.SendServerMessage("hi")
		require.Equal(t, parley.UserMessageSendResultServerParamsNotSet, a.serverSent(t, id).Result, p+" result")
	}
	u := strings.Replace(hook.ts.URL, "http://", "http://user@", 1) + "/parley/ok"
	require.Equal(t, int(parley.UserMessageSendResultE2BSSendFailed), a.setParams(t, "sig", u), "user info")

	require.Equal(t, 200, a.setParams(t, "sig", hook.ts.URL+"/parley/ok"), "honest URL")
	id := a.e.SendServerMessage("hi")
	r := a.serverSent(t, id)
	require.Equal(t, parley.UserMessageSendResultSuccess, r.Result, "server message")
	require.Equal(t, "ack:hi", string(r.Ack))
	require.Equal(t, "/parley/ok", hook.req(t).Path, "the post")
	hook.requireNoReq(t) // nothing else reached the application server
}
