package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	clusterpb "github.com/parleyhq/parley/proto/parley/cluster/v1"
)

// A node with Config.NATS set is one node of a cluster: the nodes share a
// NATS server (or a NATS cluster) and nothing else. This file holds the
// node's connection to it; the cross-node routing builds on cluster.
//
// The connection never fails the node. A Start that cannot reach NATS
// serves its local members and keeps trying in the background; a node that
// loses NATS later keeps serving its local members, reconnects forever,
// and says so in /healthz ("degraded: ...") and in parley_nats_connected.
//
// # Subjects
//
// Every subject that carries an app's traffic starts with appPrefix(app),
// "parley.<app>.": two apps never share a subject, so no node ever gets
// one app's traffic on a subscription made for another's. Room, user and
// node names are subject tokens (subjectToken), escaped so that a room ID
// with a dot stays one token. The plan (names only; the routing decides
// what travels on each):
//
//	parley.<app>.room.<room>   a room's cross-node traffic: presence changes
//	                           (joins, leaves as Quit or Dropped), user
//	                           messages to its members, broadcasts, all on one
//	                           subject so that they keep their order; every
//	                           node with a member of the room subscribes
//	parley.<app>.user.<user>   one user's, wherever it is connected:
//	                           outside-room messages, login claims
//	                           (DuplicateLogin), online-status queries; the
//	                           node holding its login subscribes
//	parley.<app>.node.<node>   addressed to one node for one app: acks and
//	                           results of the messages its members sent,
//	                           answers to its queries
//	parley._node.<node>.…      the cluster's own, not an app's: node liveness
//	                           (heartbeats, so a crashed node is noticed in
//	                           bounded time), drain notices
//
// "_node" can never be an app's token: AppIDs are 24 characters (New
// checks), and subjectToken never shortens one.

// NATS connection settings. Reconnects never stop: a node outlives any
// NATS outage.
const (
	natsReconnectWait   = 500 * time.Millisecond // between tries, plus up to natsReconnectJitter
	natsReconnectJitter = 100 * time.Millisecond
	natsDialTimeout     = 2 * time.Second  // one try to reach one NATS server
	natsPingInterval    = 10 * time.Second // a silent connection is dropped after 2 unanswered pings
	natsMaxPingsOut     = 2
	natsCloseTimeout    = 5 * time.Second // Kill and a failed Shutdown wait this long for the close
)

// subjectRoot is the first token of every subject of Parley's; nodeRoot
// starts the subjects of the cluster itself (see the plan above).
const (
	subjectRoot = "parley"
	nodeRoot    = subjectRoot + "._node."
)

// cluster is a node's link to the other nodes: its NATS connection. A
// Server on its own (Config.NATS "") has none (Server.cluster is nil).
type cluster struct {
	node   string      // Config.NodeID: this node's name in subjects and logs
	urls   string      // Config.NATS
	log    *zap.Logger // named "nats"
	dialer *natsDialer
	bad    func() // counts a message from NATS that does not decode
	back   func() // runs when the connection is back after an outage (not at the first connect)
	nodes  *nodes // the other nodes, as their heartbeats tell

	// nc is set by connect, in Start, before anything else can use it,
	// and never changes after.
	nc *nats.Conn

	// ver numbers the node's room changes for the others (RoomJoin.ver):
	// it starts at the node's start time, so that a node restarted under
	// its ID goes on above what it said before.
	ver atomic.Uint64

	quit    chan struct{}  // closed as the node leaves (drain or kill): background work ends
	bg      sync.WaitGroup // background work: room syncs, re-announcements
	closed  chan struct{}  // closed by nats.go's closed handler, its last callback
	leaving atomic.Bool    // we close it: a disconnect is not news
}

// newCluster prepares the connection of node to urls; connect dials.
func newCluster(urls, node string, log *zap.Logger) *cluster {
	c := &cluster{
		node:   node,
		urls:   urls,
		log:    log.Named("nats"),
		dialer: &natsDialer{d: net.Dialer{Timeout: natsDialTimeout}},
		closed: make(chan struct{}),
		quit:   make(chan struct{}),
	}
	c.ver.Store(uint64(time.Now().UnixNano()))
	return c
}

// connect connects to NATS, or, if no NATS server answers now, returns at
// once with the connection reconnecting in the background. It fails only
// for a configuration nats.go refuses.
func (c *cluster) connect() error {
	nc, err := nats.Connect(c.urls,
		nats.Name("parleyd "+c.node),
		nats.NoEcho(), // a node never needs what it published itself
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(natsReconnectWait),
		nats.ReconnectJitter(natsReconnectJitter, natsReconnectJitter),
		nats.Timeout(natsDialTimeout),
		nats.PingInterval(natsPingInterval),
		nats.MaxPingsOutstanding(natsMaxPingsOut),
		nats.SetCustomDialer(c.dialer),
		nats.ConnectHandler(func(nc *nats.Conn) {
			c.log.Info("NATS connected", zap.String("url", nc.ConnectedUrlRedacted()), zap.String("server", nc.ConnectedServerName()))
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			c.log.Info("NATS connected", zap.String("url", nc.ConnectedUrlRedacted()), zap.String("server", nc.ConnectedServerName()))
			if c.back != nil {
				c.back()
			}
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if c.leaving.Load() {
				return
			}
			c.log.Warn("NATS disconnected: cross-node traffic stops until it is back; reconnecting", zap.Error(err))
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			c.log.Debug("NATS reconnect failed", zap.Error(err))
		}),
		nats.ClosedHandler(func(nc *nats.Conn) {
			if !c.leaving.Load() {
				// nats.go gave up (its server list emptied by
				// authorization errors): only a restart brings the
				// node back into the cluster.
				c.log.Error("NATS connection closed for good; the node serves only its local members until it is restarted", zap.Error(nc.LastError()))
			}
			close(c.closed)
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			fields := []zap.Field{zap.Error(err)}
			if sub != nil {
				fields = append(fields, zap.String("subject", sub.Subject))
			}
			c.log.Warn("NATS error", fields...)
		}),
		nats.LameDuckModeHandler(func(*nats.Conn) {
			c.log.Info("NATS server going away (lame duck mode); the connection moves to another")
		}),
	)
	if err != nil {
		return fmt.Errorf("server: NATS: %w", err)
	}
	c.nc = nc
	if !nc.IsConnected() {
		c.log.Warn("NATS not reachable yet: serving local members only, and retrying",
			zap.String("nats", redactURLs(c.urls)), zap.Error(nc.LastError()))
	}
	return nil
}

// goBackground runs f on a goroutine of its own, which the node's leaving
// waits for; f should end soon once quit is closed.
func (c *cluster) goBackground(f func()) {
	c.bg.Add(1)
	go func() {
		defer c.bg.Done()
		f()
	}()
}

// stopBackground ends the background work and waits for it.
func (c *cluster) stopBackground() {
	select {
	case <-c.quit:
	default:
		close(c.quit)
	}
	c.bg.Wait()
}

// nextVer is the version of the node's next room change.
func (c *cluster) nextVer() uint64 { return c.ver.Add(1) }

// connected reports whether the node can reach the other nodes now.
func (c *cluster) connected() bool {
	return c.nc != nil && c.nc.IsConnected()
}

// health is "" when connected, else why not, for /healthz.
func (c *cluster) health() string {
	if c.nc == nil {
		return "NATS not started"
	}
	st := c.nc.Status()
	if st == nats.CONNECTED {
		return ""
	}
	why := "NATS " + strings.ToLower(st.String())
	if err := c.nc.LastError(); err != nil {
		why += ": " + err.Error()
	}
	return why
}

// drain ends the connection gracefully: what the node published goes out,
// what its subscriptions hold is handled, then it closes; by ctx's
// deadline it is closed regardless. A connection that is not connected
// (NATS is down) just closes.
func (c *cluster) drain(ctx context.Context) error {
	if c.nc == nil {
		return nil
	}
	c.leaving.Store(true)
	c.stopBackground()
	err := c.nc.Drain()
	if errors.Is(err, nats.ErrConnectionReconnecting) || errors.Is(err, nats.ErrConnectionClosed) {
		err = nil // nothing to drain: Drain has closed it
	}
	select {
	case <-c.closed:
	case <-ctx.Done():
		c.nc.Close()
		err = errors.Join(err, fmt.Errorf("NATS drain: %w", ctx.Err()))
		c.waitClosed()
	}
	if err != nil {
		return fmt.Errorf("NATS: %w", err)
	}
	return nil
}

// kill drops the connection as a crash would: its socket closes first,
// so nothing still buffered goes out, and no reconnect is tried.
func (c *cluster) kill() {
	if c.nc == nil {
		return
	}
	c.leaving.Store(true)
	c.stopBackground()
	c.dialer.kill()
	c.nc.Close()
	c.waitClosed()
}

// waitClosed waits for nats.go's last callback, after which its
// goroutines end.
func (c *cluster) waitClosed() {
	select {
	case <-c.closed:
	case <-time.After(natsCloseTimeout):
		c.log.Error("NATS connection did not close in time")
	}
}

// natsDialer dials NATS for nats.go and keeps the connection it made, so
// that kill can cut it without the flush nats.go's Close does.
type natsDialer struct {
	d net.Dialer

	mu     sync.Mutex
	conn   net.Conn // the last connection dialed; guarded by mu
	killed bool     // no more dials; guarded by mu
}

var errNodeKilled = errors.New("server: node killed")

// Dial implements nats.CustomDialer.
func (d *natsDialer) Dial(network, address string) (net.Conn, error) {
	d.mu.Lock()
	killed := d.killed
	d.mu.Unlock()
	if killed {
		return nil, errNodeKilled
	}
	conn, err := d.d.Dial(network, address)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.killed {
		conn.Close()
		return nil, errNodeKilled
	}
	d.conn = conn
	return conn, nil
}

// kill closes the current connection and refuses further dials.
func (d *natsDialer) kill() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.killed = true
	if d.conn != nil {
		_ = d.conn.Close()
	}
}

// errNoNATS is the error of a send while the node cannot reach NATS.
var errNoNATS = errors.New("server: not connected to NATS")

// errNoResponders is the error of a request nobody subscribes to.
var errNoResponders = errors.New("server: no node answers")

// send publishes env on subject, from this node. It fails with errNoNATS
// while the node is not connected: nats.go would buffer it for a
// reconnect, and a message late by an outage is worse than a result that
// says it did not go (NoRelayPath).
func (c *cluster) send(subject string, env *clusterpb.Envelope) error {
	return c.sendReply(subject, "", env)
}

// sendReply is send with a reply subject (an answer to a request, or a
// message whose answer goes to reply).
func (c *cluster) sendReply(subject, reply string, env *clusterpb.Envelope) error {
	if !c.connected() {
		return errNoNATS
	}
	env.Node = c.node
	b, err := proto.Marshal(env)
	if err != nil {
		return err
	}
	return c.nc.PublishMsg(&nats.Msg{Subject: subject, Reply: reply, Data: b})
}

// request sends env on subject and waits for the first answer, until ctx
// ends. Nobody subscribed is errNoResponders at once.
func (c *cluster) request(ctx context.Context, subject string, env *clusterpb.Envelope) (*clusterpb.Envelope, error) {
	if !c.connected() {
		return nil, errNoNATS
	}
	env.Node = c.node
	b, err := proto.Marshal(env)
	if err != nil {
		return nil, err
	}
	msg, err := c.nc.RequestWithContext(ctx, subject, b)
	if errors.Is(err, nats.ErrNoResponders) {
		return nil, errNoResponders
	}
	if err != nil {
		return nil, err
	}
	return c.decode(msg)
}

// collect sends env on subject with a reply subject of its own and calls
// f with each answer, until f says it has enough (collect reports true),
// wait passes, or the node leaves. Several nodes may answer.
func (c *cluster) collect(subject string, env *clusterpb.Envelope, wait time.Duration, f func(*clusterpb.Envelope, *nats.Msg) bool) bool {
	inbox := c.nc.NewRespInbox()
	ch := make(chan *nats.Msg, 64)
	sub, err := c.nc.ChanSubscribe(inbox, ch)
	if err != nil {
		return false
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(-1, -1)
	if err := c.sendReply(subject, inbox, env); err != nil {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case msg := <-ch:
			if e, err := c.decode(msg); err == nil && f(e, msg) {
				return true
			}
		case <-t.C:
			return false
		case <-c.quit:
			return false
		}
	}
}

// decode reads an Envelope from NATS; one that does not decode is counted
// and dropped.
func (c *cluster) decode(msg *nats.Msg) (*clusterpb.Envelope, error) {
	if len(msg.Data) == 0 && msg.Header.Get("Status") != "" {
		return nil, errNoResponders // NATS's answer to a request nobody took
	}
	env, err := decodeEnvelope(msg.Data)
	if err != nil {
		if c.bad != nil {
			c.bad()
		}
		c.log.Debug("malformed message from NATS dropped", zap.String("subject", msg.Subject), zap.Error(err))
		return nil, err
	}
	return env, nil
}

// decodeEnvelope decodes b; an envelope without a body, or without the
// node that sent it, is an error.
func decodeEnvelope(b []byte) (*clusterpb.Envelope, error) {
	env := &clusterpb.Envelope{}
	if err := proto.Unmarshal(b, env); err != nil {
		return nil, err
	}
	if env.Body == nil {
		return nil, errors.New("envelope without a body")
	}
	if checkNodeID(env.Node) != nil {
		return nil, errors.New("envelope without a valid node")
	}
	return env, nil
}

// subscribe calls h, one message at a time in the order they came, with
// every message on subject that decodes. A subscription holds what it has
// not handled without limit: a message NATS dropped as the node's would be
// lost without a result. It lives until unsubscribed or the connection
// closes.
func (c *cluster) subscribe(subject string, h func(env *clusterpb.Envelope, msg *nats.Msg)) (*nats.Subscription, error) {
	sub, err := c.nc.Subscribe(subject, func(msg *nats.Msg) {
		env, err := c.decode(msg)
		if err != nil {
			return
		}
		h(env, msg)
	})
	if err != nil {
		return nil, err
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	return sub, nil
}

// appPrefix is the start of every subject of app's traffic:
// "parley.<app>.".
func appPrefix(app string) string {
	return subjectRoot + "." + subjectToken(app) + "."
}

// subjectToken makes s one NATS subject token: the characters of IDs that
// need no escaping (a-z A-Z 0-9 _ @ -) stay, every other byte becomes
// %XX, so that a room ID "a.b" is the token "a%2Eb", not two tokens, and
// no ID becomes a wildcard (* >). Distinct IDs give distinct tokens.
func subjectToken(s string) string {
	clean := true
	for i := 0; i < len(s) && clean; i++ {
		clean = plainSubjectByte(s[i])
	}
	if clean && s != "" {
		return s
	}
	if s == "" {
		return "%" // an empty token is not a subject; nothing else escapes to "%"
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); i++ {
		if c := s[i]; plainSubjectByte(c) {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xF])
		}
	}
	return b.String()
}

func plainSubjectByte(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return c == '_' || c == '@' || c == '-'
}

// checkNATS checks Config.NATS: one URL or several, comma-separated (the
// servers of one NATS cluster), each nats://, tls://, ws:// or wss://, or
// a bare host:port (nats://).
func checkNATS(urls string) error {
	for raw := range strings.SplitSeq(urls, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			return fmt.Errorf("server: NATS URL list %q has an empty entry", redactURLs(urls))
		}
		s := raw
		if !strings.Contains(s, "://") {
			s = "nats://" + s
		}
		u, err := url.Parse(s)
		if err != nil { // its text holds the URL, secrets and all
			return fmt.Errorf("server: NATS URL %q does not parse", redactURL(raw))
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("server: NATS URL %q: scheme %q is not nats, tls, ws or wss", redactURL(raw), u.Scheme)
		}
		if u.Hostname() == "" {
			return fmt.Errorf("server: NATS URL %q has no host", redactURL(raw))
		}
	}
	return nil
}

// checkNodeID checks Config.NodeID: one subject token of at most 64
// characters of a-z A-Z 0-9 _ -, so that it stands in subjects as it is.
func checkNodeID(id string) error {
	if id == "" || len(id) > 64 {
		return fmt.Errorf("server: node ID %q: want 1 to 64 characters", id)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c == '@' || !plainSubjectByte(c) {
			return fmt.Errorf("server: node ID %q has illegal character %q (allowed: a-z A-Z 0-9 _ -)", id, c)
		}
	}
	return nil
}

// redactURLs is a NATS URL list with the secrets taken out, for logs and
// errors: a password, or a token in the user part.
func redactURLs(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		parts[i] = redactURL(strings.TrimSpace(p))
	}
	return strings.Join(parts, ",")
}

func redactURL(raw string) string {
	s := raw
	if !strings.Contains(s, "://") {
		s = "nats://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "xxxxx")
		} else {
			u.User = url.User("xxxxx") // nats://TOKEN@host
		}
	}
	return u.Redacted()
}

// The subjects of the plan above.
func roomSubject(app, room string) string { return appPrefix(app) + "room." + subjectToken(room) }
func userSubject(app, user string) string { return appPrefix(app) + "user." + subjectToken(user) }
func nodeSubject(app, node string) string { return appPrefix(app) + "node." + node }
func syncSubject(app string) string       { return appPrefix(app) + "sync" }
func heartbeatSubject(node string) string { return nodeRoot + node + ".hb" }
func byeSubject(node string) string       { return nodeRoot + node + ".bye" }
