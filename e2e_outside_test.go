package parley_test

// End-to-end tests of messages outside rooms: SendUserMessageOutsideRoom
// and its binary twin, their results, quotas and message IDs, against a
// real parleytest server and real Engines over loopback.

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
	"github.com/parleyhq/parley/server"
)

// --- Messages outside rooms ----------------------------------------------

// TestOutsideRoomMessages sends text and binary both ways in every mode:
// Success, and the bytes arrive as sent, from the right sender.
func TestOutsideRoomMessages(t *testing.T) {
	srv := parleytest.NewServer(t)
	a, b := loggedIn(t, srv, "alice"), loggedIn(t, srv, "bob")
	modes := []parley.MessageConfig{
		parley.MessageConfigReliableOrdered,
		parley.MessageConfigUnreliableOrdered,
		parley.MessageConfigUnreliableUnordered,
	}
	for i, mode := range modes {
		t.Run(mode.String(), func(t *testing.T) {
			for _, dir := range []struct{ from, to *peer }{{a, b}, {b, a}} {
				text := fmt.Sprintf("héllo wörld ✓ %s→%s %v", dir.from.user, dir.to.user, mode)
				id := dir.from.e.SendUserMessageOutsideRoom(dir.to.user, text, mode)
				require.Positive(t, id)
				require.Equal(t, parley.UserMessageSendResultSuccess, dir.from.sent(t, id))
				require.Equal(t, outsideMsg(dir.from.user, false, []byte(text)), dir.to.recv(t))

				bin := payloadOf(1000+i, byte(i))
				sent := bytes.Clone(bin)
				id = dir.from.e.SendUserBinaryMessageOutsideRoom(dir.to.user, bin, mode)
				for j := range bin { // not retained after the call returns
					bin[j] = 0xEE
				}
				require.Equal(t, parley.UserMessageSendResultSuccess, dir.from.sent(t, id))
				require.Equal(t, outsideMsg(dir.from.user, true, sent), dir.to.recv(t))
			}
		})
	}
	a.quiet(t)
	b.quiet(t)
}

func TestOutsideRoomSendResults(t *testing.T) {
	srv := parleytest.NewServer(t)
	a, b := loggedIn(t, srv, "alice"), loggedIn(t, srv, "bob")
	modes := []parley.MessageConfig{parley.MessageConfigReliableOrdered, parley.MessageConfigUnreliableOrdered}

	t.Run("NoReceiver", func(t *testing.T) {
		for _, mode := range modes {
			id := a.e.SendUserMessageOutsideRoom("nobody", "hi", mode)
			require.Equal(t, parley.UserMessageSendResultNoReceiver, a.sent(t, id), "%v text", mode)
			id = a.e.SendUserBinaryMessageOutsideRoom("nobody", []byte{1}, mode)
			require.Equal(t, parley.UserMessageSendResultNoReceiver, a.sent(t, id), "%v binary", mode)
		}
		// Nobody can log in with an illegal ID.
		for _, to := range []string{"no such user", strings.Repeat("x", 129), "\xff\xfe"} {
			id := a.e.SendUserMessageOutsideRoom(to, "hi", parley.MessageConfigReliableOrdered)
			require.Equal(t, parley.UserMessageSendResultNoReceiver, a.sent(t, id), "to %q", to)
			id = a.e.SendUserBinaryMessageOutsideRoom(to, []byte{1}, parley.MessageConfigUnreliableOrdered)
			require.Equal(t, parley.UserMessageSendResultNoReceiver, a.sent(t, id), "binary to %q", to)
		}
		// Online in a room is not logged in.
		c := newLoginPeer(t, srv, "carol")
		c.enter(t, "carols-room")
		id := a.e.SendUserMessageOutsideRoom("carol", "hi", parley.MessageConfigReliableOrdered)
		require.Equal(t, parley.UserMessageSendResultNoReceiver, a.sent(t, id), "a user in a room, not logged in")
	})

	t.Run("NotLogin", func(t *testing.T) {
		p := newLoginPeer(t, srv, "never")
		id := p.e.SendUserMessageOutsideRoom("alice", "hi", parley.MessageConfigReliableOrdered)
		require.Equal(t, parley.UserMessageSendResultNotLogin, p.sent(t, id))
		id = p.e.SendUserBinaryMessageOutsideRoom("alice", []byte{1}, parley.MessageConfigUnreliableOrdered)
		require.Equal(t, parley.UserMessageSendResultNotLogin, p.sent(t, id))

		q := loggedIn(t, srv, "quitter")
		q.logout(t)
		id = q.e.SendUserMessageOutsideRoom("alice", "hi", parley.MessageConfigReliableOrdered)
		require.Equal(t, parley.UserMessageSendResultNotLogin, q.sent(t, id), "after Logout")
		a.quiet(t) // nothing reached alice
	})

	t.Run("EmptyUser", func(t *testing.T) {
		for _, mode := range modes {
			id := a.e.SendUserMessageOutsideRoom("", "hi", mode)
			require.Equal(t, parley.UserMessageSendResultEmptyUser, a.sent(t, id), "%v text", mode)
			id = a.e.SendUserBinaryMessageOutsideRoom("", []byte{1}, mode)
			require.Equal(t, parley.UserMessageSendResultEmptyUser, a.sent(t, id), "%v binary", mode)
		}
	})

	t.Run("ExceedMaxLength", func(t *testing.T) {
		for _, mode := range modes {
			id := a.e.SendUserMessageOutsideRoom("bob", textOf(65537, 1), mode)
			require.Equal(t, parley.UserMessageSendResultExceedMaxLength, a.sent(t, id), "%v text", mode)
			id = a.e.SendUserBinaryMessageOutsideRoom("bob", payloadOf(65537, 1), mode)
			require.Equal(t, parley.UserMessageSendResultExceedMaxLength, a.sent(t, id), "%v binary", mode)
		}
		b.quiet(t) // nothing reached bob
	})

	t.Run("65536 bytes arrive byte-exact", func(t *testing.T) {
		for i, mode := range modes {
			text := textOf(65536, byte(i))
			id := a.e.SendUserMessageOutsideRoom("bob", text, mode)
			require.Equal(t, parley.UserMessageSendResultSuccess, a.sent(t, id), "%v text", mode)
			got := b.recv(t)
			require.Equal(t, "alice", got.From)
			require.False(t, got.Binary)
			require.Len(t, got.Payload, 65536)
			require.True(t, bytes.Equal([]byte(text), got.Payload), "%v text differs", mode)

			bin := payloadOf(65536, byte(i))
			id = b.e.SendUserBinaryMessageOutsideRoom("alice", bin, mode)
			require.Equal(t, parley.UserMessageSendResultSuccess, b.sent(t, id), "%v binary", mode)
			got = a.recv(t)
			require.Equal(t, "bob", got.From)
			require.True(t, got.Binary)
			require.Len(t, got.Payload, 65536)
			require.True(t, bytes.Equal(bin, got.Payload), "%v binary differs", mode)
		}
	})
	a.quiet(t)
	b.quiet(t)
}

// TestOutsideRoomExceedQPS: over the user-message quota a send gets
// ExceedQPS and nothing is relayed.
func TestOutsideRoomExceedQPS(t *testing.T) {
	const quota, n = 5, 15
	srv := parleytest.NewServer(t, parleytest.WithQuotas(server.Quotas{UserMessagesPerSecond: quota}))
	a, b := loggedIn(t, srv, "alice"), loggedIn(t, srv, "bob")

	// One burst: the server takes the frames in order, far faster than the
	// quota refills (one message per 200 ms), so the first `quota` pass and
	// some of the rest do not.
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = a.e.SendUserMessageOutsideRoom("bob", "m"+strconv.Itoa(i), parley.MessageConfigUnreliableOrdered)
	}
	got := a.sentBatch(t, ids)
	var want []parleytest.Message
	exceeded := 0
	for i, id := range ids {
		switch r := got[id]; {
		case i < quota:
			require.Equalf(t, parley.UserMessageSendResultSuccess, r, "message %d of the burst", i)
			want = append(want, outsideMsg("alice", false, []byte("m"+strconv.Itoa(i))))
		case r == parley.UserMessageSendResultSuccess:
			want = append(want, outsideMsg("alice", false, []byte("m"+strconv.Itoa(i))))
		default:
			require.Equalf(t, parley.UserMessageSendResultExceedQPS, r, "message %d of the burst", i)
			exceeded++
		}
	}
	require.Positive(t, exceeded, "no ExceedQPS in a burst of %d with a quota of %d/s", n, quota)

	// bob gets exactly the messages that passed: the server forwarded them
	// before it answered alice, so they precede the answer to bob's question.
	for _, w := range want {
		require.Equal(t, w, b.recv(t))
	}
	b.quiet(t)
}

// TestOutsideRoomQuotaSharedWithRoom: the user-message quota counts the
// messages of one user in rooms and outside together. The quota is 1/s so
// that the bucket, once emptied, stays empty for a whole second, far longer
// than the round trips between the sends.
func TestOutsideRoomQuotaSharedWithRoom(t *testing.T) {
	srv := parleytest.NewServer(t, parleytest.WithQuotas(server.Quotas{UserMessagesPerSecond: 1}))
	b := loggedIn(t, srv, "bob")
	c := newLoginPeer(t, srv, "carol")

	t.Run("in room then outside", func(t *testing.T) {
		a := loggedIn(t, srv, "alice")
		ra, rc := enterBoth(t, "quota-1", a, c)
		id := ra.room.SendUserMessage("carol", "in room", parley.MessageConfigUnreliableOrdered)
		require.Equal(t, parley.UserMessageSendResultSuccess, ra.userSent(t, id))
		require.Equal(t, roomMsg("alice", false, false, []byte("in room")), rc.rec.NextMessage(t))
		id = a.e.SendUserMessageOutsideRoom("bob", "outside", parley.MessageConfigUnreliableOrdered)
		require.Equal(t, parley.UserMessageSendResultExceedQPS, a.sent(t, id))
		b.quiet(t) // nothing relayed
	})

	t.Run("outside then in room", func(t *testing.T) {
		d := loggedIn(t, srv, "dave")
		rd, _ := enterBoth(t, "quota-2", d, c)
		id := d.e.SendUserMessageOutsideRoom("bob", "outside", parley.MessageConfigUnreliableOrdered)
		require.Equal(t, parley.UserMessageSendResultSuccess, d.sent(t, id))
		require.Equal(t, outsideMsg("dave", false, []byte("outside")), b.recv(t))
		id = rd.room.SendUserMessage("carol", "in room", parley.MessageConfigUnreliableOrdered)
		require.Equal(t, parley.UserMessageSendResultExceedQPS, rd.userSent(t, id))
	})
}

// TestOutsideRoomMessageIDsSharedWithRoomAndServer interleaves in-room,
// outside-room and server messages, failures included, on one Engine: the
// IDs run 1, 2, 3, ... across all of them and each comes back exactly once,
// in its own callback.
func TestOutsideRoomMessageIDsSharedWithRoomAndServer(t *testing.T) {
	hook := newHook(t)
	srv := serverFor(t, []string{hook.ts.URL}, nil)
	a, b, c := newLoginPeer(t, srv, "alice"), loggedIn(t, srv, "bob"), newLoginPeer(t, srv, "carol")
	ra, _ := enterBoth(t, "ids", a, c)
	a.login(t)
	require.Equal(t, 200, a.setParams(t, "sig", hook.ts.URL+"/ok"))

	type want struct {
		kind string // "room", "broadcast", "outside", "server"
		code int
	}
	wants := map[int64]want{}
	next := int64(1)
	expectID := func(id int64, kind string, code int) {
		t.Helper()
		require.Equal(t, next, id, "message ID of a %s send", kind)
		next++
		wants[id] = want{kind, code}
	}
	const rounds = 3
	for i := range rounds {
		m := "m" + strconv.Itoa(i)
		expectID(ra.room.SendUserMessage("carol", m, parley.MessageConfigReliableOrdered), "room", int(parley.UserMessageSendResultSuccess))
		expectID(a.e.SendUserMessageOutsideRoom("bob", m, parley.MessageConfigReliableOrdered), "outside", int(parley.UserMessageSendResultSuccess))
		expectID(a.e.SendServerMessage(m), "server", int(parley.UserMessageSendResultSuccess))
		expectID(ra.room.SendRoomMessage(m), "broadcast", int(parley.RoomMessageSendResultSuccess))
		expectID(a.e.SendUserBinaryMessageOutsideRoom("nobody", []byte(m), parley.MessageConfigUnreliableOrdered), "outside", int(parley.UserMessageSendResultNoReceiver))
		expectID(ra.room.SendUserBinaryMessage("", []byte(m), parley.MessageConfigReliableOrdered), "room", int(parley.UserMessageSendResultEmptyUser))
		expectID(a.e.SendServerBinaryMessage(payloadOf(65537, 0)), "server", int(parley.UserMessageSendResultExceedMaxLength))
		expectID(a.e.SendUserMessageOutsideRoom("", m, parley.MessageConfigReliableOrdered), "outside", int(parley.UserMessageSendResultEmptyUser))
	}

	got := map[int64]want{}
	record := func(id int64, w want) {
		t.Helper()
		_, dup := got[id]
		require.Falsef(t, dup, "second result for message ID %d (%+v)", id, w)
		got[id] = w
	}
	// The Engine's results, then the room's; anything else fails.
	kinds := map[parleytest.ResultKind]string{
		parleytest.OutsideRoomResult:   "outside",
		parleytest.ServerMessageResult: "server",
		parleytest.UserMessageResult:   "room",
		parleytest.RoomMessageResult:   "broadcast",
	}
	perRec := map[string]int{}
	for _, w := range wants {
		perRec[w.kind]++
	}
	for _, c := range []struct {
		rec *parleytest.Recorder
		n   int
	}{{a.eng, perRec["outside"] + perRec["server"]}, {ra.rec, perRec["room"] + perRec["broadcast"]}} {
		for range c.n {
			r := expect[parleytest.SendResult](t, c.rec)
			record(r.ID, want{kinds[r.Kind], r.Code})
		}
	}
	require.Equal(t, wants, got)

	// Nothing more: the next result of each kind is that of the next send.
	id := a.e.SendUserMessageOutsideRoom("bob", "last", parley.MessageConfigReliableOrdered)
	require.Equal(t, next, id)
	require.Equal(t, parley.UserMessageSendResultSuccess, a.sent(t, id))
	id = a.e.SendServerMessage("last")
	require.Equal(t, next+1, id)
	require.Equal(t, parley.UserMessageSendResultSuccess, a.serverSent(t, id).Result)
	id = ra.room.SendRoomMessage("last")
	require.Equal(t, next+2, id)
	require.Equal(t, roomResult(id, parley.RoomMessageSendResultSuccess), expect[parleytest.SendResult](t, ra.rec))
	a.quiet(t)

	// And bob got alice's outside messages in order.
	for i := range rounds {
		require.Equal(t, outsideMsg("alice", false, []byte("m"+strconv.Itoa(i))), b.recv(t))
	}
	require.Equal(t, outsideMsg("alice", false, []byte("last")), b.recv(t))
}
