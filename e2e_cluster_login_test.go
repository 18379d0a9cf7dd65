package parley_test

// End-to-end tests of logins across the nodes of a cluster: duplicate
// login, outside-room messages and GetPeerOnlineStatus find the user
// wherever it is logged in. Real Engines on the nodes of a
// parleytest.Cluster, over loopback.

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
)

// TestClusterLoginDuplicate: a login on another node logs the first out
// (DuplicateLogin), and the user is found on the second node only.
func TestClusterLoginDuplicate(t *testing.T) {
	c := parleytest.NewCluster(t, 3)
	obs := loggedIn(t, c.Nodes[2], "observer")
	first := loggedIn(t, c.Nodes[0], "bob")
	second := loggedIn(t, c.Nodes[1], "bob")
	require.Equal(t, parleytest.Logout{Reason: parley.LogoutReasonDuplicateLogin}, expect[parleytest.Logout](t, first.eng))
	require.ErrorIs(t, first.e.GetPeerOnlineStatus("observer"), parley.ErrNotLoggedIn)

	require.Equal(t, parley.UserOnlineStatusOnline, obs.status(t, "bob"))
	id := obs.e.SendUserMessageOutsideRoom("bob", "to the second bob", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, obs.sent(t, id))
	require.Equal(t, outsideMsg("observer", false, []byte("to the second bob")), second.recv(t))
	second.quiet(t)
}

// TestClusterOutsideRoomMessages: text and binary, in every mode, between
// logins on two nodes, both ways: Success (reliable ones once the
// receiving Engine accepted them), the bytes as sent, in order; NoReceiver
// for a user logged in nowhere.
func TestClusterOutsideRoomMessages(t *testing.T) {
	c := parleytest.NewCluster(t, 2)
	a, b := loggedIn(t, c.Nodes[0], "alice"), loggedIn(t, c.Nodes[1], "bob")
	modes := []parley.MessageConfig{
		parley.MessageConfigReliableOrdered,
		parley.MessageConfigUnreliableOrdered,
		parley.MessageConfigUnreliableUnordered,
	}
	for i, mode := range modes {
		for _, dir := range []struct{ from, to *peer }{{a, b}, {b, a}} {
			text := fmt.Sprintf("héllo ✓ %s→%s %v", dir.from.user, dir.to.user, mode)
			id := dir.from.e.SendUserMessageOutsideRoom(dir.to.user, text, mode)
			require.Equal(t, parley.UserMessageSendResultSuccess, dir.from.sent(t, id), "%v text", mode)
			require.Equal(t, outsideMsg(dir.from.user, false, []byte(text)), dir.to.recv(t))

			bin := payloadOf(65536, byte(i))
			id = dir.from.e.SendUserBinaryMessageOutsideRoom(dir.to.user, bin, mode)
			require.Equal(t, parley.UserMessageSendResultSuccess, dir.from.sent(t, id), "%v binary", mode)
			require.Equal(t, outsideMsg(dir.from.user, true, bin), dir.to.recv(t))
		}
	}

	// A burst of reliable messages: all arrive in order, each Success.
	var ids []int64
	for i := range 100 {
		ids = append(ids, a.e.SendUserMessageOutsideRoom("bob", fmt.Sprint(i), parley.MessageConfigReliableOrdered))
	}
	for i := range 100 {
		require.Equal(t, outsideMsg("alice", false, []byte(fmt.Sprint(i))), b.recv(t))
	}
	for id, r := range a.sentBatch(t, ids) {
		require.Equal(t, parley.UserMessageSendResultSuccess, r, "message %d", id)
	}

	for _, mode := range modes[:2] {
		id := a.e.SendUserMessageOutsideRoom("nobody", "hi", mode)
		require.Equal(t, parley.UserMessageSendResultNoReceiver, a.sent(t, id), "%v", mode)
	}
	a.quiet(t)
	b.quiet(t)
}

// TestClusterPeerOnlineStatus: a login on another node is Online; after
// its Logout, and for a user never logged in, Offline.
func TestClusterPeerOnlineStatus(t *testing.T) {
	c := parleytest.NewCluster(t, 2)
	a := loggedIn(t, c.Nodes[0], "alice")
	require.Equal(t, parley.UserOnlineStatusOffline, a.status(t, "bob"), "before his login")
	b := loggedIn(t, c.Nodes[1], "bob")
	require.Equal(t, parley.UserOnlineStatusOnline, a.status(t, "bob"))
	require.Equal(t, parley.UserOnlineStatusOnline, b.status(t, "alice"))
	require.Equal(t, parley.UserOnlineStatusOffline, a.status(t, "never-logged-in"))
	b.logout(t)
	require.Equal(t, parley.UserOnlineStatusOffline, a.status(t, "bob"), "after his Logout")
}

// TestClusterOutsideReceiverNodeKilled: the receiver's node crashes. The
// reliable messages sent around the crash each get exactly one result;
// one sent after it is never Success (NoReceiver: nobody holds the login
// any more; or NoRelayPath), and nothing hangs.
func TestClusterOutsideReceiverNodeKilled(t *testing.T) {
	c := parleytest.NewCluster(t, 2)
	a, b := loggedIn(t, c.Nodes[0], "alice"), loggedIn(t, c.Nodes[1], "bob")
	id := a.e.SendUserMessageOutsideRoom("bob", "before", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, a.sent(t, id))
	require.Equal(t, outsideMsg("alice", false, []byte("before")), b.recv(t))

	var ids []int64
	for i := range 20 {
		ids = append(ids, a.e.SendUserMessageOutsideRoom("bob", fmt.Sprint(i), parley.MessageConfigReliableOrdered))
		if i == 10 {
			c.Nodes[1].Kill()
		}
	}
	results := a.sentBatch(t, ids)
	counts := map[parley.UserMessageSendResult]int{}
	for id, r := range results {
		counts[r]++
		require.Contains(t, []parley.UserMessageSendResult{
			parley.UserMessageSendResultSuccess, parley.UserMessageSendResultNoReceiver, parley.UserMessageSendResultNoRelayPath,
		}, r, "message %d", id)
	}
	t.Logf("sent around the crash: %v", counts)

	id = a.e.SendUserMessageOutsideRoom("bob", "after", parley.MessageConfigReliableOrdered)
	r := a.sent(t, id)
	require.Contains(t, []parley.UserMessageSendResult{parley.UserMessageSendResultNoReceiver, parley.UserMessageSendResultNoRelayPath}, r)
	require.Equal(t, parley.UserOnlineStatusOffline, a.status(t, "bob"))
	a.quiet(t)
}
