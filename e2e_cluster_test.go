package parley_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
)

// Rooms across the nodes of a cluster (parleytest.NewCluster: nodes on one
// embedded NATS server). Each peer's Engine talks to one node; what is
// tested is that a room spread over nodes behaves as on one node.

// TestClusterRoomAcrossNodes: three members of one room on three nodes
// see each other join (the member list of a later joiner is the room's,
// not its node's), exchange user messages in every mode, text and
// binary, with their results (end-to-end Success for reliable ones), and
// broadcasts; a user in no node of the room is NoReceiver; a leave
// reaches the other nodes as Quit.
func TestClusterRoomAcrossNodes(t *testing.T) {
	c := parleytest.NewCluster(t, 3)
	a := newPeer(t, c.Nodes[0], "room1", "alice")
	b := newPeer(t, c.Nodes[1], "room1", "bob")
	joinAll(t, a, b)
	carol := newPeer(t, c.Nodes[2], "room1", "carol")
	carol.join(t)
	// The two members of the other nodes are carol's list.
	got := []string{parleytest.NextOf[parleytest.UserJoined](t, carol.rec).User.UserID, parleytest.NextOf[parleytest.UserJoined](t, carol.rec).User.UserID}
	require.ElementsMatch(t, []string{"alice", "bob"}, got)
	a.rec.WaitUserJoined(t, "carol")
	b.rec.WaitUserJoined(t, "carol")

	big := bytes.Repeat([]byte{0xA5}, 65536)
	for _, mode := range []parley.MessageConfig{reliableOrdered, unreliableOrdered, unreliableUnordered} {
		id := a.room.SendUserMessage("bob", "hi "+mode.String(), mode)
		require.Equal(t, userResult(id, parley.UserMessageSendResultSuccess), a.rec.WaitResult(t, id), mode.String())
		require.Equal(t, roomMsg("alice", false, false, []byte("hi "+mode.String())), b.rec.NextMessage(t))
		id = carol.room.SendUserBinaryMessage("alice", big, mode)
		require.Equal(t, userResult(id, parley.UserMessageSendResultSuccess), carol.rec.WaitResult(t, id), mode.String())
		require.Equal(t, roomMsg("carol", false, true, big), a.rec.NextMessage(t))
	}

	id := b.room.SendRoomMessage("to all")
	require.Equal(t, roomResult(id, parley.RoomMessageSendResultSuccess), b.rec.WaitResult(t, id))
	require.Equal(t, roomMsg("bob", true, false, []byte("to all")), a.rec.NextMessage(t))
	require.Equal(t, roomMsg("bob", true, false, []byte("to all")), carol.rec.NextMessage(t))
	id = a.room.SendRoomBinaryMessage([]byte{1, 2, 3})
	require.Equal(t, roomResult(id, parley.RoomMessageSendResultSuccess), a.rec.WaitResult(t, id))
	require.Equal(t, roomMsg("alice", true, true, []byte{1, 2, 3}), b.rec.NextMessage(t))
	require.Equal(t, roomMsg("alice", true, true, []byte{1, 2, 3}), carol.rec.NextMessage(t))

	id = a.room.SendUserMessage("nobody", "x", reliableOrdered)
	require.Equal(t, userResult(id, parley.UserMessageSendResultNoReceiver), a.rec.WaitResult(t, id))

	require.NoError(t, carol.room.LeaveRoom())
	require.Equal(t, parleytest.UserLeave{UserID: "carol", Reason: parley.UserOfflineReasonQuit}, a.rec.WaitUserLeave(t, "carol"))
	require.Equal(t, parleytest.UserLeave{UserID: "carol", Reason: parley.UserOfflineReasonQuit}, b.rec.WaitUserLeave(t, "carol"))
	id = a.room.SendUserMessage("carol", "gone", reliableOrdered)
	require.Equal(t, userResult(id, parley.UserMessageSendResultNoReceiver), a.rec.WaitResult(t, id))
}

// TestClusterOrderAcrossNodes: reliable messages from one member to
// another on a different node arrive in order, each once, each with one
// Success.
func TestClusterOrderAcrossNodes(t *testing.T) {
	c := parleytest.NewCluster(t, 2)
	a := newPeer(t, c.Nodes[0], "room1", "alice")
	b := newPeer(t, c.Nodes[1], "room1", "bob")
	joinAll(t, a, b)
	const n = 1000
	ids := make([]int64, n)
	for i := range n {
		ids[i] = a.room.SendUserMessage("bob", string(rune('a'+i%26))+itoa(i), reliableOrdered)
	}
	results := a.rec.WaitResults(t, ids...)
	for _, id := range ids {
		require.Equal(t, userResult(id, parley.UserMessageSendResultSuccess), results[id], "message %d", id)
	}
	msgs := b.rec.NextMessages(t, n)
	for i, m := range msgs {
		require.Equal(t, string(rune('a'+i%26))+itoa(i), string(m.Payload), "message %d in order", i)
	}
	requireNoMsg(t, b.rec)
}

// TestClusterUserAndRoomOrder: one sender's reliable user messages and
// broadcasts, interleaved, reach a member on another node all of them and
// in the order sent, each with its Success: the receiving SDK takes a
// sender's reliable messages in ID order, and drops one with an ID below
// the last it had as a duplicate.
func TestClusterUserAndRoomOrder(t *testing.T) {
	c := parleytest.NewCluster(t, 2)
	a := newPeer(t, c.Nodes[0], "room1", "alice")
	b := newPeer(t, c.Nodes[1], "room1", "bob")
	joinAll(t, a, b)
	const n = 2000
	want := make([]parleytest.Message, n)
	var userIDs, roomIDs []int64
	for i := range n {
		p := []byte("m" + itoa(i))
		if i%2 == 0 {
			userIDs = append(userIDs, a.room.SendUserBinaryMessage("bob", p, reliableOrdered))
			want[i] = roomMsg("alice", false, true, p)
		} else {
			roomIDs = append(roomIDs, a.room.SendRoomBinaryMessage(p))
			want[i] = roomMsg("alice", true, true, p)
		}
	}
	results := a.rec.WaitResults(t, append(userIDs, roomIDs...)...)
	for _, id := range userIDs {
		require.Equal(t, userResult(id, parley.UserMessageSendResultSuccess), results[id], "user message %d", id)
	}
	for _, id := range roomIDs {
		require.Equal(t, roomResult(id, parley.RoomMessageSendResultSuccess), results[id], "broadcast %d", id)
	}
	require.Equal(t, want, b.rec.NextMessages(t, n))
	requireNoMsg(t, b.rec)
}

// TestClusterDuplicateMemberAcrossNodes: the same user joining the room
// on a second node removes its first member (-1004); the others see it
// leave as Dropped and join again.
func TestClusterDuplicateMemberAcrossNodes(t *testing.T) {
	c := parleytest.NewCluster(t, 2)
	a := newPeer(t, c.Nodes[0], "room1", "alice")
	b1 := newPeer(t, c.Nodes[0], "room1", "bob")
	joinAll(t, a, b1)
	b2 := newPeer(t, c.Nodes[1], "room1", "bob")
	b2.join(t)
	b2.rec.WaitUserJoined(t, "alice")
	require.Equal(t, int(parley.ErrorCodeDuplicateLogin), b1.rec.NextRoomState(t).State, "the first member is removed")
	require.Equal(t, parleytest.UserLeave{UserID: "bob", Reason: parley.UserOfflineReasonDropped}, a.rec.WaitUserLeave(t, "bob"))
	a.rec.WaitUserJoined(t, "bob")
	id := a.room.SendUserMessage("bob", "which bob", reliableOrdered)
	require.Equal(t, userResult(id, parley.UserMessageSendResultSuccess), a.rec.WaitResult(t, id))
	require.Equal(t, roomMsg("alice", false, false, []byte("which bob")), b2.rec.NextMessage(t))
}

func itoa(i int) string {
	var b [20]byte
	n := len(b)
	for {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
		if i == 0 {
			return string(b[n:])
		}
	}
}

// TestClusterNodeDrain: 10,000 reliable messages from a member on one
// node to a member on another, while the receiver's node shuts down
// gracefully and the receiver moves to a third node (WithServerURLs): all
// arrive, in order, each once, and each send has one result, Success. The
// receiver's room is back with JoinTypeReconnected; the sender's room
// hears nothing of the move. With broadcasts: every other message is a
// broadcast to the room, which the receiver's move must not lose either.
// Both on the leaving node: the sender is on the leaving node too and
// moves to another node than the receiver's, at the same time; the node
// that either reaches first has not known the room before.
func TestClusterNodeDrain(t *testing.T) {
	t.Run("user messages", func(t *testing.T) { testNodeDrain(t, false, false) })
	t.Run("with broadcasts", func(t *testing.T) { testNodeDrain(t, true, false) })
	t.Run("both on the leaving node", func(t *testing.T) { testNodeDrain(t, true, true) })
}

func testNodeDrain(t *testing.T, broadcasts, together bool) {
	c := parleytest.NewCluster(t, 3)
	var a *peer
	if together { // on the leaving node too, moving to node 1
		a = newPeerAt(t, c.Nodes[1], parley.EngineConfig{AppID: c.AppID, ServerURL: c.Nodes[1].URL}, "room1",
			parley.UserInfo{UserID: "alice"}, parley.WithServerURLs(c.Nodes[0].URL))
	} else {
		a = newPeer(t, c.Nodes[0], "room1", "alice")
	}
	b := newPeerAt(t, c.Nodes[1], parley.EngineConfig{AppID: c.AppID, ServerURL: c.Nodes[1].URL}, "room1",
		parley.UserInfo{UserID: "bob"}, parley.WithServerURLs(c.Nodes[2].URL))
	joinAll(t, a, b)

	const n = 10000
	payload := func(i int) string { return "m" + itoa(i) }
	broadcast := func(i int) bool { return broadcasts && i%2 == 1 }
	received := make(chan parleytest.Message, n+1000)
	third := make(chan struct{}) // bob has a third of them
	var count atomic.Int32
	b.rec.SetHook(onMessage(func(m parleytest.Message) {
		received <- m
		if count.Add(1) == n/3 {
			close(third)
		}
	}))
	ids := make([]int64, 0, n)
	closed := make(chan struct{})
	for i := range n {
		if i == n/2 {
			<-third                                                 // the drain starts mid-stream, with messages in flight
			go func() { defer close(closed); c.Nodes[1].Close() }() // GoAway to bob, who moves to node 3
		}
		if broadcast(i) {
			ids = append(ids, a.room.SendRoomMessage(payload(i)))
		} else {
			ids = append(ids, a.room.SendUserMessage("bob", payload(i), reliableOrdered))
		}
	}
	results := a.rec.WaitResults(t, ids...)
	for i, id := range ids {
		want := userResult(id, parley.UserMessageSendResultSuccess)
		if broadcast(i) {
			want = roomResult(id, parley.RoomMessageSendResultSuccess)
		}
		require.Equal(t, want, results[id])
	}
	for i := range n {
		select {
		case got := <-received:
			require.Equal(t, roomMsg("alice", broadcast(i), false, []byte(payload(i))), got, "message %d: in order, once", i)
		case <-time.After(waitTimeout):
			t.Fatalf("message %d not received", i)
		}
	}
	requireRejoined(t, b.rec)
	<-closed
	requireNone[parleytest.UserLeave](t, a.rec, "alice hears nothing of bob's move")
	select {
	case extra := <-received:
		t.Fatalf("a message delivered twice: %+v", extra)
	default:
	}
}

// TestClusterNodeCrash: a node killed with a member on it is noticed by
// the others within three heartbeats: the member leaves as Dropped, and a
// reliable message sent to it meanwhile gets one result, NoRelayPath (or
// NoReceiver had the loss been noticed before it), never Success. The
// member's Engine moves to another node and the room goes on.
func TestClusterNodeCrash(t *testing.T) {
	c := parleytest.NewCluster(t, 3)
	a := newPeer(t, c.Nodes[0], "room1", "alice")
	b := newPeerAt(t, c.Nodes[1], parley.EngineConfig{AppID: c.AppID, ServerURL: c.Nodes[1].URL}, "room1",
		parley.UserInfo{UserID: "bob"}, parley.WithServerURLs(c.Nodes[2].URL))
	joinAll(t, a, b)

	killed := time.Now()
	c.Nodes[1].Kill()
	id := a.room.SendUserMessage("bob", "lost?", reliableOrdered)
	res := a.rec.WaitResult(t, id)
	require.Contains(t, []int{int(parley.UserMessageSendResultNoRelayPath), int(parley.UserMessageSendResultNoReceiver)}, res.Code)
	require.Equal(t, parleytest.UserLeave{UserID: "bob", Reason: parley.UserOfflineReasonDropped}, a.rec.WaitUserLeave(t, "bob"))
	t.Logf("crash noticed after %v", time.Since(killed).Round(time.Millisecond))

	requireRejoined(t, b.rec)
	a.rec.WaitUserJoined(t, "bob")
	id = a.room.SendUserMessage("bob", "again", reliableOrdered)
	require.Equal(t, userResult(id, parley.UserMessageSendResultSuccess), a.rec.WaitResult(t, id))
	require.Equal(t, "again", string(b.rec.NextMessage(t).Payload))
}

// TestClusterNATSOutage: with NATS gone, each node serves its own
// members, says "degraded" in /healthz, and a send to a member on another
// node is NoRelayPath; once NATS is back, the room goes on.
func TestClusterNATSOutage(t *testing.T) {
	c := parleytest.NewCluster(t, 2)
	a := newPeer(t, c.Nodes[0], "room1", "alice")
	a2 := newPeer(t, c.Nodes[0], "room1", "amy")
	b := newPeer(t, c.Nodes[1], "room1", "bob")
	joinAll(t, a, a2, b)

	c.StopNATS()
	require.Eventually(t, func() bool { return strings.HasPrefix(health(t, c.Nodes[0]), "degraded") }, waitTimeout, 20*time.Millisecond)
	for _, mode := range []parley.MessageConfig{reliableOrdered, unreliableOrdered} {
		id := a.room.SendUserMessage("bob", "cut off", mode)
		require.Equal(t, userResult(id, parley.UserMessageSendResultNoRelayPath), a.rec.WaitResult(t, id))
	}
	id := a.room.SendUserMessage("amy", "local", reliableOrdered)
	require.Equal(t, userResult(id, parley.UserMessageSendResultSuccess), a.rec.WaitResult(t, id))
	require.Equal(t, "local", string(a2.rec.NextMessage(t).Payload))

	c.StartNATS()
	require.Eventually(t, func() bool { return health(t, c.Nodes[0]) == "ok\n" && health(t, c.Nodes[1]) == "ok\n" }, waitTimeout, 20*time.Millisecond)
	id = a.room.SendUserMessage("bob", "back", reliableOrdered)
	require.Equal(t, userResult(id, parley.UserMessageSendResultSuccess), a.rec.WaitResult(t, id))
	require.Equal(t, "back", string(b.rec.NextMessage(t).Payload))
	requireNone[parleytest.UserLeave](t, a.rec, "nobody left: the outage was NATS's, not a node's")
}

// health is the body of node's /healthz.
func health(t *testing.T, node *parleytest.Server) string {
	t.Helper()
	u := strings.Replace(strings.TrimSuffix(node.URL, "/rtc"), "ws://", "http://", 1) + "/healthz"
	resp, err := http.Get(u)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}
