package server

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/parleyhq/parley/internal/transport"
	clusterpb "github.com/parleyhq/parley/proto/parley/cluster/v1"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// Rooms across nodes. A node with members in a room subscribes to the
// room's subject and keeps the members of the other nodes in the room as
// proxies: members with a node and no session, in the same map and roster
// as its own, so that presence, member lists and lookups work as on one
// node. A proxy is made and removed by what its node says on the room's
// subject (RoomJoin, RoomLeave) and by the node's liveness (nodes.go).
//
//   - A user message to a proxy goes to the room's subject as a Delivery
//     for that member (to, to_joined); for the reliable channel the proxy
//     keeps it (its retention) until the receiver's node passes the ack on
//     (DeliveryAck, on the sender's node's subject): Success stays end to
//     end. A proxy that leaves fails what it holds (NoReceiver; a dead
//     node's, NoRelayPath).
//   - A broadcast goes once to the room's subject; each node hands it to
//     its own members.
//   - So everything a node says about a room, presence and messages alike,
//     travels on the room's one subject, and the other nodes handle it on
//     the one goroutine of their subscription, in the order it was said: a
//     sender's reliable messages, user messages and broadcasts mixed, reach
//     a receiver in the order of their IDs (the receiving SDK drops one
//     below the last it had as a duplicate), and a member's messages come
//     after its join and before its leave.
//   - A node that says Bye leaves its proxies moving: they hold the
//     reliable messages sent to them for the grace period, user messages
//     and broadcasts (whose copy on the room's subject the others skip for
//     them: keepForMoving), and a join of the same user on another node
//     takes the proxy over quietly (no presence change) and gets them, in
//     order; the receiving SDK drops the ones it had (Room.seenBefore).
//
// The first local member of a room waits, before it is active, for the
// room's roster: every live node answers a RoomSync with its members, and
// the room's events that come meanwhile are applied after. So a member
// list is the room's, not the node's.

// syncTimeout bounds the wait for the other nodes' rosters.
const syncTimeout = 2 * time.Second

// remoteRoom is a room's cross-node state on a node of a cluster.
type remoteRoom struct {
	r   *room
	c   *cluster
	sub *nats.Subscription // the room's subject; set once subscribed

	ready     chan struct{} // closed when the first roster is in
	readyOnce sync.Once

	// fence is held for reading by a broadcast from its choice of
	// receivers (room.receivers) to its publish, and for writing while a
	// leaving node's proxies start moving: the answer to its Bye then
	// comes after every broadcast of this node's that was not kept for
	// them (nodes.close). Taken before r.mu.
	fence sync.RWMutex

	// Guarded by r.mu.
	vers    map[string]uint64     // by node: the version of its last change applied
	syncing bool                  // a sync runs: the room's events wait in held
	held    []*clusterpb.Envelope // events that came during a sync
	proxies int                   // proxies in r.members
	moving  map[*member]struct{}  // the proxies of moving members (movingLocked): broadcasts are kept for them
	outs    map[outKey]*outbox    // the outboxes of remote senders of reliable messages to members here
	gone    bool                  // the room was released: no more syncs, no more events
}

// outKey names a remote sender of reliable user messages: its node and
// user ID.
type outKey struct{ node, user string }

func newRemoteRoom(r *room, c *cluster) *remoteRoom {
	return &remoteRoom{r: r, c: c, ready: make(chan struct{}), vers: make(map[string]uint64), outs: make(map[outKey]*outbox), moving: make(map[*member]struct{})}
}

// open subscribes to the room's subject and syncs its roster, in the
// background: the room's members activate once it is done (wait).
func (x *remoteRoom) open() {
	x.c.goBackground(func() {
		defer x.readyOnce.Do(func() { close(x.ready) })
		sub, err := x.c.subscribe(roomSubject(x.r.key.app, x.r.id), x.onRoomMessage)
		if err != nil {
			x.r.srv.log.Warn("room: NATS subscribe", zap.String("room", x.r.id), zap.Error(err))
			return
		}
		x.r.mu.Lock()
		x.sub = sub
		gone := x.gone
		x.r.mu.Unlock()
		if gone {
			_ = sub.Unsubscribe()
			return
		}
		x.sync()
	})
}

// wait waits for the room's first roster (or syncTimeout).
func (x *remoteRoom) wait() {
	select {
	case <-x.ready:
	case <-time.After(syncTimeout + time.Second):
	case <-x.c.quit:
	}
}

// close unsubscribes: the room has no local member left.
func (x *remoteRoom) close() {
	x.r.mu.Lock()
	x.gone = true
	sub := x.sub
	x.r.mu.Unlock()
	if sub != nil {
		_ = sub.Unsubscribe()
	}
}

// sync asks every node for its members of the room and applies the
// answers, then the events that came meanwhile.
func (x *remoteRoom) sync() {
	r := x.r
	r.mu.Lock()
	if x.syncing || x.gone {
		r.mu.Unlock()
		return
	}
	x.syncing = true
	r.mu.Unlock()
	rosters := x.c.gather(r.key.app, &clusterpb.Envelope{Body: &clusterpb.Envelope_Sync{Sync: &clusterpb.RoomSync{Room: r.id}}})
	movers := r.srv.moversOf(r.key)
	r.mu.Lock()
	r.srv.log.Debug("room synced", zap.String("room", r.id), zap.Int("nodes", len(rosters)), zap.Int("held", len(x.held)))
	for node, env := range rosters {
		ro := env.GetRoster()
		if ro == nil {
			continue
		}
		x.applyRosterLocked(node, ro)
	}
	for _, mr := range movers { // after the rosters: who is on a node now is not moving
		x.seedMovingLocked(mr.node, mr.members)
	}
	held := x.held
	x.held, x.syncing = nil, false
	for _, env := range held {
		x.applyLocked(env)
	}
	r.mu.Unlock()
}

// onRoomMessage handles what another node says on the room's subject.
func (x *remoteRoom) onRoomMessage(env *clusterpb.Envelope, _ *nats.Msg) {
	if d := env.GetDelivery(); d != nil {
		if d.To == "" {
			x.r.srv.deliverBroadcast(x.r, env.Node, d)
		} else {
			x.r.srv.deliverUser(x.r, env.Node, d)
		}
		return
	}
	x.r.mu.Lock()
	defer x.r.mu.Unlock()
	if x.gone {
		return
	}
	if x.syncing {
		x.held = append(x.held, env)
		return
	}
	x.applyLocked(env)
}

// applyLocked applies a RoomJoin or RoomLeave, unless its node's version
// says it is applied already.
func (x *remoteRoom) applyLocked(env *clusterpb.Envelope) {
	switch b := env.Body.(type) {
	case *clusterpb.Envelope_Join:
		if b.Join.Member == nil || !x.newerLocked(env.Node, b.Join.Ver) {
			return
		}
		x.joinLocked(env.Node, b.Join.Member)
	case *clusterpb.Envelope_Leave:
		if !x.newerLocked(env.Node, b.Leave.Ver) {
			return
		}
		x.leaveLocked(env.Node, b.Leave)
	}
}

func (x *remoteRoom) newerLocked(node string, ver uint64) bool {
	if ver <= x.vers[node] {
		return false
	}
	x.vers[node] = ver
	return true
}

// applyRosterLocked makes node's proxies what its roster says.
func (x *remoteRoom) applyRosterLocked(node string, ro *clusterpb.RoomRoster) {
	if ro.Ver < x.vers[node] {
		return // older than what is applied
	}
	x.vers[node] = ro.Ver
	in := make(map[string]bool, len(ro.Members))
	for _, m := range ro.Members {
		in[m.UserId] = true
		x.joinLocked(node, m)
	}
	for _, m := range x.r.members {
		if m.node == node && !in[m.userID] {
			x.removeProxyLocked(m, reasonDropped, resultNoReceiver)
		}
	}
}

// later reports whether a member that joined at (t1, node1) is later than
// one that joined at (t2, node2): the later one of a user ID stays.
func later(t1 int64, node1 string, t2 int64, node2 string) bool {
	if t1 != t2 {
		return t1 > t2
	}
	return node1 > node2
}

// joinLocked adds or takes over the proxy of a member of node.
func (x *remoteRoom) joinLocked(node string, pm *clusterpb.Member) {
	r := x.r
	if checkIDs(r.id, pm.UserId, pm.ExtraInfo) != nil {
		return
	}
	old := r.members[pm.UserId]
	switch {
	case old == nil:
	case old.node == node && old.joined == pm.Joined:
		return // known
	case old.node != "" && old.state == stateSuspended:
		// A member of a node that left, moving here: the same proxy, on
		// its new node; what it holds goes there now.
		old.moveTo(node, pm.Joined)
		return
	case !later(pm.Joined, node, old.joined, old.nodeName()):
		return // the member here is the later one; node drops its own when it hears of it
	case old.node != "":
		x.removeProxyLocked(old, reasonDropped, resultNoReceiver)
	default:
		// A local member of the same user ID, replaced by a later join on
		// another node: -1004 to it, Dropped to the rest.
		r.replaceLocked(old)
		defer func() {
			old.log.Info("replaced by a later join of the same user on another node", zap.String("peer", node))
			go old.finish()
		}()
	}
	p := newProxy(r, node, pm)
	r.seq++
	p.seq = r.seq
	p.state = stateActive
	r.members[p.userID] = p
	x.proxies++
	r.joinedLocked(p)
}

// leaveLocked removes the proxy that left.
func (x *remoteRoom) leaveLocked(node string, l *clusterpb.RoomLeave) {
	p := x.r.members[l.UserId]
	if p == nil || p.node != node || p.joined != l.Joined {
		return
	}
	if l.Moving {
		x.r.movingLocked(p)
		return
	}
	reason := int32(reasonQuit)
	if l.Reason == reasonDropped {
		reason = reasonDropped
	}
	x.removeProxyLocked(p, reason, resultNoReceiver)
}

// removeProxyLocked takes proxy p out of the room: the rest hear reason,
// and the reliable messages it holds fail with code.
func (x *remoteRoom) removeProxyLocked(p *member, reason, code int32) {
	r := x.r
	if p.state == stateGone {
		return
	}
	p.state = stateGone
	if p.grace != nil {
		p.grace()
		p.grace = nil
	}
	delete(r.members, p.userID)
	delete(x.moving, p)
	x.proxies--
	r.leftLocked(p, reason, !r.srv.shuttingDown())
	go p.retain.failAll(code) // takes the proxy's wmu and the senders' outboxes: not under r.mu
}

// nodeDownLocked handles the loss of node: its proxies move (graceful) or
// are dropped.
func (x *remoteRoom) nodeDownLocked(node string, graceful bool) {
	delete(x.vers, node)
	for k := range x.outs {
		if k.node == node {
			delete(x.outs, k)
		}
	}
	for _, m := range x.r.members {
		if m.node != node {
			continue
		}
		if graceful {
			x.r.movingLocked(m)
		} else {
			x.removeProxyLocked(m, reasonDropped, resultNoRelayPath)
		}
	}
}

// remoteOutbox is the outbox of node's user sender for its reliable
// messages to members here: acks go back to node. Results are node's to
// decide (by the receiver's presence), so none is sent from here.
func (x *remoteRoom) remoteOutbox(node, sender string) *outbox {
	x.r.mu.Lock()
	defer x.r.mu.Unlock()
	k := outKey{node, sender}
	if o := x.outs[k]; o != nil {
		return o
	}
	app, room := x.r.key.app, x.r.id
	o := &outbox{
		result: func(int64, int32) {},
		ack: func(peer string, upTo int64) {
			_ = x.c.send(nodeSubject(app, node), &clusterpb.Envelope{Body: &clusterpb.Envelope_Ack{Ack: &clusterpb.DeliveryAck{
				Room: room, Sender: sender, Receiver: peer, UpTo: upTo,
			}}})
		},
	}
	x.outs[k] = o
	return o
}

// newProxy is the proxy of member pm of node in r.
func newProxy(r *room, node string, pm *clusterpb.Member) *member {
	return &member{
		room:      r,
		node:      node,
		proxy:     true,
		joined:    pm.Joined,
		userID:    pm.UserId,
		extraInfo: pm.ExtraInfo,
		pbInfo:    &pb.Member{UserId: pm.UserId, ExtraInfo: pm.ExtraInfo},
		log:       r.srv.log.WithLazy(zap.String("room", r.id), zap.String("user", pm.UserId), zap.String("peer", node)),
		retain:    retention{user: pm.UserId},
	}
}

// nodeName is the node m is on: its own for a local member.
func (m *member) nodeName() string {
	if m.node != "" {
		return m.node
	}
	return m.room.srv.cfg.NodeID
}

// movingLocked keeps proxy p, whose node left, for the grace period: a
// join of its user elsewhere takes it over; else it is dropped.
func (r *room) movingLocked(p *member) {
	if p.state != stateActive {
		return
	}
	p.state = stateSuspended
	r.remote.moving[p] = struct{}{}
	p.grace = r.srv.cfg.Clock.AfterFunc(r.srv.cfg.GracePeriod, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if p.state == stateSuspended && r.remote != nil {
			r.remote.removeProxyLocked(p, reasonDropped, resultNoReceiver)
		}
	})
}

// moveTo puts moving proxy p on node, as the member that joined there at
// joined: the reliable messages it holds go there, in order, before any
// new one. Called with room.mu held.
func (p *member) moveTo(node string, joined int64) {
	if p.grace != nil {
		p.grace()
		p.grace = nil
	}
	delete(p.room.remote.moving, p)
	p.wmu.Lock()
	p.node, p.joined, p.state = node, joined, stateActive
	p.retain.each(func(e retained) { p.sendRemote(e) })
	p.wmu.Unlock()
	p.log.Info("member moved to another node", zap.String("to", node))
}

// sendRemote writes e to proxy p's member on its node. Called with p.wmu
// held. (p.joined changes under both room.mu and wmu.)
func (p *member) sendRemote(e retained) error {
	return p.publish(p.joined, transport.ChannelReliable, e.sender, e.id, e.b)
}

// publish sends packet b of sender's message id, for channel ch, to proxy
// p's member that joined at joined: on the room's subject, in order with
// the rest of what this node says about the room.
func (p *member) publish(joined int64, ch int, sender string, id int64, b []byte) error {
	r := p.room
	return r.remote.c.send(roomSubject(r.key.app, r.id), &clusterpb.Envelope{Body: &clusterpb.Envelope_Delivery{Delivery: &clusterpb.Delivery{
		Room: r.id, To: p.userID, From: sender, MsgId: id, Channel: uint32(ch), Packet: b, ToJoined: joined,
	}}})
}

// deliverRemote sends a reliable user message to proxy p's node and keeps
// it until the receiver's ack comes back, or, while p moves, for its next
// node. It reports false (nothing kept) when p is gone, when it holds
// MemberQueue bytes already, or when NATS is out of reach.
func (p *member) deliverRemote(e retained) bool {
	r := p.room
	r.mu.Lock()
	state, node := p.state, p.node
	r.mu.Unlock()
	if state == stateGone {
		return false
	}
	e.cost = len(e.b)
	p.wmu.Lock()
	defer p.wmu.Unlock()
	if _, ok, _ := p.retain.add(e, r.srv.cfg.MemberQueue); !ok {
		return false
	}
	if state == stateSuspended {
		return true // for its next node
	}
	if err := p.sendRemote(e); err != nil {
		p.retain.settleOne(e.sender, e.id)
		p.log.Debug("cross-node delivery failed", zap.String("peer", node), zap.Error(err))
		return false
	}
	return true
}

// sendUnreliable sends b to proxy p's node on channel ch.
func (p *member) sendUnreliable(ch int, sender string, id int64, b []byte) bool {
	r := p.room
	r.mu.Lock()
	active, joined := p.state == stateActive, p.joined
	r.mu.Unlock()
	if !active {
		return false
	}
	return p.publish(joined, ch, sender, id, b) == nil
}

// takeOverLocked puts local member m, joining, in the place of moving
// proxy p of its user: the same place in the roster (the others hear
// nothing), and the reliable messages p holds, which m's client gets
// first (activate writes them).
func (r *room) takeOverLocked(p, m *member) {
	if p.grace != nil {
		p.grace()
		p.grace = nil
	}
	p.state = stateGone
	delete(r.members, p.userID)
	delete(r.remote.moving, p)
	r.remote.proxies--
	m.joinVer = p.joinVer
	// A snapshot of the roster may be read outside the lock (roster): the
	// list is replaced, not changed.
	if i := slices.Index(r.roster.list, p); i >= 0 {
		list := slices.Clone(r.roster.list)
		list[i] = m
		r.roster.list = list
	}
	p.wmu.Lock()
	q := p.retain.drain()
	p.wmu.Unlock()
	for _, e := range q {
		if e.from != nil {
			e.from.retarget(p.userID, e.id, &p.retain, &m.retain)
		}
		m.retain.add(e, 0)
	}
	m.log.Info("member moved here from another node", zap.String("from", p.node))
}

// announceJoinLocked tells the other nodes local member m is active.
func (r *room) announceJoinLocked(m *member) {
	if r.remote == nil {
		return
	}
	_ = r.remote.c.send(roomSubject(r.key.app, r.id), &clusterpb.Envelope{Body: &clusterpb.Envelope_Join{Join: &clusterpb.RoomJoin{
		Room: r.id, Member: &clusterpb.Member{UserId: m.userID, ExtraInfo: m.extraInfo, Joined: m.joined}, Ver: r.remote.c.nextVer(),
	}}})
}

// announceLeaveLocked tells the other nodes local member m left. A node
// shutting down says nothing: its Bye tells that its members move.
func (r *room) announceLeaveLocked(m *member, reason int32) {
	if r.remote == nil || r.srv.shuttingDown() {
		return
	}
	_ = r.remote.c.send(roomSubject(r.key.app, r.id), &clusterpb.Envelope{Body: &clusterpb.Envelope_Leave{Leave: &clusterpb.RoomLeave{
		Room: r.id, UserId: m.userID, Joined: m.joined, Reason: reason, Ver: r.remote.c.nextVer(),
	}}})
}

// rosterLocked is r's local members, for a RoomRoster.
func (r *room) rosterLocked() *clusterpb.RoomRoster {
	ro := &clusterpb.RoomRoster{Room: r.id, Ver: r.remote.c.nextVer()}
	for _, m := range r.roster.list { // in join order, as a member list is
		if m.node == "" && m.leftVer.Load() == 0 && (m.state == stateActive || m.state == stateSuspended) {
			ro.Members = append(ro.Members, &clusterpb.Member{UserId: m.userID, ExtraInfo: m.extraInfo, Joined: m.joined})
		}
	}
	return ro
}

// gather sends env to every app node's sync subject and collects the
// answers, by node, until every live node answered or syncTimeout.
func (c *cluster) gather(app string, env *clusterpb.Envelope) map[string]*clusterpb.Envelope {
	out := make(map[string]*clusterpb.Envelope)
	if !c.connected() {
		return out
	}
	want := c.nodes.count()
	if want == 0 {
		return out
	}
	complete := c.collect(syncSubject(app), env, syncTimeout, func(e *clusterpb.Envelope, _ *nats.Msg) bool {
		out[e.Node] = e
		return len(out) == want
	})
	if !complete {
		c.log.Info("room sync: not every node answered", zap.Int("want", want), zap.Int("got", len(out)))
	}
	return out
}

// onSync answers a RoomSync with the members here.
func (s *Server) onSync(app string, env *clusterpb.Envelope, msg *nats.Msg) {
	sy := env.GetSync()
	if sy == nil || msg.Reply == "" {
		return
	}
	ro := &clusterpb.RoomRoster{Room: sy.Room}
	if r := s.lookupRoom(app, sy.Room); r != nil && r.remote != nil {
		r.mu.Lock()
		ro = r.rosterLocked()
		r.mu.Unlock()
	}
	_ = s.cluster.sendReply(msg.Reply, "", &clusterpb.Envelope{Body: &clusterpb.Envelope_Roster{Roster: ro}})
}

// onNodeMessage handles what another node addressed to this one for app.
func (s *Server) onNodeMessage(app string, env *clusterpb.Envelope, _ *nats.Msg) {
	switch b := env.Body.(type) {
	case *clusterpb.Envelope_Ack:
		a := b.Ack
		r := s.lookupRoom(app, a.Room)
		if r == nil {
			return
		}
		if p := r.member(a.Receiver); p != nil && p.proxy {
			p.retain.ack(a.Sender, a.UpTo)
		}
	}
}

// roomList is every room of the node, as of now.
func (s *Server) roomList() []*room {
	s.mu.Lock()
	defer s.mu.Unlock()
	rooms := make([]*room, 0, len(s.rooms))
	for _, r := range s.rooms {
		rooms = append(rooms, r)
	}
	return rooms
}

func (s *Server) lookupRoom(app, id string) *room {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rooms[roomKey{app, id}]
}

// deliverUser hands a user message of node's in r to its receiver, if
// the receiver is here.
func (s *Server) deliverUser(r *room, node string, d *clusterpb.Delivery) {
	if len(d.Packet) > transport.MaxSCTPMessage || d.Channel > transport.ChannelUnreliableUnordered {
		s.metrics.clusterBad.Inc()
		return
	}
	to := r.member(d.To)
	if to == nil || to.proxy || to.joined != d.ToJoined {
		return // gone: the sender's node hears it from the room
	}
	if d.Channel != transport.ChannelReliable {
		to.deliver(int(d.Channel), d.Packet)
		return
	}
	out := r.remote.remoteOutbox(node, d.From)
	if !out.add(to.userID, d.MsgId, &to.retain) {
		return
	}
	if !to.deliverReliable(retained{sender: d.From, from: out, id: d.MsgId, b: d.Packet}) {
		out.fail(to.userID, d.MsgId, &to.retain, resultNoReceiver)
	}
}

// deliverBroadcast hands a broadcast from node to every member here but
// those node keeps it for (Delivery.kept_for): they are moving, and get it
// from node with the rest it keeps for them.
func (s *Server) deliverBroadcast(r *room, node string, d *clusterpb.Delivery) {
	if len(d.Packet) > transport.MaxSCTPMessage {
		s.metrics.clusterBad.Inc()
		return
	}
	var kept map[string]bool
	if len(d.KeptFor) > 0 {
		kept = make(map[string]bool, len(d.KeptFor))
		for _, u := range d.KeptFor {
			kept[u] = true
		}
	}
	r.mu.Lock()
	snap := r.roster.list
	r.mu.Unlock()
	for _, o := range snap {
		if !o.proxy && o.leftVer.Load() == 0 && !kept[o.userID] {
			o.deliverReliable(retained{sender: d.From, id: d.MsgId, b: d.Packet})
		}
	}
}

// keepForMoving keeps broadcast id of m's, b, in the proxies of moving
// members, for their next node: it goes there with the reliable messages
// they keep, in order (moveTo; or takeOverLocked, when the member comes
// back here). A proxy that moved meanwhile has it at once, as a Delivery
// of its own. It returns the users that have it so, whom the room's copy
// must skip (Delivery.kept_for).
func (m *member) keepForMoving(moving []*member, id int64, b []byte) []string {
	var users []string
	for _, p := range moving {
		if p.deliverRemote(retained{sender: m.userID, id: id, b: b}) {
			users = append(users, p.userID)
		}
	}
	return users
}

// broadcastRemote sends a broadcast of m's to the other nodes of its room,
// if it has members there, but not to the members of keptFor there (see
// keepForMoving). It reports false when they could not be reached.
func (m *member) broadcastRemote(id int64, b []byte, keptFor []string) bool {
	r := m.room
	if r.remote == nil {
		return true
	}
	r.mu.Lock()
	n := r.remote.proxies
	r.mu.Unlock()
	if n == 0 {
		return true
	}
	return r.remote.c.send(roomSubject(r.key.app, r.id), &clusterpb.Envelope{Body: &clusterpb.Envelope_Delivery{Delivery: &clusterpb.Delivery{
		Room: r.id, From: m.userID, MsgId: id, Packet: b, KeptFor: keptFor,
	}}}) == nil
}

// nodeDown handles the loss of node in every room.
func (s *Server) nodeDown(node string, graceful bool, moving []*clusterpb.MovingRoom) {
	var movers map[roomKey][]*clusterpb.Member // what the Bye says of each room
	if graceful {
		s.keepMovers(node, moving)
		movers = make(map[roomKey][]*clusterpb.Member, len(moving))
		for _, mr := range moving {
			k := roomKey{mr.App, mr.Room}
			movers[k] = append(movers[k], mr.Members...)
		}
	}
	rooms := s.roomList()
	for _, r := range rooms {
		if r.remote == nil {
			continue
		}
		r.remote.fence.Lock()
		r.mu.Lock()
		r.remote.nodeDownLocked(node, graceful)
		r.remote.seedMovingLocked(node, movers[r.key])
		r.mu.Unlock()
		r.remote.fence.Unlock()
	}
	s.loginsNodeDown(node, graceful)
}

// settleMoving waits, as the node leaves and before its members hear
// GoAway, until each active member has acknowledged the reliable messages
// it holds now, or half the drain timeout passes (a receiver's SDK acks a
// broadcast within 2 s, a user message within a few milliseconds, but a
// member far behind takes longer). The other nodes keep what they send
// after answering the Bye for the members' next node; what they sent
// before is here (nodes.close), and a broadcast has no other copy: once
// acknowledged, the member has it, and the messages kept elsewhere come
// after it, in order.
func (s *Server) settleMoving(ctx context.Context) {
	type owed struct {
		m    *member
		upTo map[string]int64
	}
	var all []owed
	for _, r := range s.roomList() {
		if r.remote == nil {
			continue
		}
		r.mu.Lock()
		for _, m := range r.members {
			if !m.proxy && m.state == stateActive {
				all = append(all, owed{m: m})
			}
		}
		r.mu.Unlock()
	}
	// Each member's retention signals removed when it lets messages go;
	// watched before the newest are read, so no ack between the two is
	// missed.
	removed := make(chan struct{}, 1)
	for i := range all {
		all[i].m.retain.watch(removed)
		all[i].upTo = all[i].m.retain.newest()
	}
	defer func() {
		for _, o := range all {
			o.m.retain.unwatch()
		}
	}()
	deadline := time.NewTimer(s.cfg.DrainTimeout / 2)
	defer deadline.Stop()
	for {
		left := all[:0]
		for _, o := range all {
			if o.upTo != nil && o.m.retain.holdsUpTo(o.upTo) {
				left = append(left, o)
			} else {
				o.m.retain.unwatch()
			}
		}
		all = left
		if len(all) == 0 {
			return
		}
		select {
		case <-removed:
		case <-deadline.C:
			s.log.Warn("leaving: members still hold unacknowledged messages", zap.Int("members", len(all)))
			return
		case <-ctx.Done():
			return
		}
	}
}

// natsBack runs when the node reaches NATS again after an outage: the
// others may have dropped its members meanwhile, and it may have missed
// their changes. Every room says who is here and syncs again.
func (s *Server) natsBack() {
	s.cluster.nodes.reconnected()
	rooms := s.roomList()
	s.cluster.goBackground(func() {
		for _, r := range rooms {
			if r.remote == nil {
				continue
			}
			r.mu.Lock()
			for _, m := range r.members {
				if m.node == "" && (m.state == stateActive || m.state == stateSuspended) {
					r.announceJoinLocked(m)
				}
			}
			r.mu.Unlock()
			r.remote.sync()
		}
		s.loginsBack()
	})
}

// startCluster starts what a node of a cluster runs besides its NATS
// connection: liveness, and the subjects of every app.
func (s *Server) startCluster() error {
	c := s.cluster
	c.bad = s.metrics.clusterBad.Inc
	c.nodes = newNodes(c, s.cfg.NodeHeartbeat, s.cfg.GracePeriod, c.log)
	c.nodes.down = s.nodeDown
	c.nodes.rooms = s.movingRooms
	c.back = s.natsBack
	for app := range s.cfg.Apps {
		if _, err := c.subscribe(syncSubject(app), func(env *clusterpb.Envelope, msg *nats.Msg) { s.onSync(app, env, msg) }); err != nil {
			return err
		}
		if _, err := c.subscribe(nodeSubject(app, c.node), func(env *clusterpb.Envelope, msg *nats.Msg) { s.onNodeMessage(app, env, msg) }); err != nil {
			return err
		}
	}
	return c.nodes.start()
}
