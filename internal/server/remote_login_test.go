package server

import (
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/stretchr/testify/require"

	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// Logins across nodes (remote_login.go): raw peers on two or three nodes
// of one embedded NATS server.

// startNodes runs n nodes, "n1" to "nN", on one NATS server, with
// heartbeats every hb (0: the default).
func startNodes(t *testing.T, n int, hb time.Duration) []*Server {
	t.Helper()
	url := natsURL(portOf(startNATS(t, -1)))
	nodes := make([]*Server, n)
	for i := range nodes {
		nodes[i] = startWith(t, Config{NATS: url, NodeID: fmt.Sprintf("n%d", i+1), NodeHeartbeat: hb})
	}
	return nodes
}

// loginAt is a raw peer on s logged in as user.
func loginAt(t *testing.T, s *Server, user string) *peer {
	t.Helper()
	p := newPeer(t, s)
	p.login(user)
	return p
}

// status asks for user's online status and returns the answer.
func (p *peer) status(user string) int32 {
	p.t.Helper()
	id := p.reqID.Add(1)
	p.send(&pb.ClientFrame{RequestId: id, Body: &pb.ClientFrame_PeerStatus{PeerStatus: &pb.PeerStatusRequest{UserId: user}}})
	f := p.next(func(f *pb.ServerFrame) bool { return f.RequestId == id && f.GetPeerStatus() != nil })
	require.Equal(p.t, user, f.GetPeerStatus().UserId)
	return f.GetPeerStatus().Status
}

// unreliableSend sends an unreliable outside-room message.
func (p *peer) unreliableSend(to string, id int64) {
	p.t.Helper()
	p.send(&pb.ClientFrame{Body: &pb.ClientFrame_Send{Send: &pb.OutsideMessage{
		MsgId: id, To: to, Payload: []byte("hello"),
	}}})
}

// requireResult requires the peer's next outcome to be the result code of
// message id.
func (p *peer) requireResult(id int64, code int32) {
	p.t.Helper()
	f := p.outcome()
	require.NotNil(p.t, f.GetResult(), "outcome %v, want result %d of message %d", f, code, id)
	require.Equal(p.t, id, f.GetResult().MsgId, "%v", f)
	require.Equal(p.t, code, f.GetResult().Code, "result of message %d", id)
}

// requireAck requires the peer's next outcome to be peer's ack up to upTo.
func (p *peer) requireAck(peer string, upTo int64) {
	p.t.Helper()
	f := p.outcome()
	require.True(p.t, ackIs(f.GetAck(), &pb.Ack{Peer: peer, UpTo: upTo}), "outcome %v, want ack of %s up to %d", f, peer, upTo)
}

// loggedOutDuplicate waits for the peer's LoggedOut and requires
// DuplicateLogin.
func (p *peer) loggedOutDuplicate() {
	p.t.Helper()
	f := p.next(func(f *pb.ServerFrame) bool { return f.GetLoggedOut() != nil })
	require.Equal(p.t, int32(logoutDuplicate), f.GetLoggedOut().Reason)
}

// TestClusterDuplicateLogin: a login on another node logs the earlier one
// out (DuplicateLogin), and the user is then found there only.
func TestClusterDuplicateLogin(t *testing.T) {
	n := startNodes(t, 3, 0)
	first := loginAt(t, n[0], "bob")
	obs := loginAt(t, n[2], "obs")
	second := loginAt(t, n[1], "bob")
	first.loggedOutDuplicate()
	require.Nil(t, n[0].loggedIn(loginKey{testAppID, "bob"}))
	require.NotNil(t, n[1].loggedIn(loginKey{testAppID, "bob"}))

	require.Equal(t, int32(statusOnline), obs.status("bob"))
	obs.unreliableSend("bob", 1)
	obs.requireResult(1, resultSuccess)
	second.received("obs", 1)

	// A third login, back on the first node, ends the second.
	third := loginAt(t, n[0], "bob")
	second.loggedOutDuplicate()
	obs.unreliableSend("bob", 2)
	obs.requireResult(2, resultSuccess)
	third.received("obs", 2)
	require.Len(t, third.frames, 0, "third login: nothing else")
}

// TestClusterSimultaneousLogins: two logins of one user on two nodes at
// once end with exactly one logged in, every time.
func TestClusterSimultaneousLogins(t *testing.T) {
	n := startNodes(t, 2, 0)
	for round := range 20 {
		user := fmt.Sprintf("u%d", round)
		p := [2]*peer{newPeer(t, n[0]), newPeer(t, n[1])}
		for _, q := range p {
			q.send(&pb.ClientFrame{RequestId: 100, Body: &pb.ClientFrame_Login{Login: &pb.LoginRequest{
				AppId: testAppID, Token: validToken(t, "", user), UserId: user,
			}}})
		}
		for _, q := range p {
			f := q.next(func(f *pb.ServerFrame) bool { return f.RequestId == 100 && f.GetLogin() != nil })
			require.Equal(t, int32(loginOK), f.GetLogin().Code)
		}
		// The loser hears LoggedOut; the winner stays.
		var loser int
		select {
		case f := <-p[0].frames:
			require.NotNil(t, f.GetLoggedOut(), "%v", f)
			loser = 0
		case f := <-p[1].frames:
			require.NotNil(t, f.GetLoggedOut(), "%v", f)
			loser = 1
		case <-time.After(waitTimeout):
			t.Fatalf("round %d: both logins stayed", round)
		}
		winner := p[1-loser]
		require.Equal(t, int32(statusOnline), winner.status(user), "round %d: the winner is logged in", round)
		require.Nil(t, n[loser].loggedIn(loginKey{testAppID, user}))
		require.NotNil(t, n[1-loser].loggedIn(loginKey{testAppID, user}))
	}
}

// TestClusterOutside: outside-room messages to a login on another node,
// with their results: unreliable Success once handed over, reliable only
// with the receiver's ack; order kept; NoReceiver for a user logged in
// nowhere.
func TestClusterOutside(t *testing.T) {
	n := startNodes(t, 2, 0)
	a, b := loginAt(t, n[0], "a"), loginAt(t, n[1], "b")

	a.unreliableSend("b", 1)
	a.requireResult(1, resultSuccess)
	b.received("a", 1)

	const count = 200
	for id := int64(2); id < 2+count; id++ {
		if id%2 == 0 {
			a.outsideSend("b", id)
		} else {
			a.unreliableSend("b", id)
		}
	}
	for id := int64(2); id < 2+count; id++ {
		b.received("a", id) // in the order sent
	}
	for id := int64(3); id < 2+count; id += 2 {
		a.requireResult(id, resultSuccess) // unreliable ones; the reliable ones wait for the ack
	}
	b.outsideAck("a", 1+count)
	a.requireAck("b", count) // the last reliable one

	a.outsideSend("nobody", 500)
	a.requireResult(500, resultNoReceiver)
	a.unreliableSend("nobody", 501)
	a.requireResult(501, resultNoReceiver)
	a.outsideSend("no such user", 502)
	a.requireResult(502, resultNoReceiver)

	// Both ways.
	b.outsideSend("a", 1)
	a.received("b", 1)
	a.outsideAck("b", 1)
	b.requireAck("a", 1)

	// The books are empty: nothing waits on either node.
	for _, s := range n {
		s.clusterLogins.mu.Lock()
		require.Empty(t, s.clusterLogins.pending)
		require.Empty(t, s.clusterLogins.proxies)
		s.clusterLogins.mu.Unlock()
	}
}

// TestClusterOutsideLoginEnds: a reliable message handed to a login on
// another node that ends before acknowledging it fails NoReceiver, and
// before the ack of a later login of the same user that covers a higher
// ID (see TestAckSettlesOnlyItsReceiversMessages).
func TestClusterOutsideLoginEnds(t *testing.T) {
	n := startNodes(t, 3, 0)
	a, b1 := loginAt(t, n[0], "a"), loginAt(t, n[1], "b")
	a.outsideSend("b", 1)
	b1.received("a", 1) // and never acknowledged

	b2 := loginAt(t, n[2], "b")
	b1.loggedOutDuplicate()
	a.outsideSend("b", 2)
	b2.received("a", 2)
	b2.outsideAck("a", 2)
	a.requireResult(1, resultNoReceiver)
	a.requireAck("b", 2)

	a.outsideSend("b", 3)
	b2.received("a", 3)
	b2.send(&pb.ClientFrame{Body: &pb.ClientFrame_Logout{Logout: &pb.LogoutRequest{}}})
	a.requireResult(3, resultNoReceiver)
}

// TestClusterPeerStatus: GetPeerOnlineStatus finds a login on another
// node; a user logged in nowhere is Offline; one whose connection is in
// its grace period is Unreachable; while NATS is out of reach, a user not
// logged in here is Unreachable (its status cannot be determined).
func TestClusterPeerStatus(t *testing.T) {
	ns := startNATS(t, -1)
	url := natsURL(portOf(ns))
	n1 := startWith(t, Config{NATS: url, NodeID: "n1"})
	n2 := startWith(t, Config{NATS: url, NodeID: "n2"})
	a, b := loginAt(t, n1, "a"), loginAt(t, n2, "b")
	require.Equal(t, int32(statusOnline), a.status("b"))
	require.Equal(t, int32(statusOnline), b.status("a"))
	require.Equal(t, int32(statusOffline), a.status("nobody"))

	require.NoError(t, b.ws.Close()) // detached: in its grace period
	for deadline := time.Now().Add(waitTimeout); a.status("b") != statusUnreachable; {
		require.True(t, time.Now().Before(deadline), "b never unreachable")
	}

	ns.Shutdown()
	ns.WaitForShutdown()
	waitCluster(t, n1, false)
	require.Equal(t, int32(statusUnreachable), a.status("nobody"))
	require.Equal(t, int32(statusOnline), a.status("a"), "local first")
	a.outsideSend("nobody", 1)
	a.requireResult(1, resultNoRelayPath)
}

// TestClusterOutsideNodeDies: reliable messages awaiting the ack of a
// login on a node that dies fail NoRelayPath once the node is declared
// dead; sent after, NoReceiver (nobody holds the login). Exactly one
// result each.
func TestClusterOutsideNodeDies(t *testing.T) {
	n := startNodes(t, 2, 50*time.Millisecond)
	a, b := loginAt(t, n[0], "a"), loginAt(t, n[1], "b")
	require.Eventually(t, func() bool { return n[0].cluster.nodes.alive("n2") }, waitTimeout, 5*time.Millisecond)
	a.outsideSend("b", 1)
	a.outsideSend("b", 2)
	b.received("a", 1)
	b.received("a", 2)
	require.NoError(t, n[1].Kill())
	a.requireResult(1, resultNoRelayPath)
	a.requireResult(2, resultNoRelayPath)
	a.outsideSend("b", 3)
	a.requireResult(3, resultNoReceiver)
	require.Equal(t, int32(statusOffline), a.status("b"))
	require.Len(t, a.frames, 0, "no second result")
}

// TestClusterOutsideNodeLeaves: a node that shuts down ends its logins,
// and the reliable messages they held fail NoReceiver.
func TestClusterOutsideNodeLeaves(t *testing.T) {
	n := startNodes(t, 2, 0)
	a, b := loginAt(t, n[0], "a"), loginAt(t, n[1], "b")
	a.outsideSend("b", 1)
	b.received("a", 1)
	require.NoError(t, n[1].Shutdown(t.Context()))
	a.requireResult(1, resultNoReceiver)
	require.Equal(t, int32(statusOffline), a.status("b"))
}

// TestClusterOutsideTimeout: a receiver's node that never answers is
// NoRelayPath after outsideTimeout, reliable or not, and a late answer
// changes nothing.
func TestClusterOutsideTimeout(t *testing.T) {
	ns := startNATS(t, -1)
	url := natsURL(portOf(ns))
	s := startWith(t, Config{NATS: url, NodeID: "n1"})
	a := loginAt(t, s, "a")
	mute, err := nats.Connect(url)
	require.NoError(t, err)
	defer mute.Close()
	got := make(chan *nats.Msg, 2)
	_, err = mute.ChanSubscribe(userSubject(testAppID, "ghost"), got)
	require.NoError(t, err)
	require.NoError(t, mute.Flush())

	start := time.Now()
	a.outsideSend("ghost", 1)
	a.unreliableSend("ghost", 2)
	for range 2 {
		<-got
	}
	codes := map[int64]int32{}
	for range 2 {
		r := a.outcome().GetResult()
		require.NotNil(t, r)
		codes[r.MsgId] = r.Code
	}
	require.Equal(t, map[int64]int32{1: resultNoRelayPath, 2: resultNoRelayPath}, codes)
	require.GreaterOrEqual(t, time.Since(start), outsideTimeout)
	s.clusterLogins.mu.Lock()
	require.Empty(t, s.clusterLogins.pending)
	s.clusterLogins.mu.Unlock()
}

// TestClusterLoginsBack: logins made on two nodes of one user while NATS
// is down are both served; once it is back, the earlier one is logged
// out. A reliable message whose ack could not come meanwhile fails
// NoRelayPath.
func TestClusterLoginsBack(t *testing.T) {
	ns := startNATS(t, -1)
	port := portOf(ns)
	n1 := startWith(t, Config{NATS: natsURL(port), NodeID: "n1"})
	n2 := startWith(t, Config{NATS: natsURL(port), NodeID: "n2"})
	a, b := loginAt(t, n1, "a"), loginAt(t, n2, "b")
	a.outsideSend("b", 1)
	b.received("a", 1) // not acknowledged before the outage

	ns.Shutdown()
	ns.WaitForShutdown()
	waitCluster(t, n1, false)
	waitCluster(t, n2, false)
	first := loginAt(t, n1, "u")
	second := loginAt(t, n2, "u") // later: it stays
	b.outsideAck("a", 1)          // lost: n2 cannot reach n1

	startNATS(t, port)
	first.loggedOutDuplicate()
	a.requireResult(1, resultNoRelayPath)
	require.Equal(t, int32(statusOnline), second.status("u"))
	require.Equal(t, int32(statusOnline), a.status("u"))
	require.Nil(t, n1.loggedIn(loginKey{testAppID, "u"}))
}
