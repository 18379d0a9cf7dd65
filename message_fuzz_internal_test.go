package parley

import (
	"context"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parleyhq/parley/internal/acks"
	"github.com/parleyhq/parley/internal/transport"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// discardRW is a data channel end that accepts writes and never delivers.
type discardRW struct{}

func (discardRW) Write(b []byte) (int, error)                    { return len(b), nil }
func (discardRW) Read([]byte) (int, error)                       { select {} }
func (discardRW) ReadDataChannel([]byte) (int, bool, error)      { select {} }
func (discardRW) WriteDataChannel(b []byte, _ bool) (int, error) { return len(b), nil }
func (discardRW) Close() error                                   { return nil }

// FuzzClientPacket feeds arbitrary bytes to the Engine's packet handler, as
// if they came from the server, with one room joined (handle 1). It must never panic; messages reach the
// handler and acks and results for unknown IDs are ignored.
func FuzzClientPacket(f *testing.F) {
	for _, p := range []*pb.Packet{
		{Body: &pb.Packet_Message{Message: &pb.Message{MsgId: 1, From: "b", Payload: []byte("hi")}}},
		{Body: &pb.Packet_Message{Message: &pb.Message{MsgId: 2, From: "b", Broadcast: true, Binary: true, Payload: []byte{0}}}},
		{Body: &pb.Packet_Ack{Ack: &pb.Ack{Peer: "b", UpTo: 3}}},
		{Body: &pb.Packet_Result{Result: &pb.Result{MsgId: 5, Code: 3}}},
	} {
		p.Room = 1
		b, _ := proto.Marshal(p)
		f.Add(uint8(0), b)
	}
	f.Add(uint8(1), []byte{0x0a, 0x80})
	// Batches (version 2): packets in order; one with a body too; a batch
	// in a batch.
	var batch []byte
	for _, p := range []*pb.Packet{
		{Body: &pb.Packet_Message{Message: &pb.Message{MsgId: 6, From: "b", Payload: []byte("one")}}},
		{Body: &pb.Packet_Ack{Ack: &pb.Ack{Peer: "b", UpTo: 3}}},
		{Body: &pb.Packet_Result{Result: &pb.Result{MsgId: 5, Code: 200}}},
		{Room: 2, Body: &pb.Packet_Message{Message: &pb.Message{MsgId: 1, From: "c", Payload: []byte("no such room")}}},
	} {
		if p.Room == 0 {
			p.Room = 1
		}
		b, _ := proto.Marshal(p)
		batch = transport.AppendEntry(batch, b)
	}
	f.Add(uint8(0), batch)
	ack, _ := proto.Marshal(&pb.Packet{Body: &pb.Packet_Ack{Ack: &pb.Ack{Peer: "b", UpTo: 3}}})
	f.Add(uint8(0), append(ack, batch...))
	f.Add(uint8(0), transport.AppendEntry(nil, batch))
	e, err := NewEngine(EngineConfig{AppID: "012345678901234567890123", ServerURL: "ws://127.0.0.1:1/rtc"}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = e.Close() })
	r, err := e.CreateRoom("r", nil)
	if err != nil {
		f.Fatal(err)
	}
	if r.handle != 1 {
		f.Fatalf("the Engine's first room has handle %d, want 1", r.handle)
	}
	x := &rtc{e: e}
	var ws [transport.NumChannels]*transport.Writer
	for i := range ws {
		x.chans[i] = discardRW{}
		ws[i] = transport.NewFlowWriter(idleQueue{}, discardRW{})
	}
	x.ws.Store(&ws)
	a := &attempt{r: r, roomID: "r", joined: true, members: map[string]string{}, rtc: x}
	a.early.live = true // state 0 is out: messages are delivered
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.owed = acks.Batcher{Delay: ackDelay, Flush: a.flushAcks}
	f.Cleanup(a.cancel)
	r.att = a
	f.Fuzz(func(t *testing.T, ch uint8, b []byte) {
		x.onPacket(int(ch)%transport.NumChannels, b)
	})
}
