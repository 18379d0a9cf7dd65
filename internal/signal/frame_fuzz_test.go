package signal

import (
	"errors"
	"testing"

	"google.golang.org/protobuf/proto"

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
