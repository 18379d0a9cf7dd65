package parley

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley/internal/signal"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// switchingHandler hands the room to next at its first event.
type switchingHandler struct {
	joinEvents
	r    *Room
	next RoomEventHandler
}

func (s *switchingHandler) OnUserJoined(u UserInfo) {
	s.joinEvents.OnUserJoined(u)
	s.r.SetRoomEventHandler(s.next)
}

// recvEvent returns the next event recorded on ch.
func recvEvent(t *testing.T, ch chan string) string {
	t.Helper()
	select {
	case ev := <-ch:
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10 s")
		return ""
	}
}

// TestMemberBatchFollowsHandler: the changes of one Presence frame are one
// event of the dispatcher, in order; a handler that replaces itself during
// the batch hands the rest of it to its successor, as it would separate
// events.
func TestMemberBatchFollowsHandler(t *testing.T) {
	r, a, h := feedRoom(t, JoinTypeFirst)
	a.joined = true
	first := &switchingHandler{joinEvents: joinEvents{ev: h.ev}, r: r, next: &joinEvents{ev: make(chan string, 8)}}
	r.SetRoomEventHandler(first)
	r.onSignal(&pb.ServerFrame{Body: &pb.ServerFrame_Presence{Presence: &pb.Presence{RoomId: "room1", Changes: []*pb.PresenceChange{
		{Change: &pb.PresenceChange_Joined{Joined: &pb.Member{UserId: "m1", ExtraInfo: "x"}}},
		{},
		{Change: &pb.PresenceChange_Joined{Joined: &pb.Member{UserId: "m2"}}},
		{Change: &pb.PresenceChange_Left{Left: &pb.UserLeft{UserId: "m1", Reason: 1}}},
	}}}})
	require.Equal(t, "joined m1 x", recvEvent(t, h.ev))
	next := first.next.(*joinEvents)
	require.Equal(t, "joined m2 ", recvEvent(t, next.ev))
	require.Equal(t, "left m1 Dropped", recvEvent(t, next.ev))
	r.mu.Lock()
	require.Equal(t, map[string]string{"m2": ""}, a.members)
	r.mu.Unlock()
	require.Empty(t, h.ev, "the first handler heard more than its event")
}

// countingHandler counts membership events.
type countingHandler struct {
	NopRoomEventHandler
	n atomic.Int64
}

func (h *countingHandler) OnUserJoined(UserInfo)                 { h.n.Add(1) }
func (h *countingHandler) OnUserLeave(string, UserOfflineReason) { h.n.Add(1) }

// BenchmarkPresence measures what a member of a big room spends on its
// presence: decoding Presence frames of 32 changes from the signaling
// bytes, recording the members, and the handler's calls through the
// Engine's dispatcher. Each op is one frame of joins and one of leaves.
func BenchmarkPresence(b *testing.B) {
	const batch = 32
	joins := &pb.Presence{RoomId: "r"}
	leaves := &pb.Presence{RoomId: "r"}
	for i := range batch {
		id := fmt.Sprintf("user-%04d", i)
		joins.Changes = append(joins.Changes, &pb.PresenceChange{Change: &pb.PresenceChange_Joined{Joined: &pb.Member{UserId: id}}})
		leaves.Changes = append(leaves.Changes, &pb.PresenceChange{Change: &pb.PresenceChange_Left{Left: &pb.UserLeft{UserId: id}}})
	}
	frames := [][]byte{
		signal.MustMarshal(&pb.ServerFrame{Seq: 1, Body: &pb.ServerFrame_Presence{Presence: joins}}),
		signal.MustMarshal(&pb.ServerFrame{Seq: 2, Body: &pb.ServerFrame_Presence{Presence: leaves}}),
	}
	h := &countingHandler{}
	e, _, _ := joinedRoom(b, h)
	b.ReportAllocs()
	var ops int64
	for b.Loop() {
		for _, fb := range frames {
			f, err := signal.DecodeServerFrame(fb)
			if err != nil {
				b.Fatal(err)
			}
			e.onSignal(f)
		}
		ops++
		// The dispatcher's calls of the handler are part of the cost.
		for h.n.Load() < ops*2*batch {
			runtime.Gosched()
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ops*2*batch), "ns/change")
}
