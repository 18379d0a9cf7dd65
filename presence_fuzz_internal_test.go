package parley

import (
	"maps"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parleyhq/parley/internal/signal"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// FuzzRoomPresence feeds arbitrary server frames, decoded as the SDK
// decodes them, to the Engine's signaling event path for a joined room:
// membership events, RoomJoined pages and Presence batches of any shape.
// It must never panic, and what the room records of its members stays
// what its handler's events said.
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
	h := &modelHandler{members: map[string]string{}}
	e, r, a := joinedRoom(f, h)
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := signal.DecodeServerFrame(b)
		if err != nil || fr.GetRoomRemoved() != nil {
			return // the decoder refuses it; a removal ends the attempt
		}
		// Each input starts from an empty room: one that piled up
		// members and pages across inputs made each slower than the last.
		r.mu.Lock()
		a.members, a.pages, a.active = map[string]string{}, nil, make(chan struct{})
		r.mu.Unlock()
		h.mu.Lock()
		h.members = map[string]string{}
		h.mu.Unlock()
		e.onSignal(fr)
		done := make(chan struct{})
		e.q.Control(func() { close(done) })
		<-done
		r.mu.Lock()
		defer r.mu.Unlock()
		h.mu.Lock()
		defer h.mu.Unlock()
		if !maps.Equal(a.members, h.members) {
			t.Fatalf("the room records %v, its handler was told %v", a.members, h.members)
		}
	})
}

// joinedRoom returns an Engine without a server and its room "r", with h,
// whose current attempt is joined and live, as if the server had
// activated it; tb's cleanup closes both.
func joinedRoom(tb testing.TB, h RoomEventHandler) (*Engine, *Room, *attempt) {
	tb.Helper()
	e, err := NewEngine(EngineConfig{AppID: "012345678901234567890123", ServerURL: "ws://127.0.0.1:1/rtc"}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = e.Close() })
	r, err := e.CreateRoom("r", h)
	if err != nil {
		tb.Fatal(err)
	}
	a := &attempt{r: r, roomID: "r", joined: true, members: map[string]string{}, active: make(chan struct{})}
	a.early.live = true
	r.mu.Lock()
	r.att = a
	r.mu.Unlock()
	tb.Cleanup(func() { // before the Engine's Close: the attempt was never really joined
		r.mu.Lock()
		r.att = nil
		r.mu.Unlock()
	})
	return e, r, a
}

// modelHandler keeps the members its events tell of.
type modelHandler struct {
	NopRoomEventHandler
	mu      sync.Mutex
	members map[string]string // guarded by mu
}

func (m *modelHandler) OnUserJoined(u UserInfo) {
	m.mu.Lock()
	m.members[u.UserID] = u.ExtraInfo
	m.mu.Unlock()
}

func (m *modelHandler) OnUserLeave(id string, _ UserOfflineReason) {
	m.mu.Lock()
	delete(m.members, id)
	m.mu.Unlock()
}
