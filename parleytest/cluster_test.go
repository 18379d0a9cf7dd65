package parleytest_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
	"github.com/parleyhq/parley/token"
)

// get fetches url on a connection of its own (goleak): status and body,
// or the error of a server that is not there.
func get(url string) (int, string, error) {
	c := &http.Client{Timeout: parleytest.DefaultTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// nodeState is a node's /healthz body and its parley_nats_connected line.
func nodeState(t *testing.T, s *parleytest.Server) (health, gauge string) {
	t.Helper()
	base := "http://" + s.Server().Addr().String()
	code, health, err := get(base + "/healthz")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code, "/healthz is 200, degraded or not")
	code, metrics, err := get(base + "/metrics")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, code)
	for line := range strings.Lines(metrics) {
		if strings.HasPrefix(line, "parley_nats_connected ") {
			return health, strings.TrimSpace(line)
		}
	}
	t.Fatalf("no parley_nats_connected in /metrics")
	return "", ""
}

// waitNodes waits until every node of c is in the cluster (in) or
// degraded (!in), as /healthz and parley_nats_connected both say.
func waitNodes(t *testing.T, c *parleytest.Cluster, in bool) {
	t.Helper()
	want := "parley_nats_connected 0"
	if in {
		want = "parley_nats_connected 1"
	}
	for i, s := range c.Nodes {
		require.Eventually(t, func() bool {
			health, gauge := nodeState(t, s)
			if in {
				return health == "ok\n" && gauge == want
			}
			return strings.HasPrefix(health, "degraded: NATS ") && gauge == want
		}, parleytest.DefaultTimeout, 5*time.Millisecond, "node %d in the cluster: %v", i+1, in)
	}
}

// TestNewCluster: three reachable nodes of one app, each in the cluster;
// a NATS outage makes each say degraded, and they come back by themselves.
func TestNewCluster(t *testing.T) {
	c := parleytest.NewCluster(t, 3)
	require.Len(t, c.Nodes, 3)
	require.Len(t, c.AppID, 24)
	urls := c.URLs()
	require.Len(t, urls, 3)
	seen := map[string]bool{}
	for i, s := range c.Nodes {
		require.Equal(t, s.URL, urls[i])
		require.True(t, strings.HasPrefix(s.URL, "ws://127.0.0.1:"), s.URL)
		require.False(t, seen[s.URL], "each node has its own address")
		seen[s.URL] = true
		require.Equal(t, c.AppID, s.AppID)
		require.Equal(t, c.AppKey, s.AppKey)
	}
	for _, raw := range []string{c.Token("room1", "alice"), c.LoginToken("alice")} {
		tok, err := token.Parse(raw)
		require.NoError(t, err)
		require.Equal(t, c.AppID, tok.AppID)
		require.True(t, tok.Verify(c.AppKey))
	}
	require.True(t, strings.HasPrefix(c.NATSURL(), "nats://127.0.0.1:"), c.NATSURL())
	for _, s := range c.Nodes {
		health, gauge := nodeState(t, s)
		require.Equal(t, "ok\n", health)
		require.Equal(t, "parley_nats_connected 1", gauge)
	}
	// Every node serves the cluster's app: a member joins on each.
	for i, url := range urls {
		rec := parleytest.NewRecorder()
		e, err := parley.NewEngine(parley.EngineConfig{AppID: c.AppID, ServerURL: url}, rec, parley.WithLoopbackOnly())
		require.NoError(t, err)
		t.Cleanup(func() {
			require.NoError(t, e.Close())
			<-e.Done()
		})
		room, err := e.CreateRoom("room1", rec)
		require.NoError(t, err)
		user := "u" + string(rune('1'+i))
		require.NoError(t, room.JoinRoom(c.Token("room1", user), parley.UserInfo{UserID: user}, parley.RoomConfig{}))
		require.Equal(t, 0, rec.NextRoomState(t).State, "join on node %d", i+1)
	}

	url := c.NATSURL()
	c.StopNATS()
	waitNodes(t, c, false)
	c.StartNATS()
	require.Equal(t, url, c.NATSURL(), "the same address")
	waitNodes(t, c, true)
}

// TestKill: a killed node is gone at once, its members reconnect, and the
// other nodes do not mind; the cleanup after a Kill is quiet. The logger
// given gets the nodes' logs and the NATS server's.
func TestKill(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	c := parleytest.NewCluster(t, 2, parleytest.WithLogger(zap.New(core)))
	require.NotEmpty(t, logs.FilterLoggerName("nats-server").FilterMessage("Server is ready").All())
	for _, node := range []string{"node1", "node2"} { // logged by nats.go's callback goroutine
		require.Eventually(t, func() bool {
			return logs.FilterMessage("NATS connected").FilterField(zap.String("node", node)).Len() == 1
		}, parleytest.DefaultTimeout, time.Millisecond, node)
	}
	rec := parleytest.NewRecorder()
	e, err := parley.NewEngine(parley.EngineConfig{AppID: c.AppID, ServerURL: c.Nodes[0].URL}, rec, parley.WithLoopbackOnly())
	require.NoError(t, err)
	t.Cleanup(func() {
		require.NoError(t, e.Close())
		<-e.Done()
	})
	room, err := e.CreateRoom("room1", rec)
	require.NoError(t, err)
	require.NoError(t, room.JoinRoom(c.Token("room1", "alice"), parley.UserInfo{UserID: "alice"}, parley.RoomConfig{}))
	require.Equal(t, 0, rec.NextRoomState(t).State)
	addr := c.Nodes[0].Server().Addr().String()

	c.Nodes[0].Kill()
	rec.WaitState(t, parley.ConnectionStateReconnecting)
	_, _, err = get("http://" + addr + "/healthz")
	require.Error(t, err, "nothing listens on a killed node's address")
	health, gauge := nodeState(t, c.Nodes[1])
	require.Equal(t, "ok\n", health)
	require.Equal(t, "parley_nats_connected 1", gauge)
	c.Nodes[0].Kill() // a second time: nothing
	c.Nodes[0].Close()
}
