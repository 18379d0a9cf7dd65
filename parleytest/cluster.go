package parleytest

import (
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"go.uber.org/zap"

	"github.com/parleyhq/parley/server"
)

// natsReady bounds the wait for the embedded NATS server to accept
// connections.
const natsReady = 10 * time.Second

// Cluster is n servers, the nodes of one cluster, sharing one embedded
// NATS server (nats-server as a Go package, on 127.0.0.1 with an ephemeral
// port, JetStream off). Every node accepts the same app.
type Cluster struct {
	Nodes  []*Server // each with its own URL
	AppID  string    // a 24-character AppID, the same on every node
	AppKey string

	tb  testing.TB
	log *zap.Logger // nats-server's logs; nil: none

	mu   sync.Mutex
	nats *natsserver.Server // guarded by mu; nil while stopped
	port int                // guarded by mu; the NATS port, kept across StopNATS and StartNATS
}

// NewCluster starts an embedded NATS server and n nodes on 127.0.0.1, each
// with its own ephemeral TCP and UDP ports, and one app with a random ID
// and key, the same on every node. opts apply to every node's
// configuration; NATS and NodeID are then set: the embedded server's URL,
// and "node1" to "nodeN". A logger given with WithLogger gets the NATS
// server's logs too; without one, nothing is logged. It fails tb if
// anything cannot start. tb.Cleanup stops the nodes first (Close, unless
// the test closed or killed them), then the NATS server.
func NewCluster(tb testing.TB, n int, opts ...ServerOption) *Cluster {
	tb.Helper()
	if n < 1 {
		tb.Fatalf("parleytest: a cluster of %d nodes", n)
	}
	appID, appKey := newApp()
	base := server.Config{Apps: map[string]string{appID: appKey}}
	for _, o := range opts {
		o(&base)
	}
	c := &Cluster{AppID: appID, AppKey: appKey, tb: tb, log: base.Logger}
	if err := c.startNATS(-1); err != nil {
		tb.Fatalf("parleytest: NATS: %v", err)
	}
	tb.Cleanup(c.StopNATS) // before the nodes' cleanups are added: it runs after them
	url := c.NATSURL()
	for i := range n {
		cfg := base
		cfg.NATS = url
		cfg.NodeID = fmt.Sprintf("node%d", i+1)
		c.Nodes = append(c.Nodes, startServer(tb, cfg, appID, appKey))
	}
	return c
}

// Token returns a room token for userID in roomID with publish and
// subscribe privileges, valid for 24 hours, good on every node.
func (c *Cluster) Token(roomID, userID string) string {
	return mint(c.tb, c.AppID, c.AppKey, roomID, userID, time.Now().Add(24*time.Hour))
}

// LoginToken returns a login token (room "") for userID, valid 24 hours.
func (c *Cluster) LoginToken(userID string) string {
	return c.Token("", userID)
}

// URLs returns every node's signaling URL, in Nodes order: for
// parley.WithServerURLs.
func (c *Cluster) URLs() []string {
	urls := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		urls[i] = s.URL
	}
	return urls
}

// NATSURL is the embedded NATS server's URL, the nodes' Config.NATS: to
// start more nodes of the cluster. It stays the same across StopNATS and
// StartNATS.
func (c *Cluster) NATSURL() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("nats://127.0.0.1:%d", c.port)
}

// StopNATS shuts the embedded NATS server down and waits for it: every
// node loses the others, keeps serving its own clients, and reconnects
// once StartNATS has started it again. It does nothing while NATS is
// stopped.
func (c *Cluster) StopNATS() {
	c.mu.Lock()
	ns := c.nats
	c.nats = nil
	c.mu.Unlock()
	if ns != nil {
		ns.Shutdown()
		ns.WaitForShutdown()
	}
}

// StartNATS starts the embedded NATS server again, on the port it had: the
// nodes reconnect by themselves (within a second). It does nothing while
// NATS runs, and fails the test if it cannot start.
func (c *Cluster) StartNATS() {
	c.tb.Helper()
	c.mu.Lock()
	running, port := c.nats != nil, c.port
	c.mu.Unlock()
	if running {
		return
	}
	if err := c.startNATS(port); err != nil {
		c.tb.Fatalf("parleytest: restart NATS on port %d: %v", port, err)
	}
}

// startNATS starts the NATS server on port (-1: an ephemeral one).
func (c *Cluster) startNATS(port int) error {
	opts := &natsserver.Options{
		ServerName: "parleytest",
		Host:       "127.0.0.1",
		Port:       port,
		NoLog:      c.log == nil,
		NoSigs:     true,
		JetStream:  false,
	}
	ns, err := natsserver.NewServer(opts)
	if err != nil {
		return err
	}
	if c.log != nil {
		ns.SetLogger(natsLogger{c.log.Named("nats-server").Sugar()}, false, false)
	}
	ns.Start()
	if !ns.ReadyForConnections(natsReady) {
		ns.Shutdown()
		ns.WaitForShutdown()
		return fmt.Errorf("not ready within %v", natsReady)
	}
	c.mu.Lock()
	c.nats = ns
	c.port = ns.Addr().(*net.TCPAddr).Port
	c.mu.Unlock()
	return nil
}

// natsLogger writes nats-server's logs to zap. Its Fatalf only logs: the
// embedded server must not end the test process.
type natsLogger struct{ l *zap.SugaredLogger }

func (n natsLogger) Noticef(format string, v ...any) { n.l.Infof(format, v...) }
func (n natsLogger) Warnf(format string, v ...any)   { n.l.Warnf(format, v...) }
func (n natsLogger) Fatalf(format string, v ...any)  { n.l.Errorf(format, v...) }
func (n natsLogger) Errorf(format string, v ...any)  { n.l.Errorf(format, v...) }
func (n natsLogger) Debugf(format string, v ...any)  { n.l.Debugf(format, v...) }
func (n natsLogger) Tracef(format string, v ...any)  { n.l.Debugf(format, v...) }
