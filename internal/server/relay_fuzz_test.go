package server

import (
	"bytes"
	"sync"
	"testing"

	"github.com/pion/datachannel"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/parleyhq/parley/internal/transport"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// captureRW is a data channel end that keeps what is written to it.
type captureRW struct {
	mu     sync.Mutex
	writes [][]byte
}

func (c *captureRW) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.writes = append(c.writes, bytes.Clone(b))
	c.mu.Unlock()
	return len(b), nil
}
func (c *captureRW) Read([]byte) (int, error)                       { select {} }
func (c *captureRW) ReadDataChannel([]byte) (int, bool, error)      { select {} }
func (c *captureRW) WriteDataChannel(b []byte, _ bool) (int, error) { return c.Write(b) }
func (c *captureRW) Close() error                                   { return nil }

var _ datachannel.ReadWriteCloser = (*captureRW)(nil)

// relayRig is a room with two active members, a and b, whose channels are
// captureRWs: a unit harness for the relay, with no network.
type relayRig struct {
	srv  *Server
	a, b *member
	outs map[*member][transport.NumChannels]*captureRW
}

func newRelayRig(tb testing.TB, cfg Config) *relayRig {
	tb.Helper()
	cfg.Apps = map[string]string{"012345678901234567890123": "k"}
	srv, err := New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	r := &room{srv: srv, id: "r", members: make(map[string]*member), quota: perSecond(cfg.Quotas.RoomBroadcastsPerSecond)}
	rig := &relayRig{srv: srv, outs: make(map[*member][transport.NumChannels]*captureRW)}
	for _, user := range []string{"a", "b"} {
		ss := &session{srv: srv, id: user, log: zap.NewNop(), members: make(map[string]*member), handles: make(map[uint32]*member)}
		ss.quota.Store(newUserQuota(cfg.Quotas))
		m := newMember(r, ss, user, "", 1)
		x := &rtc{sess: ss, log: zap.NewNop(), open: make(chan struct{})}
		close(x.open)
		var outs [transport.NumChannels]*captureRW
		for i := range outs {
			outs[i] = &captureRW{}
			x.chans[i] = outs[i]
			x.ws[i] = transport.NewWriter(idleDC{}, outs[i], false)
		}
		ss.rtc = x
		m.rtc = x
		m.state = stateActive
		addActive(r, m)
		r.refs++
		ss.members[r.id] = m
		ss.handles[m.handle] = m
		rig.outs[m] = outs
	}
	rig.a, rig.b = r.members["a"], r.members["b"]
	return rig
}

// idleDC is a data channel whose SCTP queue reads empty.
type idleDC struct{}

func (idleDC) BufferedAmount() uint64               { return 0 }
func (idleDC) SetBufferedAmountLowThreshold(uint64) {}
func (idleDC) OnBufferedAmountLow(func())           {}

// feed hands b, with room handle 1 appended (the last room field wins; a
// batch's is ignored), to the transport of m as its read loop does: in a
// buffer with free space around it.
func (rig *relayRig) feed(m *member, ch int, b []byte) {
	b = transport.AppendRoom(bytes.Clone(b), m.handle)
	buf := make([]byte, readHeadroom+len(b)+readTailroom)
	copy(buf[readHeadroom:], b)
	m.rtc.onPacket(ch, buf, readHeadroom, readHeadroom+len(b))
	waitIdle(nil, m.room) // a broadcast is relayed on the room's fan-out worker
}

// packets decodes everything written to m's channels.
func (rig *relayRig) packets(tb testing.TB, m *member) []*pb.Packet {
	var out []*pb.Packet
	for _, c := range rig.outs[m] {
		c.mu.Lock()
		for _, w := range c.writes {
			var p pb.Packet
			if err := proto.Unmarshal(w, &p); err != nil {
				tb.Fatalf("relay wrote a packet that does not decode: %v", err)
			}
			if len(p.Batch) > 0 {
				if p.Body != nil {
					tb.Fatal("relay wrote a batch with a body")
				}
				out = append(out, p.Batch...)
				continue
			}
			out = append(out, &p)
		}
		c.writes = nil
		c.mu.Unlock()
	}
	return out
}

// FuzzRelayPacket feeds arbitrary bytes to the relay as packets from member
// a. It must never panic, and whatever reaches b claims to come from a:
// the server stamps the sender, whatever the packet says.
func FuzzRelayPacket(f *testing.F) {
	for _, p := range []*pb.Packet{
		{Body: &pb.Packet_Message{Message: &pb.Message{MsgId: 1, To: "b", Payload: []byte("hi")}}},
		{Body: &pb.Packet_Message{Message: &pb.Message{MsgId: 2, To: "b", From: "mallory", Binary: true, Payload: []byte{0, 1}}}},
		{Body: &pb.Packet_Message{Message: &pb.Message{MsgId: 3, Broadcast: true, From: "b", Payload: []byte("all")}}},
		{Body: &pb.Packet_Message{Message: &pb.Message{MsgId: 4, To: "nobody"}}},
		{Body: &pb.Packet_Ack{Ack: &pb.Ack{Peer: "b", UpTo: 9}}},
		{Body: &pb.Packet_Result{Result: &pb.Result{MsgId: 1, Code: 0}}},
	} {
		b, _ := proto.Marshal(p)
		f.Add(uint8(0), b)
		f.Add(uint8(1), b)
	}
	f.Add(uint8(2), []byte{0x0a, 0xff})
	// Batches (version 2): two messages and an ack; one with a body too;
	// a batch in a batch.
	batch := batchOf(
		&pb.Packet{Body: &pb.Packet_Message{Message: &pb.Message{MsgId: 5, To: "b", Payload: []byte("one")}}},
		&pb.Packet{Body: &pb.Packet_Message{Message: &pb.Message{MsgId: 6, Broadcast: true, From: "x", Payload: []byte("two")}}},
		&pb.Packet{Body: &pb.Packet_Ack{Ack: &pb.Ack{Peer: "b", UpTo: 2}}},
	)
	f.Add(uint8(0), batch)
	withBody, _ := proto.Marshal(&pb.Packet{Body: &pb.Packet_Ack{Ack: &pb.Ack{Peer: "b", UpTo: 1}}})
	f.Add(uint8(0), append(withBody, batch...))
	f.Add(uint8(0), transport.AppendEntry(nil, batch))
	rig := newRelayRig(f, Config{})
	f.Fuzz(func(t *testing.T, ch uint8, b []byte) {
		rig.feed(rig.a, int(ch)%transport.NumChannels, b)
		for _, p := range rig.packets(t, rig.b) {
			if msg := p.GetMessage(); msg != nil && msg.From != "a" {
				t.Fatalf("b received a message from %q, not a", msg.From)
			}
			if p.GetResult() != nil {
				t.Fatal("b received a result for a's send")
			}
		}
		rig.packets(t, rig.a)
	})
}

func TestRelayStampsSender(t *testing.T) {
	rig := newRelayRig(t, Config{})
	b, _ := proto.Marshal(&pb.Packet{Body: &pb.Packet_Message{Message: &pb.Message{
		MsgId: 7, To: "b", From: "mallory", Payload: []byte("x"),
	}}})
	rig.feed(rig.a, transport.ChannelUnreliableOrdered, b)
	got := rig.packets(t, rig.b)
	if len(got) != 1 || got[0].GetMessage().GetFrom() != "a" {
		t.Fatalf("b got %v, want one message from a", got)
	}
	res := rig.packets(t, rig.a)
	if len(res) != 1 || res[0].GetResult().GetMsgId() != 7 || res[0].GetResult().GetCode() != resultSuccess {
		t.Fatalf("a got %v, want Success for 7", res)
	}
}

// TestStampMatchesProto checks the in-place relay against protobuf itself:
// the stamped packet decodes to the sender's message with From replaced.
func TestStampMatchesProto(t *testing.T) {
	rig := newRelayRig(t, Config{})
	for _, msg := range []*pb.Message{
		{MsgId: 1, To: "b", Payload: []byte("hello")},
		{MsgId: 1 << 40, To: "b", From: "mallory", Binary: true, Payload: bytes.Repeat([]byte{7}, 65536)},
		{MsgId: 3, Broadcast: true, Payload: []byte{}},
	} {
		b, err := proto.Marshal(&pb.Packet{Body: &pb.Packet_Message{Message: msg}})
		if err != nil {
			t.Fatal(err)
		}
		rig.feed(rig.a, transport.ChannelReliable, b)
		got := rig.packets(t, rig.b)
		if len(got) != 1 {
			t.Fatalf("b got %d packets, want 1", len(got))
		}
		want := proto.Clone(msg).(*pb.Message)
		want.From = "a"
		if !proto.Equal(got[0].GetMessage(), want) {
			t.Fatalf("relayed %v, want %v", got[0].GetMessage(), want)
		}
		rig.packets(t, rig.a)
	}
}

// batchOf encodes ps as one batch packet, as a Writer does: each entry of
// room handle 1 unless it names another.
func batchOf(ps ...*pb.Packet) []byte {
	var b []byte
	for _, p := range ps {
		e, _ := proto.Marshal(p)
		if p.Room == 0 {
			e = transport.AppendRoom(e, 1)
		}
		b = transport.AppendEntry(b, e)
	}
	return b
}

// TestRelayBatch: a batch from a is relayed packet by packet, in order,
// each message stamped with a (none overwriting the next, which lies
// right behind it in the read buffer); a batch with a body too, or an
// entry holding a batch, is dropped.
func TestRelayBatch(t *testing.T) {
	rig := newRelayRig(t, Config{})
	var ps []*pb.Packet
	for i := range 5 {
		ps = append(ps, &pb.Packet{Body: &pb.Packet_Message{Message: &pb.Message{
			MsgId: int64(i + 1), To: "b", From: "mallory", Payload: bytes.Repeat([]byte{byte('a' + i)}, 10*i+1),
		}}})
	}
	rig.feed(rig.a, transport.ChannelUnreliableOrdered, batchOf(ps...))
	got := rig.packets(t, rig.b)
	if len(got) != len(ps) {
		t.Fatalf("b got %d packets, want %d", len(got), len(ps))
	}
	for i, p := range got {
		m := p.GetMessage()
		if m == nil || m.MsgId != int64(i+1) || m.From != "a" || !bytes.Equal(m.Payload, ps[i].GetMessage().Payload) {
			t.Fatalf("packet %d: got %v, want message %d from a with its payload", i, p, i+1)
		}
	}
	results := rig.packets(t, rig.a)
	if len(results) != len(ps) {
		t.Fatalf("a got %d results, want %d", len(results), len(ps))
	}

	withBody, _ := proto.Marshal(ps[0])
	rig.feed(rig.a, transport.ChannelUnreliableOrdered, append(withBody, batchOf(ps[1])...))
	rig.feed(rig.a, transport.ChannelUnreliableOrdered, transport.AppendEntry(nil, batchOf(ps[2])))
	if got := rig.packets(t, rig.b); len(got) != 0 {
		t.Fatalf("malformed batches reached b: %v", got)
	}
}

// TestBroadcastAckStopsAtServer: a receiver's ack of broadcasts settles
// the server's copy and goes no further. The sender gets exactly one
// packet per broadcast, its result; a reliable user message's ack still
// reaches its sender.
func TestBroadcastAckStopsAtServer(t *testing.T) {
	rig := newRelayRig(t, Config{})
	for id := int64(1); id <= 3; id++ {
		b, _ := proto.Marshal(&pb.Packet{Body: &pb.Packet_Message{Message: &pb.Message{MsgId: id, Broadcast: true, Payload: []byte("all")}}})
		rig.feed(rig.a, transport.ChannelReliable, b)
	}
	if got := rig.packets(t, rig.b); len(got) != 3 {
		t.Fatalf("b got %d packets, want the 3 broadcasts", len(got))
	}
	if got := rig.packets(t, rig.a); len(got) != 3 {
		t.Fatalf("a got %d packets, want 3 results", len(got))
	}
	if n := rig.b.retain.size; n == 0 {
		t.Fatal("the server keeps no copy of the broadcasts for b")
	}
	ack, _ := proto.Marshal(&pb.Packet{Body: &pb.Packet_Ack{Ack: &pb.Ack{Peer: "a", UpTo: 3}}})
	rig.feed(rig.b, transport.ChannelReliable, ack)
	if got := rig.packets(t, rig.a); len(got) != 0 {
		t.Fatalf("b's ack of broadcasts reached the sender: %v", got)
	}
	rig.b.retain.mu.Lock()
	left := len(rig.b.retain.q)
	rig.b.retain.mu.Unlock()
	if left != 0 {
		t.Fatalf("the ack left %d broadcasts retained for b", left)
	}

	// A reliable user message: its ack is the sender's Success.
	msg, _ := proto.Marshal(&pb.Packet{Body: &pb.Packet_Message{Message: &pb.Message{MsgId: 4, To: "b", Payload: []byte("one")}}})
	rig.feed(rig.a, transport.ChannelReliable, msg)
	rig.packets(t, rig.b)
	ack, _ = proto.Marshal(&pb.Packet{Body: &pb.Packet_Ack{Ack: &pb.Ack{Peer: "a", UpTo: 4}}})
	rig.feed(rig.b, transport.ChannelReliable, ack)
	got := rig.packets(t, rig.a)
	if len(got) != 1 || got[0].GetAck().GetPeer() != "b" || got[0].GetAck().GetUpTo() != 4 {
		t.Fatalf("a got %v, want b's ack up to 4", got)
	}
}

// FuzzBatchScan: the relay's batch scanner agrees with protobuf. Whatever
// protobuf decodes as a batch (entries and no body), eachBatched finds as
// one, with the same entries in the same order; and it never panics nor
// hands out bytes outside its input.
func FuzzBatchScan(f *testing.F) {
	f.Add(batchOf(
		&pb.Packet{Body: &pb.Packet_Message{Message: &pb.Message{MsgId: 1, To: "b", Payload: []byte("x")}}},
		&pb.Packet{Body: &pb.Packet_Ack{Ack: &pb.Ack{Peer: "b", UpTo: 2}}},
	))
	f.Add([]byte{0x22, 0x00})
	f.Add([]byte{0x22, 0x02, 0x0a, 0x00, 0x12, 0x00})
	f.Add([]byte{0x20, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		var entries [][]byte
		batched, err := eachBatched(b, func(e []byte) {
			if len(e) > len(b) {
				t.Fatal("an entry longer than its batch")
			}
			entries = append(entries, e)
		})
		if err != nil && len(entries) > 0 {
			t.Fatal("entries handed out from a malformed batch")
		}
		var p pb.Packet
		if proto.Unmarshal(b, &p) != nil || len(p.Batch) == 0 || p.Body != nil {
			return
		}
		if !batched || err != nil {
			t.Fatalf("protobuf decodes a batch of %d; eachBatched says batched %v, %v", len(p.Batch), batched, err)
		}
		if len(entries) != len(p.Batch) {
			t.Fatalf("%d entries, protobuf %d", len(entries), len(p.Batch))
		}
		for i, e := range entries {
			var q pb.Packet
			if err := proto.Unmarshal(e, &q); err != nil || !proto.Equal(&q, p.Batch[i]) {
				t.Fatalf("entry %d differs from protobuf's", i)
			}
		}
	})
}

// TestStrayPackets: a packet for a room the session is not in, or for a
// member that is not active on the transport it came on (suspended, or
// waiting for its rejoin), is dropped and counted, and reaches nobody.
func TestStrayPackets(t *testing.T) {
	rig := newRelayRig(t, Config{})
	stray := func() float64 { return testutil.ToFloat64(rig.srv.metrics.strayPackets) }
	msg, _ := proto.Marshal(&pb.Packet{Body: &pb.Packet_Message{Message: &pb.Message{MsgId: 1, To: "b", Payload: []byte("x")}}})

	before := stray()
	buf := transport.AppendRoom(bytes.Clone(msg), 7) // no room 7 in a's session
	rig.a.rtc.onPacket(transport.ChannelReliable, append(append(make([]byte, readHeadroom), buf...), make([]byte, readTailroom)...), readHeadroom, readHeadroom+len(buf))
	require.Equal(t, before+1, stray())

	rig.a.room.mu.Lock()
	rig.a.state = stateSuspended
	rig.a.room.mu.Unlock()
	rig.feed(rig.a, transport.ChannelReliable, msg)
	require.Equal(t, before+2, stray())
	require.Empty(t, rig.packets(t, rig.b), "a stray packet reached b")
}
