package transport

import (
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// The batch format: entries appended by AppendEntry decode as
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

// FuzzAppendRoom: whatever packet a Writer is handed (what protobuf
// takes as a Packet, re-encoded), AppendRoom makes it decode, to
// protobuf, as the same packet with room as its room, whatever room it
// named before.
func FuzzAppendRoom(f *testing.F) {
	f.Add([]byte{}, uint32(1))
	f.Add(packet(1, 10), uint32(7))
	f.Add(AppendRoom(packet(1, 10), 9), uint32(1<<32-1))
	f.Add(AppendEntry(nil, AppendRoom(packet(1, 10), 9)), uint32(3))
	f.Add([]byte{0x28, 0x80}, uint32(2))
	f.Fuzz(func(t *testing.T, p []byte, room uint32) {
		var pkt pb.Packet
		if proto.Unmarshal(p, &pkt) != nil {
			return
		}
		pkt.ProtoReflect().SetUnknown(nil)
		b, err := proto.Marshal(&pkt)
		if err != nil {
			return
		}
		var got pb.Packet
		if err := proto.Unmarshal(AppendRoom(b, room), &got); err != nil {
			t.Fatalf("AppendRoom made a packet protobuf refuses: %v", err)
		}
		pkt.Room = room
		if !proto.Equal(&got, &pkt) {
			t.Fatalf("AppendRoom(packet, %d) decodes as %v, want %v", room, &got, &pkt)
		}
	})
}
