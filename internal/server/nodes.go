package server

import (
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	clusterpb "github.com/parleyhq/parley/proto/parley/cluster/v1"
)

// Node liveness. Every node publishes a Heartbeat on its own subject every
// Config.NodeHeartbeat and listens to everyone's; a node not heard from
// for nodeDeadAfter heartbeats is dead (crashed, or cut off from NATS):
// the others drop its members (Dropped) and fail what was in flight to it.
// A node that shuts down says Bye first: its members are moving, and the
// others keep them for the grace period.
//
// A node that is itself cut off from NATS hears nobody: it declares nobody
// dead while it is, and gives everyone a fresh nodeDeadAfter once it is
// back.

// nodeDeadAfter is how many heartbeat intervals of silence make a node
// dead.
const nodeDeadAfter = 3

// nodes is what a node knows of the others.
type nodes struct {
	c        *cluster
	interval time.Duration
	started  int64 // this node's start, unix nanoseconds
	grace    time.Duration
	log      *zap.Logger

	// down is told of a node that is gone: graceful for a Bye (with the
	// rooms and members it named), else dead. Set before start.
	down func(node string, graceful bool, rooms []*clusterpb.MovingRoom)
	// rooms lists this node's members, by room, for its Bye. Set before
	// start.
	rooms func() []*clusterpb.MovingRoom

	mu   sync.Mutex
	seen map[string]*nodeSeen // by node ID; guarded by mu

	stop chan struct{}
	done chan struct{}
}

type nodeSeen struct {
	started  int64
	last     time.Time
	interval time.Duration
}

func newNodes(c *cluster, interval, grace time.Duration, log *zap.Logger) *nodes {
	return &nodes{
		c: c, interval: interval, grace: grace, log: log,
		started: time.Now().UnixNano(),
		seen:    make(map[string]*nodeSeen),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// start subscribes to the others' heartbeats and starts this node's.
func (n *nodes) start() error {
	if _, err := n.c.subscribe(nodeRoot+"*.*", n.onMessage); err != nil {
		return err
	}
	n.hello()
	go n.run()
	return nil
}

// helloWait bounds how long a starting node waits for the others to
// answer its first heartbeat.
const helloWait = 200 * time.Millisecond

// hello sends the node's first heartbeat with a reply subject, which the
// others answer with theirs: a node that just started knows the cluster
// before its first client comes, rather than a heartbeat later (a room's
// roster sync asks the nodes it knows). A node that does not answer within
// helloWait is learned from its next heartbeat.
func (n *nodes) hello() {
	if !n.c.connected() {
		return
	}
	n.c.collect(heartbeatSubject(n.c.node), n.heartbeat(), helloWait, func(env *clusterpb.Envelope, msg *nats.Msg) bool {
		n.onMessage(env, msg)
		return false // however many answer
	})
}

func (n *nodes) heartbeat() *clusterpb.Envelope {
	return &clusterpb.Envelope{Body: &clusterpb.Envelope_Heartbeat{Heartbeat: &clusterpb.Heartbeat{
		IntervalMs: uint32(n.interval / time.Millisecond), Started: n.started,
	}}}
}

// byeWait bounds how long a leaving node waits for the others to answer
// its Bye, and then for its subscriptions to handle what came before the
// answers.
const byeWait = time.Second

// close stops the heartbeats; with bye, the others hear that this node
// leaves gracefully, and close returns once every live node has answered
// (or byeWait has passed) and this node has handled all they sent before
// they answered. A node answers once the proxies of this node's members
// are moving, so what it sends them after its answer it keeps for their
// next node; close returns with what it sent before in this node's hands
// (see Server.settleMoving).
func (n *nodes) close(bye bool) {
	select {
	case <-n.stop:
		return
	default:
	}
	close(n.stop)
	<-n.done
	if !bye || !n.c.connected() {
		return
	}
	want := n.count()
	b := &clusterpb.Bye{GraceMs: uint32(n.grace / time.Millisecond)}
	if n.rooms != nil {
		b.Rooms = n.rooms()
	}
	if all := len(b.Rooms); !fitBye(b, n.c.nc.MaxPayload()) {
		n.log.Warn("leaving: the Bye names only some rooms (NATS max payload)", zap.Int("rooms", len(b.Rooms)), zap.Int("of", all))
	}
	env := &clusterpb.Envelope{Body: &clusterpb.Envelope_Bye{Bye: b}}
	if want == 0 {
		_ = n.c.send(byeSubject(n.c.node), env)
		return
	}
	got := 0
	n.c.collect(byeSubject(n.c.node), env, byeWait, func(*clusterpb.Envelope, *nats.Msg) bool {
		got++
		return got >= want
	})
	if got < want {
		n.log.Warn("leaving: not every node answered the Bye in time", zap.Int("answered", got), zap.Int("nodes", want))
	}
	// What the others sent before their answers came in on this node's
	// other subscriptions: a barrier runs once each has handled its share.
	handled := make(chan struct{})
	if err := n.c.nc.Barrier(func() { close(handled) }); err != nil {
		return
	}
	select {
	case <-handled:
	case <-time.After(byeWait):
	}
}

func (n *nodes) run() {
	defer close(n.done)
	t := time.NewTicker(n.interval)
	defer t.Stop()
	for {
		select {
		case <-n.stop:
			return
		case <-t.C:
			n.beat()
			n.check()
		}
	}
}

func (n *nodes) beat() {
	_ = n.c.send(heartbeatSubject(n.c.node), n.heartbeat())
}

// check declares the nodes silent for too long dead, unless this node is
// the one cut off.
func (n *nodes) check() {
	if !n.c.connected() {
		return
	}
	now := time.Now()
	var dead []string
	n.mu.Lock()
	for id, s := range n.seen {
		if now.Sub(s.last) > nodeDeadAfter*s.interval {
			delete(n.seen, id)
			dead = append(dead, id)
		}
	}
	n.mu.Unlock()
	for _, id := range dead {
		n.log.Warn("node silent: its members are dropped", zap.String("peer", id))
		n.down(id, false, nil)
	}
}

// reconnected gives every known node a fresh deadline: while this node was
// cut off it heard nobody, and that says nothing of them.
func (n *nodes) reconnected() {
	now := time.Now()
	n.mu.Lock()
	for _, s := range n.seen {
		s.last = now
	}
	n.mu.Unlock()
}

// alive reports whether node is known and alive.
func (n *nodes) alive(node string) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.seen[node]
	return ok
}

// count is the number of other nodes alive.
func (n *nodes) count() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.seen)
}

func (n *nodes) onMessage(env *clusterpb.Envelope, msg *nats.Msg) {
	if env.Node == n.c.node {
		return
	}
	switch b := env.Body.(type) {
	case *clusterpb.Envelope_Heartbeat:
		if msg.Reply != "" { // a node saying hello
			_ = n.c.sendReply(msg.Reply, "", n.heartbeat())
		}
		iv := time.Duration(b.Heartbeat.IntervalMs) * time.Millisecond
		if iv <= 0 {
			iv = n.interval
		}
		n.mu.Lock()
		s := n.seen[env.Node]
		restarted := s != nil && s.started != b.Heartbeat.Started
		if s == nil || restarted {
			s = &nodeSeen{started: b.Heartbeat.Started}
			n.seen[env.Node] = s
		}
		s.last, s.interval = time.Now(), iv
		n.mu.Unlock()
		if restarted {
			// The node restarted under its ID: what the others held of its
			// last run is gone with it.
			n.log.Info("node restarted", zap.String("peer", env.Node))
			n.down(env.Node, false, nil)
		}
	case *clusterpb.Envelope_Bye:
		n.mu.Lock()
		_, known := n.seen[env.Node]
		delete(n.seen, env.Node)
		n.mu.Unlock()
		n.log.Info("node leaving: its members are moving", zap.String("peer", env.Node), zap.Bool("known", known))
		n.down(env.Node, true, b.Bye.GetRooms())
		if msg.Reply != "" {
			_ = n.c.sendReply(msg.Reply, "", n.heartbeat()) // the node waits for it (close)
		}
	}
}
