package server

import (
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/require"
)

// startNATS runs a NATS server on 127.0.0.1:port (-1: an ephemeral port),
// shut down in t.Cleanup (a test may shut it down before).
func startNATS(t *testing.T, port int) *natsserver.Server {
	t.Helper()
	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true})
	require.NoError(t, err)
	ns.Start()
	require.True(t, ns.ReadyForConnections(waitTimeout), "NATS ready")
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	return ns
}

// natsURL is the client URL of a NATS server on 127.0.0.1:port.
func natsURL(port int) string { return "nats://127.0.0.1:" + strconv.Itoa(port) }

func portOf(ns *natsserver.Server) int { return ns.Addr().(*net.TCPAddr).Port }

// startNode runs a loopback server of the test app, a node of the cluster
// on the NATS server at nats, shut down in t.Cleanup.
func startNode(t *testing.T, nats, node string) *Server {
	t.Helper()
	return startWith(t, Config{NATS: nats, NodeID: node})
}

// health is s's /healthz: its status and body.
func health(t *testing.T, s *Server) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + s.Addr().String() + "/healthz")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// natsGauge is s's parley_nats_connected, and whether s has it.
func natsGauge(t *testing.T, s *Server) (float64, bool) {
	t.Helper()
	mfs, err := s.metrics.reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == "parley_nats_connected" {
			return mf.GetMetric()[0].GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// requireInCluster requires s connected to NATS: /healthz ok, the gauge 1.
func requireInCluster(t *testing.T, s *Server) {
	t.Helper()
	code, body := health(t, s)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok\n", body)
	v, ok := natsGauge(t, s)
	require.True(t, ok, "parley_nats_connected registered")
	require.Equal(t, 1.0, v)
}

// waitCluster waits until s is (in) or is not (!in) connected to NATS, as
// /healthz and the gauge tell, and requires them to agree then.
func waitCluster(t *testing.T, s *Server, in bool) {
	t.Helper()
	require.Eventually(t, func() bool {
		_, body := health(t, s)
		return (body == "ok\n") == in
	}, waitTimeout, 5*time.Millisecond, "healthz ok: %v", in)
	if in {
		requireInCluster(t, s)
		return
	}
	code, body := health(t, s)
	require.Equal(t, http.StatusOK, code, "degraded is still 200")
	require.True(t, strings.HasPrefix(body, "degraded: NATS "), body)
	v, ok := natsGauge(t, s)
	require.True(t, ok)
	require.Equal(t, 0.0, v)
}

// TestSingleNode: a server without Config.NATS has no cluster and pays
// nothing for one: no NATS connection, no NATS metric, /healthz "ok".
func TestSingleNode(t *testing.T) {
	s := startServer(t)
	require.Nil(t, s.cluster)
	code, body := health(t, s)
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok\n", body)
	_, ok := natsGauge(t, s)
	require.False(t, ok, "no parley_nats_connected on a single node")
	require.Len(t, s.cfg.NodeID, 16, "a random node ID all the same")
}

// TestClusterNATS: a node connects to NATS at Start under its name, says
// so in /healthz and parley_nats_connected, reports degraded while NATS is
// down, comes back by itself, and leaves NATS on Shutdown.
func TestClusterNATS(t *testing.T) {
	ns := startNATS(t, -1)
	port := portOf(ns)
	s := startNode(t, natsURL(port), "n1")
	requireInCluster(t, s)
	conns, err := ns.Connz(&natsserver.ConnzOptions{})
	require.NoError(t, err)
	require.Len(t, conns.Conns, 1)
	require.Equal(t, "parleyd n1", conns.Conns[0].Name)

	ns.Shutdown()
	ns.WaitForShutdown()
	waitCluster(t, s, false)

	ns = startNATS(t, port)
	waitCluster(t, s, true)

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	require.NoError(t, s.Shutdown(ctx))
	require.Eventually(t, func() bool { return ns.NumClients() == 0 }, waitTimeout, 5*time.Millisecond, "the node left NATS")
}

// TestClusterStartWithoutNATS: a node whose NATS is not there yet starts
// all the same, serves its own clients, says degraded, and joins the
// cluster once NATS is up; a Shutdown while NATS is down is clean.
func TestClusterStartWithoutNATS(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close()) // nothing listens there now

	s := startNode(t, natsURL(port), "n1")
	waitCluster(t, s, false)
	p := newPeer(t, s)
	p.join("room1", "alice", false) // local members are served

	startNATS(t, port)
	waitCluster(t, s, true)

	other := startNode(t, natsURL(freePort(t)), "n2") // NATS never comes
	waitCluster(t, other, false)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	require.NoError(t, other.Shutdown(ctx))
}

// freePort is a loopback TCP port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close())
	return port
}

// TestClusterKill: a killed node's NATS connection is cut, not drained,
// and it never reconnects.
func TestClusterKill(t *testing.T) {
	ns := startNATS(t, -1)
	s := startNode(t, natsURL(portOf(ns)), "n1")
	requireInCluster(t, s)
	require.NoError(t, s.Kill())
	require.Eventually(t, func() bool { return ns.NumClients() == 0 }, waitTimeout, 5*time.Millisecond, "the node left NATS")
	require.True(t, s.cluster.nc.IsClosed())
	_, err := s.cluster.dialer.Dial("tcp", ns.Addr().String())
	require.ErrorIs(t, err, errNodeKilled, "no reconnect")
}

// TestClusterConfig: New checks Config.NATS and Config.NodeID, and keeps
// a NATS password out of its errors.
func TestClusterConfig(t *testing.T) {
	for _, tc := range []struct {
		nats, node string
		err        string // "" valid
	}{
		{"nats://127.0.0.1:4222", "node-1", ""},
		{"127.0.0.1:4222", "n_1", ""},
		{"nats://u:secret@127.0.0.1:4222, tls://b.example:4222", "", ""},
		{"ws://127.0.0.1:8080,wss://h:443", strings.Repeat("n", 64), ""},
		{"", "a.b", "illegal character '.'"},
		{"", "a@b", "illegal character '@'"},
		{"", "a b", "illegal character ' '"},
		{"", strings.Repeat("n", 65), "want 1 to 64"},
		{"http://127.0.0.1:4222", "n", `scheme "http"`},
		{"nats://", "n", "has no host"},
		{"nats://u:secret@:4222", "n", "has no host"},
		{"nats://127.0.0.1:4222,,nats://127.0.0.1:4223", "n", "empty entry"},
		{"nats://u:secret@127.0.0.1:4222,%zz", "n", "does not parse"},
	} {
		_, err := New(Config{Apps: map[string]string{testAppID: testAppKey}, NATS: tc.nats, NodeID: tc.node})
		if tc.err == "" {
			require.NoError(t, err, "%q %q", tc.nats, tc.node)
			continue
		}
		require.ErrorContains(t, err, tc.err, "%q %q", tc.nats, tc.node)
		require.NotContains(t, err.Error(), "secret")
	}
	require.Equal(t, "nats://u:xxxxx@h:1,nats://xxxxx@h:2,nats://h:3", redactURLs("nats://u:p@h:1,nats://tok@h:2, h:3"))
}

// TestSubjectToken: IDs become single subject tokens, distinct IDs
// distinct tokens, and app prefixes never meet the cluster's own subjects.
func TestSubjectToken(t *testing.T) {
	for in, want := range map[string]string{
		"room1":      "room1",
		"a_b-c@d":    "a_b-c@d",
		"a.b":        "a%2Eb",
		"a%2Eb":      "a%252Eb",
		"*":          "%2A",
		">":          "%3E",
		"x y\t":      "x%20y%09",
		"":           "%",
		"é":          "%C3%A9",
		"0123456789": "0123456789",
	} {
		got := subjectToken(in)
		require.Equal(t, want, got, "%q", in)
		require.GreaterOrEqual(t, len(got), len(in), "never shorter: no 24-character AppID becomes _node")
		require.False(t, strings.ContainsAny(got, ".*> \t\r\n"), "%q is one token", got)
	}
	seen := map[string]string{}
	for _, id := range []string{"a.b", "a%2Eb", "a%2eb", "a", "a.", "a%2E", "%", "", "%25"} {
		tok := subjectToken(id)
		prev, dup := seen[tok]
		require.False(t, dup, "%q and %q both give %q", prev, id, tok)
		seen[tok] = id
	}
	require.Equal(t, "parley.0123456789abcdef01234567.", appPrefix(testAppID))
	require.Equal(t, "parley._node.", nodeRoot)
}
