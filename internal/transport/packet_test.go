package transport

import (
	"bytes"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// The batch format: entries appended by AppendEntry decode as
// Packet.batch, each packet as it was.
func TestBatchRoundTrip(t *testing.T) {
	ps := []*pb.Packet{
		{Body: &pb.Packet_Message{Message: &pb.Message{MsgId: 1, To: "b", Payload: bytes.Repeat([]byte{1}, 300)}}},
		{Body: &pb.Packet_Ack{Ack: &pb.Ack{Peer: "c", UpTo: 9}}},
		{Body: &pb.Packet_Result{Result: &pb.Result{MsgId: 2, Code: 200}}},
		{Body: &pb.Packet_Message{Message: &pb.Message{MsgId: 3, Broadcast: true}}},
	}
	var b []byte
	for _, p := range ps {
		e, err := proto.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		b = AppendEntry(b, e)
	}
	var got pb.Packet
	if err := proto.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Body != nil || len(got.Batch) != len(ps) {
		t.Fatalf("decoded %v", &got)
	}
	for i := range ps {
		if !proto.Equal(got.Batch[i], ps[i]) {
			t.Fatalf("entry %d: %v, want %v", i, got.Batch[i], ps[i])
		}
	}
	// And the other way: what protobuf encodes is what AppendEntry builds.
	want, _ := proto.Marshal(&pb.Packet{Batch: ps})
	if !bytes.Equal(b, want) {
		t.Fatal("AppendEntry's batch differs from protobuf's encoding")
	}
}

func TestRoomOf(t *testing.T) {
	ack := packet(1, 10)
	tag := func(num protowire.Number, typ protowire.Type) []byte { return protowire.AppendTag(nil, num, typ) }
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	for _, c := range []struct {
		name string
		p    []byte
		room uint32
		bad  bool
	}{
		{name: "empty"},
		{name: "no room", p: ack},
		{name: "room", p: AppendRoom(ack, 7), room: 7},
		{name: "room first", p: append(AppendRoom(nil, 7), ack...), room: 7},
		{name: "largest room", p: AppendRoom(ack, 1<<32-1), room: 1<<32 - 1},
		{name: "last wins", p: AppendRoom(AppendRoom(ack, 7), 9), room: 9},
		{name: "room 0 overrides", p: AppendRoom(AppendRoom(ack, 7), 0), room: 0},
		{name: "above uint32 truncated", p: protowire.AppendVarint(tag(FieldPacketRoom, protowire.VarintType), 1<<32+3), room: 3},
		{name: "batch: the entries' rooms are not the packet's", p: AppendEntry(nil, AppendRoom(ack, 7))},
		{name: "room as bytes", p: protowire.AppendBytes(tag(FieldPacketRoom, protowire.BytesType), []byte{7}), bad: true},
		{name: "room as fixed32", p: protowire.AppendFixed32(tag(FieldPacketRoom, protowire.Fixed32Type), 7), bad: true},
		{name: "room truncated", p: cat(ack, tag(FieldPacketRoom, protowire.VarintType)), bad: true},
		{name: "room varint cut", p: cat(ack, tag(FieldPacketRoom, protowire.VarintType), []byte{0x80}), bad: true},
		{name: "field 0", p: []byte{0x00, 0x01}, bad: true},
		{name: "length past the end", p: cat(tag(1, protowire.BytesType), []byte{0x05, 1, 2}), bad: true},
		{name: "tag cut", p: []byte{0x80}, bad: true},
		{name: "stray end group", p: tag(1, protowire.EndGroupType), bad: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			room, err := RoomOf(c.p)
			if c.bad {
				if err == nil {
					t.Fatalf("RoomOf = %d, nil; want an error", room)
				}
				return
			}
			if err != nil || room != c.room {
				t.Fatalf("RoomOf = %d, %v; want %d", room, err, c.room)
			}
		})
	}
}

// AppendRoom's field is what protobuf decodes as an unknown varint field
// 5 (the generated code without Packet.room keeps it as such): the
// packet's own fields are untouched.
func TestAppendRoomDecodes(t *testing.T) {
	p := packet(42, 100)
	var got pb.Packet
	if err := proto.Unmarshal(AppendRoom(p, 300), &got); err != nil {
		t.Fatal(err)
	}
	if got.GetMessage().GetMsgId() != 42 || len(got.GetMessage().GetPayload()) != 100 {
		t.Fatalf("decoded %v", &got)
	}
	if got.Room != 300 {
		t.Fatalf("room %d, want 300", got.Room)
	}
}

// FuzzRoomOf: RoomOf never panics, and reads back the room AppendRoom
// wrote on any well-formed packet, whatever it held before.
func FuzzRoomOf(f *testing.F) {
	f.Add([]byte{}, uint32(1))
	f.Add(packet(1, 10), uint32(7))
	f.Add(AppendRoom(packet(1, 10), 9), uint32(1<<32-1))
	f.Add(AppendEntry(nil, AppendRoom(packet(1, 10), 9)), uint32(3))
	f.Add([]byte{0x28, 0x80}, uint32(2))
	f.Add([]byte{0x2a, 0x01, 0x07}, uint32(2))
	f.Fuzz(func(t *testing.T, p []byte, room uint32) {
		_, err := RoomOf(p)
		if err == nil {
			if got, err := RoomOf(AppendRoom(bytes.Clone(p), room)); err != nil || got != room {
				t.Fatalf("RoomOf(AppendRoom(p, %d)) = %d, %v", room, got, err)
			}
		}
		// Whatever protobuf takes as a Packet, re-encoded without its
		// unknown fields, is a packet a Writer could be handed.
		var pkt pb.Packet
		if proto.Unmarshal(p, &pkt) != nil {
			return
		}
		pkt.ProtoReflect().SetUnknown(nil)
		b, err := proto.Marshal(&pkt)
		if err != nil {
			return
		}
		if got, err := RoomOf(AppendRoom(b, room)); err != nil || got != room {
			t.Fatalf("RoomOf(AppendRoom(packet, %d)) = %d, %v", room, got, err)
		}
	})
}
