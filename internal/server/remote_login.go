package server

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	clusterpb "github.com/parleyhq/parley/proto/parley/cluster/v1"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// Logins across nodes. A login is one per user in the whole cluster, and
// what is addressed to a logged-in user finds it on whichever node holds
// its login:
//
//   - Each login here subscribes to its user's subject (userSubject) for as
//     long as it lasts, and says LoginClaim there when it starts. A node
//     that holds an earlier login of the user (LoginClaim.at, ties by node
//     ID, as members do: later) logs it out, DuplicateLogin, as a second
//     login on one node does; a node whose login is the later one says its
//     claim again, so that of two logins made at once on two nodes, each
//     subscribed before it claimed, the earlier always hears of the later.
//     The login subscribes and claims before its answer goes out: once the
//     client has Success, every node finds it.
//   - An outside-room message for a user not logged in here is an Outside
//     request on the user's subject. Its answer comes to the sender's node
//     on its outside subject (outsideSubject: .out.<request>), and so do the
//     acks and late results of the node that took it (.out.ack): one
//     subscription, in the order that node sent them, so an ack never
//     overtakes the answer that placed its message. Nobody subscribed is
//     NoReceiver; NATS out of reach, or no answer within outsideTimeout,
//     NoRelayPath. Requests are published in the order the session sent
//     them and answered without holding its frames up.
//   - A reliable one waits in the sender login's outbox, as a local one
//     does: first for its answer (delivered to nobody yet), then, handed
//     over, in a proxy retention of the receiver's login on its node
//     (proxies), until that node passes the receiving SDK's ack on
//     (OutsideAck: Success, end to end) or says it never will
//     (OutsideResult: NoReceiver when the login ended first). The node that
//     took it keeps it in its login's inbox under the outbox of the remote
//     sender (heldLogin.outs), whose results and acks go back to the sender's
//     node.
//   - GetPeerOnlineStatus asks the user's subject (StatusQuery) when the
//     user is not logged in here: nobody subscribed is Offline; NATS out of
//     reach or no answer in time is Unreachable, ByteRTC's status for a
//     cascade error: the status cannot be determined.
//
// The loss of a node (loginsNodeDown): a dead node's proxies fail what they
// hold, NoRelayPath. A node that says Bye ends its logins itself, and their
// ends report NoReceiver for what they held, as they would on one node; what
// is still held from it after the grace period then fails NoReceiver too. A
// node back from a NATS outage (loginsBack) says its logins' claims again,
// and fails, NoRelayPath, what its proxies held: acks sent while it was cut
// off are lost.

// outsideTimeout bounds the wait for the answer to an Outside request or a
// StatusQuery: well under the SDK's message timeout (10 s), so the sender
// hears NoRelayPath, not Timeout.
const outsideTimeout = 5 * time.Second

// loginFlushTimeout bounds the wait, in a login, for NATS to have its
// subscription and claim; past it the login goes on regardless.
const loginFlushTimeout = time.Second

// clusterLogins is what a node of a cluster keeps of logins across nodes.
//
// Lock order: mu before an outbox's and a retention's; never with a
// session's mu or sendMu held (it reads sessions' inboxes atomically).
type clusterLogins struct {
	s *Server
	c *cluster

	mu      sync.Mutex
	held    map[*session]*heldLogin       // the logins here; guarded by mu
	proxies map[proxyKey]*retention       // remote receivers' books of reliable messages sent from here; guarded by mu
	pending map[uint64]*pendingOutside    // Outside requests awaiting their answer, by number; guarded by mu
	next    uint64                        // the last request number; guarded by mu
	replies map[string]*nats.Subscription // by app: this node's outside subject; guarded by mu
}

// heldLogin is a login here, as the cluster knows it.
type heldLogin struct {
	ss  *session
	key loginKey
	in  *retention // the login's inbox: which login of ss it is
	at  int64      // when it began, unix nanoseconds: its LoginClaim.at
	sub *nats.Subscription

	// The outboxes of the remote senders of reliable messages to this
	// login, by their node and user ID: their results and acks go back to
	// that node. Guarded by clusterLogins.mu.
	outs map[outKey]*outbox
}

// proxyKey names the login of user of app on node, as senders here see it.
type proxyKey struct{ app, user, node string }

// pendingOutside is an Outside request awaiting its answer.
type pendingOutside struct {
	ss      *session
	app, to string // the receiver
	sender  string
	id      int64
	out     *outbox // reliable: the sender login's, where the message waits (delivered to nil); nil for unreliable
	arrived time.Time
	stop    func() bool // the timeout
}

func newClusterLogins(s *Server) *clusterLogins {
	return &clusterLogins{
		s: s, c: s.cluster,
		held:    make(map[*session]*heldLogin),
		proxies: make(map[proxyKey]*retention),
		pending: make(map[uint64]*pendingOutside),
		replies: make(map[string]*nats.Subscription),
	}
}

// outsideSubject is where node gets the answers to its Outside requests
// (.<request>) and the acks and results of their messages (.ack).
func outsideSubject(app, node string) string { return nodeSubject(app, node) + ".out" }

// outsideAckSubject is outsideSubject's .ack.
func outsideAckSubject(app, node string) string { return outsideSubject(app, node) + ".ack" }

// current reports whether h is still its session's login.
func (h *heldLogin) current() bool { return h.ss.inbox.Load() == h.in }

// --- The logins here ---------------------------------------------------------

// loggedIn makes the login of ss as k (its inbox in) known to the cluster:
// it subscribes to k's user subject and claims the user. It returns once
// NATS has both (or loginFlushTimeout), so that the login's answer, sent
// after, finds it visible everywhere. Called with ss.sendMu held: a
// message for the login that comes meanwhile reaches the client after the
// answer.
func (l *clusterLogins) loggedIn(ss *session, k loginKey, in *retention) {
	h := &heldLogin{ss: ss, key: k, in: in, at: time.Now().UnixNano(), outs: make(map[outKey]*outbox)}
	l.mu.Lock()
	if !h.current() { // ended already
		l.mu.Unlock()
		return
	}
	if old := l.held[ss]; old != nil && old.sub != nil {
		_ = old.sub.Drain()
	}
	sub, err := l.c.subscribe(userSubject(k.app, k.user), func(env *clusterpb.Envelope, msg *nats.Msg) { l.onUser(h, env, msg) })
	if err != nil {
		ss.log.Warn("login: NATS subscribe failed: the login is not visible on other nodes", zap.Error(err))
	}
	h.sub = sub
	l.held[ss] = h
	l.mu.Unlock()
	l.claim(h)
	if l.c.connected() {
		_ = l.c.nc.FlushTimeout(loginFlushTimeout)
	}
}

// loggedOut forgets the login of ss whose inbox was in: it ended.
func (l *clusterLogins) loggedOut(ss *session, in *retention) {
	l.mu.Lock()
	h := l.held[ss]
	if h == nil || h.in != in {
		l.mu.Unlock()
		return
	}
	delete(l.held, ss)
	l.mu.Unlock()
	if h.sub != nil {
		// Drained, not dropped: what is already on its way is answered
		// (NoReceiver, Offline), so its senders need not wait for the
		// timeout.
		_ = h.sub.Drain()
	}
}

// claim says on h's user subject that h is logged in.
func (l *clusterLogins) claim(h *heldLogin) {
	_ = l.c.send(userSubject(h.key.app, h.key.user), &clusterpb.Envelope{Body: &clusterpb.Envelope_LoginClaim{LoginClaim: &clusterpb.LoginClaim{
		UserId: h.key.user, At: h.at,
	}}})
}

// onUser handles what another node says on the user subject of login h.
func (l *clusterLogins) onUser(h *heldLogin, env *clusterpb.Envelope, msg *nats.Msg) {
	switch b := env.Body.(type) {
	case *clusterpb.Envelope_LoginClaim:
		l.onClaim(h, env.Node, b.LoginClaim)
	case *clusterpb.Envelope_Outside:
		l.onOutside(h, env.Node, b.Outside, msg.Reply)
	case *clusterpb.Envelope_StatusQuery:
		l.onStatusQuery(h, msg.Reply)
	}
}

// onClaim handles node's claim of h's user: of the two logins, the
// earlier goes.
func (l *clusterLogins) onClaim(h *heldLogin, node string, c *clusterpb.LoginClaim) {
	if c.UserId != h.key.user || !h.current() {
		return
	}
	if later(h.at, l.c.node, c.At, node) {
		l.claim(h) // the claimer's login goes once it hears of this one
		return
	}
	ss := h.ss
	ss.log.Info("logged out: the same user logged in on another node", zap.String("peer", node))
	l.s.unregister(h.key, ss)
	ss.endLogin(h.key)
	ss.send(0, &pb.ServerFrame{Body: &pb.ServerFrame_LoggedOut{LoggedOut: &pb.LoggedOut{Reason: logoutDuplicate}}})
}

// onStatusQuery answers a StatusQuery for h's user.
func (l *clusterLogins) onStatusQuery(h *heldLogin, reply string) {
	if reply == "" {
		return
	}
	status := int32(statusOffline) // ended meanwhile
	if h.current() {
		status = h.ss.onlineStatus()
	}
	_ = l.c.sendReply(reply, "", &clusterpb.Envelope{Body: &clusterpb.Envelope_StatusReply{StatusReply: &clusterpb.StatusReply{Status: status}}})
}

// onOutside hands an outside-room message from node to login h, as a
// local sender's goes (handleSend), and answers the request: the answer
// goes out before the message reaches the client, so it is at the
// sender's node before any ack of it.
func (l *clusterLogins) onOutside(h *heldLogin, node string, o *clusterpb.Outside, reply string) {
	m := &pb.OutsideMessage{}
	if reply == "" || proto.Unmarshal(o.Message, m) != nil || len(m.Payload) > MaxPayload || m.From == "" || m.To != h.key.user {
		l.s.metrics.clusterBad.Inc() // no answer: the sender times out
		return
	}
	answer := func(code int32) bool {
		return l.c.sendReply(reply, "", &clusterpb.Envelope{Body: &clusterpb.Envelope_OutsideReply{OutsideReply: &clusterpb.OutsideReply{Code: code}}}) == nil
	}
	if !h.current() {
		answer(resultNoReceiver)
		return
	}
	f := &pb.ServerFrame{Body: &pb.ServerFrame_Message{Message: m}}
	if !m.Reliable {
		if answer(resultSuccess) {
			h.ss.send(0, f)
		}
		return
	}
	// In the remote sender's outbox before the client can ack it, and in
	// the login's inbox, unless the login has ended (NoReceiver) or holds
	// maxUnackedOutside messages already (NoRelayPath), as locally.
	out := l.remoteOutbox(h, node, m.From)
	out.add(h.key.user, m.MsgId, h.in)
	switch _, ok, full := h.in.add(retained{sender: m.From, from: out, id: m.MsgId, cost: 1}, maxUnackedOutside); {
	case full:
		out.forget(h.key.user, m.MsgId, h.in)
		answer(resultNoRelayPath)
		return
	case !ok:
		out.forget(h.key.user, m.MsgId, h.in)
		answer(resultNoReceiver)
		return
	}
	if !answer(resultSuccess) { // the sender hears NoRelayPath: it must not get it
		h.in.take(m.From, out, m.MsgId)
		out.forget(h.key.user, m.MsgId, h.in)
		return
	}
	h.ss.send(0, f)
}

// remoteOutbox is the outbox of node's sender for its reliable messages to
// login h: its results and acks go back to node.
func (l *clusterLogins) remoteOutbox(h *heldLogin, node, sender string) *outbox {
	l.mu.Lock()
	defer l.mu.Unlock()
	k := outKey{node, sender}
	if o := h.outs[k]; o != nil {
		return o
	}
	subject, receiver := outsideAckSubject(h.key.app, node), h.key.user
	o := &outbox{
		result: func(id int64, code int32) {
			_ = l.c.send(subject, &clusterpb.Envelope{Body: &clusterpb.Envelope_OutsideResult{OutsideResult: &clusterpb.OutsideResult{
				Sender: sender, Receiver: receiver, MsgId: id, Code: code,
			}}})
		},
		ack: func(peer string, upTo int64) {
			_ = l.c.send(subject, &clusterpb.Envelope{Body: &clusterpb.Envelope_OutsideAck{OutsideAck: &clusterpb.OutsideAck{
				Sender: sender, Receiver: peer, UpTo: upTo,
			}}})
		},
	}
	h.outs[k] = o
	return o
}

// --- Senders here ------------------------------------------------------------

// send sends outside-room message m of ss's login as user of app to m.To,
// who is not logged in here, as an Outside request; its result comes with
// the answer, or, for a reliable one handed over, with the receiver's ack.
func (l *clusterLogins) send(ss *session, app, user string, m *pb.OutsideMessage, arrived time.Time) {
	result := func(code int32) { ss.frameResult(0, &pb.Result{MsgId: m.MsgId, Code: code}) }
	if checkID("user ID", m.To) != nil {
		result(resultNoReceiver) // nobody logs in with it
		return
	}
	m.From = user
	b, err := proto.Marshal(m)
	if err != nil {
		result(resultNoRelayPath)
		return
	}
	p := &pendingOutside{ss: ss, app: app, to: m.To, sender: user, id: m.MsgId, arrived: arrived}
	if m.Reliable {
		out := ss.outbox.Load()
		if out == nil || !out.add(m.To, m.MsgId, nil) { // logged out meanwhile
			result(resultNotLogin)
			return
		}
		p.out = out
	}
	if err := l.listen(app); err != nil {
		ss.log.Debug("outside subject: NATS subscribe", zap.Error(err))
	}
	l.mu.Lock()
	l.next++
	n := l.next
	l.pending[n] = p
	p.stop = l.s.cfg.Clock.AfterFunc(outsideTimeout, func() { l.answered(n, "", resultNoRelayPath) })
	l.mu.Unlock()
	err = l.c.sendReply(userSubject(app, m.To), outsideSubject(app, l.c.node)+"."+strconv.FormatUint(n, 10),
		&clusterpb.Envelope{Body: &clusterpb.Envelope_Outside{Outside: &clusterpb.Outside{Message: b}}})
	if err != nil {
		l.answered(n, "", resultNoRelayPath)
	}
}

// listen subscribes to app's outside subject of this node, once.
func (l *clusterLogins) listen(app string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.replies[app] != nil {
		return nil
	}
	sub, err := l.c.nc.Subscribe(outsideSubject(app, l.c.node)+".*", func(msg *nats.Msg) { l.onOutsideSubject(app, msg) })
	if err != nil {
		return err
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil { // as cluster.subscribe: nothing dropped
		_ = sub.Unsubscribe()
		return err
	}
	l.replies[app] = sub
	return nil
}

// onOutsideSubject handles an answer to an Outside request of this node's,
// or an ack or result of one.
func (l *clusterLogins) onOutsideSubject(app string, msg *nats.Msg) {
	tok := msg.Subject[strings.LastIndexByte(msg.Subject, '.')+1:]
	if tok == "ack" {
		if env, err := l.c.decode(msg); err == nil {
			l.onAck(app, env)
		}
		return
	}
	n, err := strconv.ParseUint(tok, 10, 64)
	if err != nil {
		return
	}
	if len(msg.Data) == 0 && msg.Header.Get("Status") == "503" { // nats.go's no-responders status
		l.answered(n, "", resultNoReceiver)
		return
	}
	env, err := l.c.decode(msg)
	if err != nil {
		return // the request times out
	}
	r := env.GetOutsideReply()
	if r == nil {
		return
	}
	code := r.Code
	switch code {
	case resultSuccess, resultNoReceiver, resultNoRelayPath:
	default:
		code = resultNoRelayPath
	}
	l.answered(n, env.Node, code)
}

// answered settles request n with code, from node (code 0: node took it).
// The first of the answer, the timeout and a failed publish settles it.
func (l *clusterLogins) answered(n uint64, node string, code int32) {
	l.mu.Lock()
	p := l.pending[n]
	if p == nil {
		l.mu.Unlock()
		return
	}
	delete(l.pending, n)
	p.stop()
	if p.out != nil && code == resultSuccess {
		// Delivered to node's login of p.to: its ack or result comes later.
		// Retargeted under mu, so that the proxy cannot be failed (node
		// down) between the two steps.
		k := proxyKey{p.app, p.to, node}
		proxy := l.proxies[k]
		if proxy == nil {
			proxy = &retention{user: p.to}
			l.proxies[k] = proxy
		}
		proxy.add(retained{sender: p.sender, from: p.out, id: p.id, cost: 1}, 0)
		p.out.retarget(p.to, p.id, nil, proxy)
		l.mu.Unlock()
		l.s.metrics.handedOff(kindOutside, p.arrived)
		return
	}
	l.mu.Unlock()
	if code == resultSuccess {
		l.s.metrics.handedOff(kindOutside, p.arrived)
	}
	if p.out != nil {
		p.out.fail(p.to, p.id, nil, code)
		return
	}
	p.ss.frameResult(0, &pb.Result{MsgId: p.id, Code: code})
}

// onAck handles an OutsideAck or OutsideResult from the node holding the
// receiver's login.
func (l *clusterLogins) onAck(app string, env *clusterpb.Envelope) {
	var receiver string
	switch b := env.Body.(type) {
	case *clusterpb.Envelope_OutsideAck:
		receiver = b.OutsideAck.Receiver
	case *clusterpb.Envelope_OutsideResult:
		receiver = b.OutsideResult.Receiver
	default:
		return
	}
	k := proxyKey{app, receiver, env.Node}
	l.mu.Lock()
	proxy := l.proxies[k]
	l.mu.Unlock()
	if proxy == nil {
		return
	}
	// The book is settled, and dropped once empty, before the sender
	// hears: whoever sees the ack or result sees the book without it.
	var tell func()
	switch b := env.Body.(type) {
	case *clusterpb.Envelope_OutsideAck:
		done := proxy.settle(b.OutsideAck.Sender, b.OutsideAck.UpTo)
		tell = func() { proxy.tell(done) }
	case *clusterpb.Envelope_OutsideResult:
		r := b.OutsideResult
		code := r.Code
		if code != resultNoRelayPath {
			code = resultNoReceiver
		}
		e, ok := proxy.take(r.Sender, nil, r.MsgId)
		tell = func() {
			if ok {
				e.from.fail(receiver, e.id, proxy, code)
			}
		}
	}
	l.mu.Lock()
	if l.proxies[k] == proxy && proxy.empty() {
		delete(l.proxies, k)
	}
	l.mu.Unlock()
	tell()
}

// status answers ss's request reqID for the status of user of app, who is
// not logged in here, once the cluster has told, without holding up the
// session's frames.
func (l *clusterLogins) status(ss *session, reqID uint64, app, user string) {
	s := l.s
	s.wg.Add(1) // the session is alive, so the count is above zero
	go func() {
		defer s.wg.Done()
		ctx, cancel := context.WithTimeout(s.ctx, outsideTimeout)
		defer cancel()
		status := int32(statusUnreachable) // NATS out of reach, or no answer in time
		env, err := l.c.request(ctx, userSubject(app, user), &clusterpb.Envelope{Body: &clusterpb.Envelope_StatusQuery{StatusQuery: &clusterpb.StatusQuery{UserId: user}}})
		switch {
		case errors.Is(err, errNoResponders):
			status = statusOffline
		case err == nil && env.GetStatusReply() != nil:
			switch st := env.GetStatusReply().Status; st {
			case statusOffline, statusOnline, statusUnreachable:
				status = st
			}
		}
		ss.frameResult(reqID, &pb.PeerStatusResponse{UserId: user, Status: status})
	}()
}

// --- Nodes -------------------------------------------------------------------

// loginsNodeDown handles the loss of node: its proxies fail what they hold
// (NoRelayPath), or, after a Bye, what they still hold after the grace
// period (NoReceiver): until then the node's logins end and say so
// themselves. The outboxes of its senders go.
func (s *Server) loginsNodeDown(node string, graceful bool) {
	l := s.clusterLogins
	l.mu.Lock()
	for _, h := range l.held {
		for k := range h.outs {
			if k.node == node {
				delete(h.outs, k)
			}
		}
	}
	type held struct {
		k     proxyKey
		proxy *retention
	}
	var gone []held
	for k, proxy := range l.proxies {
		if k.node == node {
			gone = append(gone, held{k, proxy})
			if !graceful {
				delete(l.proxies, k)
			}
		}
	}
	l.mu.Unlock()
	if !graceful {
		for _, g := range gone {
			g.proxy.failAll(resultNoRelayPath)
		}
		return
	}
	// What is held now, and only that: the node may come back under its
	// ID and take new messages meanwhile.
	var snap []struct {
		held
		e retained
	}
	for _, g := range gone {
		g.proxy.each(func(e retained) {
			snap = append(snap, struct {
				held
				e retained
			}{g, e})
		})
	}
	if len(snap) == 0 {
		return
	}
	s.cfg.Clock.AfterFunc(s.cfg.GracePeriod, func() {
		for _, x := range snap {
			if e, ok := x.proxy.take(x.e.sender, x.e.from, x.e.id); ok {
				e.from.fail(x.k.user, e.id, x.proxy, resultNoReceiver)
			}
		}
		l.mu.Lock()
		for _, g := range gone {
			if l.proxies[g.k] == g.proxy && g.proxy.empty() {
				delete(l.proxies, g.k)
			}
		}
		l.mu.Unlock()
	})
}

// loginsBack runs once the node reaches NATS again after an outage: its
// logins claim their users again (a later login made elsewhere meanwhile
// wins), and what its proxies held fails, NoRelayPath: an ack sent while
// the node was cut off never comes.
func (s *Server) loginsBack() {
	l := s.clusterLogins
	l.mu.Lock()
	held := make([]*heldLogin, 0, len(l.held))
	for _, h := range l.held {
		held = append(held, h)
	}
	proxies := l.proxies
	l.proxies = make(map[proxyKey]*retention)
	l.mu.Unlock()
	for _, h := range held {
		if h.current() {
			l.claim(h)
		}
	}
	for _, proxy := range proxies {
		proxy.failAll(resultNoRelayPath)
	}
}
