package server

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley/internal/transport"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// outsideSend sends a reliable outside-room message.
func (p *peer) outsideSend(to string, id int64) {
	p.t.Helper()
	p.send(&pb.ClientFrame{Body: &pb.ClientFrame_Send{Send: &pb.OutsideMessage{
		MsgId: id, To: to, Reliable: true, Payload: []byte("hello"),
	}}})
}

// outsideAck acknowledges peer's messages up to upTo.
func (p *peer) outsideAck(from string, upTo int64) {
	p.t.Helper()
	p.send(&pb.ClientFrame{Body: &pb.ClientFrame_Ack{Ack: &pb.Ack{Peer: from, UpTo: upTo}}})
}

// received waits for the message id from from.
func (p *peer) received(from string, id int64) {
	p.t.Helper()
	m := p.next(func(f *pb.ServerFrame) bool { return f.GetMessage() != nil }).GetMessage()
	require.Equal(p.t, from, m.From)
	require.Equal(p.t, id, m.MsgId)
}

// outcome is the next Result or Ack the peer gets, as "result <id> <code>"
// or "ack <peer> <upTo>".
func (p *peer) outcome() *pb.ServerFrame {
	p.t.Helper()
	return p.next(func(f *pb.ServerFrame) bool { return f.GetResult() != nil || f.GetAck() != nil })
}

// TestAckSettlesOnlyItsReceiversMessages: a reliable outside-room message
// delivered to a login that is replaced before it acknowledges gets
// NoReceiver, and the ack of the login that replaced it, which covers a
// higher ID, reaches the sender after that result: the sender's book,
// which settles by user ID, never counts the first message as delivered.
func TestAckSettlesOnlyItsReceiversMessages(t *testing.T) {
	s := startServer(t)
	a, b1, b2 := newPeer(t, s), newPeer(t, s), newPeer(t, s)
	a.login("a")
	b1.login("b")
	a.outsideSend("b", 1)
	b1.received("a", 1) // and never acknowledged

	b2.login("b") // replaces b1 while message 1 awaits its ack
	b1.next(func(f *pb.ServerFrame) bool { return f.GetLoggedOut() != nil })
	a.outsideSend("b", 2)
	b2.received("a", 2)
	b2.outsideAck("a", 2)

	f := a.outcome()
	require.NotNil(t, f.GetResult(), "first outcome %v: message 1 must fail before an ack covers it", f)
	require.Equal(t, int64(1), f.GetResult().MsgId)
	require.Equal(t, int32(resultNoReceiver), f.GetResult().Code)
	f = a.outcome()
	require.True(t, ackIs(f.GetAck(), &pb.Ack{Peer: "b", UpTo: 2}), "then the ack of message 2, got %v", f)
}

// TestAckGoesToTheSendingLogin: results and acks of reliable outside-room
// messages go to the login that sent them, not to whoever is logged in as
// its user now. Here a1's message to b1 fails when b1 is replaced, after
// a2 has replaced a1: a2, whose own message 1 went to c, must not hear of
// a1's message 1; it gets c's ack of its own.
func TestAckGoesToTheSendingLogin(t *testing.T) {
	s := startServer(t)
	a1, a2, b1, b2, c := newPeer(t, s), newPeer(t, s), newPeer(t, s), newPeer(t, s), newPeer(t, s)
	a1.login("a")
	b1.login("b")
	c.login("c")
	a1.outsideSend("b", 1)
	b1.received("a", 1)

	a2.login("a") // a second Engine of a: its IDs start at 1 again
	a1.next(func(f *pb.ServerFrame) bool { return f.GetLoggedOut() != nil })
	a2.outsideSend("c", 1)
	c.received("a", 1)

	b2.login("b") // b1's unacknowledged message 1 (a1's) fails: a1 is gone, nobody to tell
	b1.next(func(f *pb.ServerFrame) bool { return f.GetLoggedOut() != nil })
	c.outsideAck("a", 1)

	f := a2.outcome()
	require.True(t, ackIs(f.GetAck(), &pb.Ack{Peer: "c", UpTo: 1}), "a2's first outcome %v: c's ack of its message 1", f)
}

func ackIs(a, b *pb.Ack) bool { return a != nil && a.Peer == b.Peer && a.UpTo == b.UpTo }

// TestRoomAckSettlesOnlyItsReceiversMessages: in a room, a reliable message
// delivered to a member that is replaced (the same user joins again
// elsewhere) before it acknowledges gets NoReceiver, and the ack of the
// member that replaced it, which covers a higher ID, reaches the sender
// after that result, however late the replaced member's teardown runs.
// The test holds the old member's session lock to keep its teardown
// (which takes it) from running until the end.
func TestRoomAckSettlesOnlyItsReceiversMessages(t *testing.T) {
	s := startServer(t)
	a, b1, b2 := newPeer(t, s), newPeer(t, s), newPeer(t, s)
	aPC, aCh := a.join("r", "a", false)
	aIn := packets(t, aPC, aCh[transport.ChannelReliable])
	b1PC, b1Ch := b1.join("r", "b", false)
	b1In := packets(t, b1PC, b1Ch[transport.ChannelReliable])

	send := func(id int64) {
		t.Helper()
		_, err := aCh[transport.ChannelReliable].Write(packet(t, &pb.Packet{Body: &pb.Packet_Message{Message: &pb.Message{
			MsgId: id, To: "b", Payload: []byte("hello"),
		}}}))
		require.NoError(t, err)
	}
	isMessage := func(p *pb.Packet) bool { return p.GetMessage() != nil }
	send(1)
	require.Equal(t, int64(1), nextPacket(t, b1In, isMessage).GetMessage().MsgId) // and never acknowledged

	old := s.activeMember(t, "r", "b")
	old.sess.mu.Lock() // the old member's teardown waits here
	held := true
	defer func() {
		if held {
			old.sess.mu.Unlock()
		}
	}()
	b2PC, b2Ch := b2.join("r", "b", false) // replaces b1
	b2In := packets(t, b2PC, b2Ch[transport.ChannelReliable])
	send(2)
	require.Equal(t, int64(2), nextPacket(t, b2In, isMessage).GetMessage().MsgId)
	_, err := b2Ch[transport.ChannelReliable].Write(packet(t, &pb.Packet{Body: &pb.Packet_Ack{Ack: &pb.Ack{Peer: "a", UpTo: 2}}}))
	require.NoError(t, err)

	outcome := func(p *pb.Packet) bool { return p.GetResult() != nil || p.GetAck() != nil }
	p := nextPacket(t, aIn, outcome)
	require.NotNil(t, p.GetResult(), "first outcome %v: message 1 must fail before an ack covers it", p)
	require.Equal(t, int64(1), p.GetResult().MsgId)
	require.Equal(t, int32(resultNoReceiver), p.GetResult().Code)
	p = nextPacket(t, aIn, outcome)
	require.True(t, ackIs(p.GetAck(), &pb.Ack{Peer: "b", UpTo: 2}), "then the ack of message 2, got %v", p)

	old.sess.mu.Unlock()
	held = false
}

// activeMember is the active member of user in room.
func (s *Server) activeMember(t *testing.T, roomID, user string) *member {
	t.Helper()
	s.mu.Lock()
	r := s.rooms[roomKey{testAppID, roomID}]
	s.mu.Unlock()
	require.NotNil(t, r)
	m := r.member(user)
	require.NotNil(t, m)
	return m
}

// TestOutsideBacklogBounded: a receiver that never acknowledges holds at
// most maxUnackedOutside reliable outside-room messages at the server,
// however many are sent to it: past the bound each send fails at once
// with NoRelayPath and is not delivered. Once it acknowledges, messages go
// through again.
func TestOutsideBacklogBounded(t *testing.T) {
	s := startServer(t)
	a, b := newPeer(t, s), newPeer(t, s)
	a.login("a")
	b.login("b")
	// In rounds of 256, so that b's signaling queue (1024 frames) keeps up.
	const extra = 256
	id := int64(0)
	for id < maxUnackedOutside+extra {
		from := id + 1
		for range 256 {
			id++
			a.outsideSend("b", id)
		}
		for i := from; i <= id; i++ {
			if i <= maxUnackedOutside {
				b.received("a", i)
				continue
			}
			r := a.outcome().GetResult()
			require.NotNil(t, r)
			require.Equal(t, i, r.MsgId)
			require.Equal(t, int32(resultNoRelayPath), r.Code)
		}
	}
	books := func() (in, out int) {
		t.Helper()
		bs, as := s.loggedIn(loginKey{testAppID, "b"}), s.loggedIn(loginKey{testAppID, "a"})
		inbox, outbox := bs.inbox.Load(), as.outbox.Load()
		inbox.mu.Lock()
		in = len(inbox.q)
		inbox.mu.Unlock()
		outbox.mu.Lock()
		out = len(outbox.q["b"])
		outbox.mu.Unlock()
		return in, out
	}
	in, out := books()
	require.Equal(t, maxUnackedOutside, in, "the receiver's book")
	require.Equal(t, maxUnackedOutside, out, "the sender's book")

	b.outsideAck("a", 10)
	require.True(t, ackIs(a.outcome().GetAck(), &pb.Ack{Peer: "b", UpTo: 10}))
	next := id + 1
	a.outsideSend("b", next)
	b.received("a", next)
	in, out = books()
	require.Equal(t, maxUnackedOutside-10+1, in)
	require.Equal(t, maxUnackedOutside-10+1, out)
}
