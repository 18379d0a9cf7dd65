package parley

import (
	"bytes"
	"testing"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/parleyhq/parley/internal/transport"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// FuzzDecodePacket holds decodePacket's fast path to proto.Unmarshal: what
// it accepts, protobuf accepts and decodes to the same packet; and it
// accepts every packet of the shapes the server sends as protobuf encodes
// it, so the fast path is the one taken.
func FuzzDecodePacket(f *testing.F) {
	msg := &pb.Packet{Room: 3, Body: &pb.Packet_Message{Message: &pb.Message{
		MsgId: 9, From: "a", Broadcast: true, Binary: true, Payload: []byte("hi"), SenderInstance: 1 << 60,
	}}}
	ack := &pb.Packet{Room: 1, Body: &pb.Packet_Ack{Ack: &pb.Ack{Peer: "b", UpTo: 7}}}
	res := &pb.Packet{Room: 2, Body: &pb.Packet_Result{Result: &pb.Result{MsgId: 5, Code: -1}}}
	for _, p := range []*pb.Packet{msg, ack, res, {Room: 1}, {}, {Batch: []*pb.Packet{msg, ack, res, {}}}} {
		b, err := proto.Marshal(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(transport.AppendRoom(b, 4))
	}
	stamped, _ := proto.Marshal(msg)
	f.Add(append(stamped[:len(stamped):len(stamped)], 0x1a, 0x01, 'z')) // a second from, outside the message: unknown to Packet
	f.Add([]byte{0x0a, 0x03, 0x1a, 0x01, 0xff})                         // from not UTF-8
	f.Add([]byte{0x0a, 0x00, 0x0a, 0x02, 0x08, 0x01})                   // a body twice: protobuf merges
	f.Add([]byte{0x0a, 0x00, 0x12, 0x00})                               // two bodies: the last wins
	f.Add([]byte{0x22, 0x02, 0x22, 0x00})                               // a batch in a batch
	f.Add([]byte{0x0a, 0x00, 0x22, 0x00})                               // a body and a batch
	f.Add([]byte{0x0a, 0x02, 0x08, 0x00, 0x0a, 0x02, 0x30, 0x00})       // fields of the wrong wire type
	f.Fuzz(func(t *testing.T, b []byte) {
		var want pb.Packet
		wantErr := proto.Unmarshal(b, &want)
		got, ok := fastPacket(b, true)
		if ok {
			if wantErr != nil {
				t.Fatalf("fast decoder accepted what protobuf refuses (%v): %v", wantErr, got)
			}
			if !proto.Equal(got, &want) {
				t.Fatalf("fast decoder gave %v, protobuf %v", got, &want)
			}
		}
		if _, err := decodePacket(b); (err != nil) != (wantErr != nil) {
			t.Fatalf("decodePacket: error %v, protobuf %v", err, wantErr)
		}
		if wantErr != nil || !serverShaped(&want, true) {
			return
		}
		again, err := proto.Marshal(&want)
		if err != nil {
			t.Fatal(err)
		}
		got, ok = fastPacket(again, true)
		if !ok || !proto.Equal(got, &want) {
			t.Fatalf("fast decoder refused or changed protobuf's encoding of %v: %v", &want, got)
		}
	})
}

// serverShaped reports whether p is a packet fastPacket must decode: no
// unknown fields, and a body or a batch of such packets (without batches
// of their own), not both.
func serverShaped(p *pb.Packet, top bool) bool {
	if len(p.ProtoReflect().GetUnknown()) > 0 || (len(p.Batch) > 0 && (!top || p.Body != nil)) {
		return false
	}
	var body proto.Message
	switch b := p.Body.(type) {
	case *pb.Packet_Message:
		body = b.Message
	case *pb.Packet_Ack:
		body = b.Ack
	case *pb.Packet_Result:
		body = b.Result
	}
	if body != nil && len(body.ProtoReflect().GetUnknown()) > 0 {
		return false
	}
	for _, q := range p.Batch {
		if !serverShaped(q, false) {
			return false
		}
	}
	return true
}

// FuzzEncodePacket holds the packet encoders to proto.Marshal: the same
// bytes for every message and ack the SDK can send (its user IDs are
// UTF-8, checked before a send).
func FuzzEncodePacket(f *testing.F) {
	f.Add(int64(1), "b", "", false, false, []byte("hi"), uint64(7))
	f.Add(int64(-1), "", "a", true, true, []byte{}, uint64(0))
	f.Add(int64(1<<62), "ü", "x", false, true, bytes.Repeat([]byte{1}, 300), ^uint64(0))
	f.Fuzz(func(t *testing.T, id int64, to, from string, bcast, binary bool, payload []byte, instance uint64) {
		if !utf8.ValidString(to) || !utf8.ValidString(from) {
			return
		}
		m := &pb.Message{MsgId: id, To: to, From: from, Broadcast: bcast, Binary: binary, Payload: payload, SenderInstance: instance}
		want, err := proto.Marshal(&pb.Packet{Body: &pb.Packet_Message{Message: m}})
		if err != nil {
			t.Fatal(err)
		}
		if got := messagePacket(m); !bytes.Equal(got, want) {
			t.Fatalf("messagePacket(%v) = %x, protobuf %x", m, got, want)
		}
		if got := appendMessagePacket([]byte{0xee}, m); !bytes.Equal(got[1:], want) || got[0] != 0xee {
			t.Fatalf("appendMessagePacket(%v) = %x, protobuf %x after 0xee", m, got, want)
		}
		want, err = proto.Marshal(&pb.Packet{Body: &pb.Packet_Ack{Ack: &pb.Ack{Peer: to, UpTo: id}}})
		if err != nil {
			t.Fatal(err)
		}
		if got := ackPacket(to, id); !bytes.Equal(got, want) {
			t.Fatalf("ackPacket(%q, %d) = %x, protobuf %x", to, id, got, want)
		}
	})
}

// BenchmarkPacketCodec: the SDK's encoding of a 64-byte message and its
// decoding of one from the server, beside protobuf's.
func BenchmarkPacketCodec(b *testing.B) {
	m := &pb.Message{MsgId: 12345, To: "u1", Payload: make([]byte, 64), SenderInstance: 0xdeadbeefcafe}
	in := transport.AppendRoom(messagePacket(&pb.Message{MsgId: 12345, From: "u1", Payload: make([]byte, 64), SenderInstance: 0xdeadbeefcafe}), 3)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = messagePacket(m)
		}
	})
	b.Run("encode-protobuf", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := proto.Marshal(&pb.Packet{Body: &pb.Packet_Message{Message: m}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := decodePacket(in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode-protobuf", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := proto.Unmarshal(in, new(pb.Packet)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
