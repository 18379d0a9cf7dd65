package parley

import (
	"errors"
	"sync/atomic"

	"github.com/pion/datachannel"
	"google.golang.org/protobuf/proto"

	"github.com/parleyhq/parley/internal/transport"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// Message hooks for the end-to-end tests in package parley_test (the
// export_test.go idiom). They reach past the public API only to do what a
// well-behaved SDK never does: withhold acknowledgements, or send a packet
// with fields the SDK never sets. Everything else stays real: the server,
// pion, the data channels.

// AckGate controls whether a room's acknowledgements reach the server.
type AckGate struct {
	drop    atomic.Bool
	dropped atomic.Int64
}

// Drop makes the room drop every acknowledgement it would send, or send
// them again when drop is false.
func (g *AckGate) Drop(drop bool) { g.drop.Store(drop) }

// Dropped is the number of acknowledgement packets dropped so far.
func (g *AckGate) Dropped() int64 { return g.dropped.Load() }

// ackGateChannel is the reliable channel of a join, seen through an
// AckGate: Ack packets written, alone or in a batch, are swallowed while
// the gate drops them; everything else passes. The channel's reader is not
// involved: the join reads from the channel it was opened with.
type ackGateChannel struct {
	datachannel.ReadWriteCloser
	g *AckGate
}

func (c ackGateChannel) Write(b []byte) (int, error) {
	if !c.g.drop.Load() {
		return c.ReadWriteCloser.Write(b)
	}
	var p pb.Packet
	if err := proto.Unmarshal(b, &p); err != nil {
		return c.ReadWriteCloser.Write(b)
	}
	if p.GetAck() != nil {
		c.g.dropped.Add(1)
		return len(b), nil
	}
	if len(p.Batch) == 0 {
		return c.ReadWriteCloser.Write(b)
	}
	var kept []byte
	for _, q := range p.Batch {
		if q.GetAck() != nil {
			c.g.dropped.Add(1)
			continue
		}
		e, err := proto.Marshal(q)
		if err != nil {
			panic(err)
		}
		kept = transport.AppendEntry(kept, e)
	}
	if kept != nil {
		if _, err := c.ReadWriteCloser.Write(kept); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}

// idleQueue is a data channel whose SCTP queue reads empty: the gated
// writer coalesces only what comes while it writes.
type idleQueue struct{}

func (idleQueue) BufferedAmount() uint64               { return 0 }
func (idleQueue) SetBufferedAmountLowThreshold(uint64) {}
func (idleQueue) OnBufferedAmountLow(func())           {}

// GateAcks puts an AckGate, dropping, in front of the reliable channel r's
// current join travels on, which must be joined: the reliable writer of
// the Engine's PeerConnection, which the acks and sends of every room of
// r's Engine go through, is replaced by one that writes through the gate.
// The receiver still accepts and hands every message to its handler; only
// the acknowledgements are withheld.
func GateAcks(r *Room) (*AckGate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.att
	if a == nil || !a.joined || a.rtc == nil {
		return nil, errors.New("room is not joined")
	}
	g := &AckGate{}
	g.Drop(true)
	x := a.rtc
	rel := transport.ChannelReliable
	ws := *x.ws.Load()
	ws[rel] = transport.NewFlowWriter(idleQueue{}, ackGateChannel{x.chans[rel], g})
	x.ws.Store(&ws)
	return g, nil
}

// SendForgedMessage sends a message on r's reliable channel the way
// Room.send does (a fresh message ID, registered for its one result) but
// with fields the SDK never sets: from, which the server must overwrite
// with the sender's real user ID, and a payload of any size, which the SDK
// would refuse locally over MaxMessageSize. An empty to with broadcast
// unset is a user message without a receiver. It returns the message ID,
// or -1 when r is not joined.
func SendForgedMessage(r *Room, to, from string, broadcast bool, payload []byte) int64 {
	r.mu.Lock()
	a := r.att
	joined := a != nil && a.joined
	r.mu.Unlock()
	if !joined {
		return -1
	}
	a.sendMu.Lock()
	defer a.sendMu.Unlock()
	id := r.e.newID(&pendingSend{kind: kindOf(broadcast), room: r, att: a}, true)
	if id < 0 {
		return -1
	}
	b, err := proto.Marshal(&pb.Packet{Body: &pb.Packet_Message{Message: &pb.Message{
		MsgId: id, To: to, From: from, Broadcast: broadcast, Payload: payload,
	}}})
	if err != nil {
		panic(err)
	}
	if !broadcast && to != "" {
		a.unacked.Expect(to, id)
	}
	r.mu.Lock()
	w := a.rtc.writer(transport.ChannelReliable)
	r.mu.Unlock()
	if err := w.Write(a.ctx, r.handle, b); err != nil {
		r.e.resolve(id, int(UserMessageSendResultNoConnection))
	}
	return id
}

// AwaitingAcks returns how many sent reliable user messages of r's current
// join still await an acknowledgement, by receiver (nil when not joined).
// It leaves the join's books as they were.
func AwaitingAcks(r *Room) map[string]int {
	r.mu.Lock()
	a := r.att
	r.mu.Unlock()
	if a == nil {
		return nil
	}
	a.sendMu.Lock() // no send adds to the book meanwhile
	defer a.sendMu.Unlock()
	out := make(map[string]int)
	for peer, ids := range a.unacked.Drain() {
		out[peer] = len(ids)
		for _, id := range ids {
			a.unacked.Expect(peer, id)
		}
	}
	return out
}
