package parley_test

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
)

// TestOutsideMessagesSurviveSignalingCuts streams 2,000 reliable
// outside-room messages while the sender's signaling connection is cut
// twice and the receiver's once: every message arrives exactly once, in
// order, and every send gets Success.
func TestOutsideMessagesSurviveSignalingCuts(t *testing.T) {
	const n = 2000
	srv := parleytest.NewServer(t)
	proxyA, proxyB := newCutProxy(t, srv), newCutProxy(t, srv)
	login := func(url, user string) (*parley.Engine, *parleytest.Recorder) {
		p := newPeerAt(t, srv, parley.EngineConfig{AppID: srv.AppID, ServerURL: url}, "", parley.UserInfo{UserID: user})
		p.login(t)
		return p.e, p.eng
	}
	alice, aliceRec := login(proxyA.URL(), "alice")
	_, bobRec := login(proxyB.URL(), "bob")

	cuts := map[int]func(){
		n / 4:     proxyA.cut,
		n / 2:     proxyB.cut,
		3 * n / 4: proxyA.cut,
	}
	for i := range n {
		if cut := cuts[i]; cut != nil {
			cut()
		}
		require.Equal(t, int64(i+1), alice.SendUserMessageOutsideRoom("bob", strconv.Itoa(i), parley.MessageConfigReliableOrdered))
	}
	aliceRec.Timeout, bobRec.Timeout = 30*time.Second, 30*time.Second
	for i, m := range bobRec.NextMessages(t, n) {
		require.Equal(t, outsideMsg("alice", false, []byte(strconv.Itoa(i))), m, "message %d out of order or doubled", i)
	}
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	for id, r := range aliceRec.WaitResults(t, ids...) { // fails on a second result
		require.Equal(t, outsideResult(id, parley.UserMessageSendResultSuccess), r)
	}
	requireNoMsg(t, bobRec)
	aliceRec.WaitState(t, parley.ConnectionStateReconnected)
	bobRec.WaitState(t, parley.ConnectionStateReconnected)
}

// TestNoLossAcrossCuts streams 10,000 reliable user messages in a room and
// 2,000 outside it while faults hit both paths mid-stream: the sender's
// room PeerConnection is closed twice with its messages in flight (the
// sends right after each close meet a transport the room does not know is
// dead yet), the receiver's once while it is receiving, and each side's
// signaling connection is cut. Every message arrives exactly once, in
// order, and every send gets Success.
func TestNoLossAcrossCuts(t *testing.T) {
	const inRoom, outside = 10000, 2000
	srv := parleytest.NewServer(t)
	proxyA, proxyB := newCutProxy(t, srv), newCutProxy(t, srv)
	join := func(url, user string) *peer {
		p := newPeerAt(t, srv, parley.EngineConfig{AppID: srv.AppID, ServerURL: url}, "stream", parley.UserInfo{UserID: user})
		p.join(t)
		p.login(t)
		return p
	}
	alice, bob := join(proxyA.URL(), "alice"), join(proxyB.URL(), "bob")
	alice.rec.WaitUserJoined(t, "bob")
	for _, r := range []*parleytest.Recorder{alice.rec, alice.eng, bob.rec, bob.eng} {
		r.Timeout = 30 * time.Second
	}

	// Bob's room transport dies once he has received 60% of the room
	// messages: the server holds the rest, and what he had not acked, for
	// his rejoin. The handler only signals; the crash happens off it.
	var received atomic.Int64
	crashBob, stop := make(chan struct{}), make(chan struct{})
	bob.rec.SetHook(onMessage(func(parleytest.Message) {
		if received.Add(1) == inRoom*6/10 {
			close(crashBob)
		}
	}))
	crashed := make(chan error, 1)
	go func() {
		select {
		case <-crashBob:
			crashed <- parley.CrashRoomTransport(bob.room)
		case <-stop:
			crashed <- nil
		}
	}()
	defer func() { close(stop); <-crashed }()

	live := func(r *parley.Room) {
		require.Eventually(t, func() bool { return !parley.Rebuilding(r) }, 30*time.Second, time.Millisecond)
	}
	faults := map[int]func(){
		inRoom / 4: func() { require.NoError(t, parley.CrashRoomTransport(alice.room)) },
		inRoom / 2: proxyA.cut,
		// Back, and streaming on its new transport: closed again with
		// that traffic in flight.
		7 * inRoom / 10: func() { live(alice.room); require.NoError(t, parley.CrashRoomTransport(alice.room)) },
		8 * inRoom / 10: proxyB.cut,
	}
	var roomIDs, outIDs []int64
	start := time.Now()
	for i := range inRoom {
		if f := faults[i]; f != nil {
			f()
		}
		roomIDs = append(roomIDs, alice.room.SendUserMessage("bob", strconv.Itoa(i), parley.MessageConfigReliableOrdered))
		if i%5 == 0 {
			outIDs = append(outIDs, alice.e.SendUserMessageOutsideRoom("bob", strconv.Itoa(i/5), parley.MessageConfigReliableOrdered))
		}
	}
	for i, m := range bob.rec.NextMessages(t, inRoom) {
		require.Equal(t, roomMsg("alice", false, false, []byte(strconv.Itoa(i))), m, "room message %d out of order, doubled or lost", i)
	}
	for i, m := range bob.eng.NextMessages(t, outside) {
		require.Equal(t, outsideMsg("alice", false, []byte(strconv.Itoa(i))), m, "outside message %d out of order, doubled or lost", i)
	}
	for id, r := range alice.rec.WaitResults(t, roomIDs...) { // fails on a second result
		require.Equal(t, userResult(id, parley.UserMessageSendResultSuccess), r)
	}
	for id, r := range alice.eng.WaitResults(t, outIDs...) {
		require.Equal(t, outsideResult(id, parley.UserMessageSendResultSuccess), r)
	}
	require.NoError(t, <-crashed, "bob's transport crash")
	crashed <- nil // for the deferred wait
	t.Logf("%d room + %d outside messages across 3 transport losses and 2 signaling cuts: all delivered once, in order, all Success, in %v",
		inRoom, outside, time.Since(start).Round(time.Millisecond))

	// A duplicate would come before a marker sent now: each path delivers
	// in order.
	roomEnd := alice.room.SendUserMessage("bob", "end", parley.MessageConfigReliableOrdered)
	outEnd := alice.e.SendUserMessageOutsideRoom("bob", "end", parley.MessageConfigReliableOrdered)
	isEnd := func(m parleytest.Message) bool { return string(m.Payload) == "end" }
	require.Empty(t, msgsUntil(t, bob.rec, isEnd), "room messages delivered twice")
	require.Empty(t, msgsUntil(t, bob.eng, isEnd), "outside messages delivered twice")
	require.Equal(t, userResult(roomEnd, parley.UserMessageSendResultSuccess), alice.rec.WaitResult(t, roomEnd))
	require.Equal(t, outsideResult(outEnd, parley.UserMessageSendResultSuccess), alice.eng.WaitResult(t, outEnd))

	// Both rooms came back by themselves, alice's twice, with no other
	// state on the way.
	for _, c := range []struct {
		p       *peer
		rejoins int
	}{{alice, 2}, {bob, 1}} {
		for range c.rejoins {
			sc := c.p.rec.NextRoomState(t)
			require.Equal(t, 0, sc.State, "%s's room state (%v)", c.p.user, parley.ErrorCode(sc.State))
			require.Equal(t, parley.JoinTypeReconnected, sc.Info.JoinType)
		}
		requireNone[parleytest.RoomStateChanged](t, c.p.rec, c.p.user+"'s room state")
	}
	alice.eng.WaitState(t, parley.ConnectionStateReconnected) // both cuts took effect
	bob.eng.WaitState(t, parley.ConnectionStateReconnected)
}

// TestUnreachableDuringGrace: while a logged-in user's connection is down
// and the server keeps its session, others see it Unreachable; Online
// again once it has resumed.
func TestUnreachableDuringGrace(t *testing.T) {
	srv := parleytest.NewServer(t)
	proxy := newCutProxy(t, srv)
	alice := newPeerAt(t, srv, parley.EngineConfig{AppID: srv.AppID, ServerURL: proxy.URL()}, "", parley.UserInfo{UserID: "alice"})
	alice.login(t)
	watcher := loggedIn(t, srv, "watcher")
	status := func() parley.UserOnlineStatus { return watcher.status(t, "alice") }
	require.Equal(t, parley.UserOnlineStatusOnline, status())
	proxy.block()
	proxy.cut()
	require.Eventually(t, func() bool { return status() == parley.UserOnlineStatusUnreachable }, 15*time.Second, 20*time.Millisecond)
	proxy.unblock()
	alice.eng.WaitState(t, parley.ConnectionStateReconnected)
	require.Equal(t, parley.UserOnlineStatusOnline, status())
}
