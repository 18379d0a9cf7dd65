package signal

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	pb "github.com/parleyhq/parley/proto/parley/v1"
)

func seedFrames(f *testing.F, msgs ...proto.Message) {
	for _, m := range msgs {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff})
	f.Add([]byte{0x12, 0x80, 0x80, 0x80, 0x80, 0x10}) // huge length prefix
}

// FuzzDecodeClientFrame: the server's decoder never panics, and what it
// accepts has a body and survives a round trip.
func FuzzDecodeClientFrame(f *testing.F) {
	seedFrames(f,
		&pb.ClientFrame{RequestId: 1, Body: &pb.ClientFrame_Join{Join: &pb.JoinRequest{
			RoomId: "r", Token: "001x", UserId: "u", ExtraInfo: "e", SdpOffer: "v=0\r\n",
		}}},
		&pb.ClientFrame{RequestId: 2, Body: &pb.ClientFrame_Leave{Leave: &pb.LeaveRequest{RoomId: "r"}}},
	)
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeClientFrame(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if fr.Body == nil || fr.RequestId == 0 {
			t.Fatal("accepted a frame with no body or no request ID")
		}
		again, err := proto.Marshal(fr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeClientFrame(again); err != nil {
			t.Fatalf("re-encoded frame rejected: %v", err)
		}
	})
}

// FuzzDecodeServerFrame: the client's decoder never panics.
func FuzzDecodeServerFrame(f *testing.F) {
	seedFrames(f,
		&pb.ServerFrame{Body: &pb.ServerFrame_Welcome{Welcome: &pb.Welcome{SessionId: "s"}}},
		&pb.ServerFrame{RequestId: 1, Body: &pb.ServerFrame_Join{Join: &pb.JoinResponse{Code: -1000, Reason: "x"}}},
		&pb.ServerFrame{Body: &pb.ServerFrame_RoomJoined{RoomJoined: &pb.RoomJoined{
			RoomId: "r", Members: []*pb.Member{{UserId: "a", ExtraInfo: "b"}},
		}}},
		&pb.ServerFrame{Body: &pb.ServerFrame_UserLeft{UserLeft: &pb.UserLeft{RoomId: "r", UserId: "a", Reason: 1}}},
	)
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := DecodeServerFrame(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		_ = fr.GetJoin().GetCode()
		_ = fr.GetRoomJoined().GetMembers()
	})
}

// FuzzDecodeMembership holds the fast decoder of Presence and RoomJoined
// frames to proto.Unmarshal: what it accepts, protobuf accepts and decodes
// to the same message; and it accepts every such frame as protobuf encodes
// it (without unknown fields), so the fast path is the one taken.
func FuzzDecodeMembership(f *testing.F) {
	seedFrames(f,
		&pb.ServerFrame{Seq: 7, Acked: 3, Body: &pb.ServerFrame_Presence{Presence: &pb.Presence{RoomId: "r", Changes: []*pb.PresenceChange{
			{Change: &pb.PresenceChange_Joined{Joined: &pb.Member{UserId: "a", ExtraInfo: "x"}}},
			{Change: &pb.PresenceChange_Left{Left: &pb.UserLeft{UserId: "b", Reason: 1}}},
			{},
			{Change: &pb.PresenceChange_Joined{Joined: &pb.Member{}}},
			{Change: &pb.PresenceChange_Left{Left: &pb.UserLeft{RoomId: "r", Reason: -1}}},
		}}}},
		&pb.ServerFrame{RequestId: 2, Seq: 1, Body: &pb.ServerFrame_RoomJoined{RoomJoined: &pb.RoomJoined{
			RoomId: "r", More: true, Members: []*pb.Member{{UserId: "a", ExtraInfo: "b"}, {UserId: "c"}, {}},
		}}},
		&pb.ServerFrame{Body: &pb.ServerFrame_Presence{Presence: &pb.Presence{}}},
		&pb.ServerFrame{Body: &pb.ServerFrame_RoomJoined{RoomJoined: &pb.RoomJoined{}}},
		&pb.ServerFrame{Seq: 1, Body: &pb.ServerFrame_UserLeft{UserLeft: &pb.UserLeft{RoomId: "r", UserId: "a"}}},
	)
	// protobuf merges a body given twice, and a change's oneof given twice.
	f.Add([]byte{0xba, 0x01, 0x02, 0x0a, 0x00, 0xba, 0x01, 0x02, 0x0a, 0x00})
	f.Add([]byte{0xba, 0x01, 0x06, 0x12, 0x04, 0x0a, 0x00, 0x0a, 0x00})
	f.Add([]byte{0xba, 0x01, 0x03, 0x0a, 0x01, 0xff}) // room ID not UTF-8
	f.Fuzz(func(t *testing.T, b []byte) {
		var want pb.ServerFrame
		wantErr := proto.Unmarshal(b, &want)
		got, ok := decodeMembership(b)
		if ok {
			if wantErr != nil {
				t.Fatalf("fast decoder accepted what protobuf refuses (%v): %v", wantErr, got)
			}
			if !proto.Equal(got, &want) {
				t.Fatalf("fast decoder gave %v, protobuf %v", got, &want)
			}
		}
		if wantErr != nil || (want.GetPresence() == nil && want.GetRoomJoined() == nil) || hasUnknown(want.ProtoReflect()) {
			return
		}
		again, err := proto.Marshal(&want)
		if err != nil {
			t.Fatal(err)
		}
		got, ok = decodeMembership(again)
		if !ok || !proto.Equal(got, &want) {
			t.Fatalf("fast decoder refused or changed protobuf's encoding of %v: %v", &want, got)
		}
	})
}

// hasUnknown reports whether m or a message in it has unknown fields.
func hasUnknown(m protoreflect.Message) bool {
	found := len(m.GetUnknown()) > 0
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				found = found || hasUnknown(v.List().Get(i).Message())
			}
		case fd.Message() != nil:
			found = found || hasUnknown(v.Message())
		}
		return !found
	})
	return found
}
