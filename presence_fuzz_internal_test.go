package parley

import (
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// FuzzRoomPresence feeds arbitrary server frames to the Engine's signaling
// event path for a joined room: membership events, RoomJoined pages and
// Presence batches of any shape. It must never panic, and what the room
// believes about its members stays what the events said (no member with
// an empty entry under another ID).
func FuzzRoomPresence(f *testing.F) {
	for _, fr := range []*pb.ServerFrame{
		{Body: &pb.ServerFrame_Presence{Presence: &pb.Presence{RoomId: "r", Changes: []*pb.PresenceChange{
			{Change: &pb.PresenceChange_Joined{Joined: &pb.Member{UserId: "a", ExtraInfo: "x"}}},
			{Change: &pb.PresenceChange_Left{Left: &pb.UserLeft{UserId: "a", Reason: 1}}},
			{},
		}}}},
		{Body: &pb.ServerFrame_UserJoined{UserJoined: &pb.UserJoined{RoomId: "r", Member: &pb.Member{UserId: "b"}}}},
		{Body: &pb.ServerFrame_UserLeft{UserLeft: &pb.UserLeft{RoomId: "r", UserId: "b"}}},
		{Body: &pb.ServerFrame_RoomJoined{RoomJoined: &pb.RoomJoined{RoomId: "r", Members: []*pb.Member{{UserId: "c"}}, More: true}}},
	} {
		b, _ := proto.Marshal(fr)
		f.Add(b)
	}
	e, err := NewEngine(EngineConfig{AppID: "012345678901234567890123", ServerURL: "ws://127.0.0.1:1/rtc"}, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = e.Close() })
	r, err := e.CreateRoom("r", nil)
	if err != nil {
		f.Fatal(err)
	}
	a := &attempt{r: r, roomID: "r", joined: true, members: map[string]UserInfo{}, active: make(chan struct{})}
	a.early.live = true
	r.mu.Lock()
	r.att = a
	r.mu.Unlock()
	f.Cleanup(func() { // before the Engine's Close: the attempt was never really joined
		r.mu.Lock()
		r.att = nil
		r.mu.Unlock()
	})
	f.Fuzz(func(t *testing.T, b []byte) {
		var fr pb.ServerFrame
		if proto.Unmarshal(b, &fr) != nil || fr.GetRoomRemoved() != nil {
			return // the decoder refuses it; a removal ends the attempt
		}
		e.onSignal(&fr)
		r.mu.Lock()
		defer r.mu.Unlock()
		for id, u := range a.members {
			if u.UserID != id {
				t.Fatalf("member %q recorded as %q", id, u.UserID)
			}
		}
	})
}
