package parley_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
)

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
