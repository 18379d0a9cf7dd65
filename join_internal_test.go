package parley

import (
	"testing"

	"github.com/stretchr/testify/require"

	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// joinEvents records the membership events of a room, in order.
type joinEvents struct {
	NopRoomEventHandler
	ev chan string
}

func (j *joinEvents) OnUserJoined(u UserInfo) { j.ev <- "joined " + u.UserID + " " + u.ExtraInfo }
func (j *joinEvents) OnUserLeave(id string, r UserOfflineReason) {
	j.ev <- "left " + id + " " + r.String()
}

// feedRoom returns a Room of a new Engine (no network) whose current
// attempt is of joinType and already knows members.
func feedRoom(t *testing.T, jt JoinType, members ...UserInfo) (*Room, *attempt, *joinEvents) {
	t.Helper()
	e, err := NewEngine(EngineConfig{AppID: "aaaaaaaaaaaaaaaaaaaaaaaa", ServerURL: "ws://127.0.0.1:1/rtc"}, nil)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()); <-e.Done() })
	h := &joinEvents{ev: make(chan string, 64)}
	r, err := e.CreateRoom("room1", h)
	require.NoError(t, err)
	a := r.newAttempt("token", UserInfo{UserID: "me"}, jt)
	t.Cleanup(a.cancel)
	for _, m := range members {
		a.members[m.UserID] = m.ExtraInfo
	}
	r.mu.Lock()
	r.att = a
	r.mu.Unlock()
	return r, a, h
}

func roomJoined(more bool, ids ...string) *pb.ServerFrame {
	rj := &pb.RoomJoined{RoomId: "room1", More: more}
	for _, id := range ids {
		rj.Members = append(rj.Members, &pb.Member{UserId: id, ExtraInfo: "x" + id})
	}
	return &pb.ServerFrame{Body: &pb.ServerFrame_RoomJoined{RoomJoined: rj}}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// runPending runs the membership events held for state 0, as connect does
// once it has reported it, and returns them as recorded.
func runPending(t *testing.T, r *Room, a *attempt, h *joinEvents) []string {
	t.Helper()
	r.mu.Lock()
	pending := a.pending
	a.pending = nil
	r.mu.Unlock()
	for _, f := range pending {
		f()
	}
	// A batch of members is one event of the dispatcher: the end mark
	// queued after them says when all have run.
	const end = "end"
	r.e.q.Control(func() { h.ev <- end })
	var out []string
	for ev := range h.ev {
		if ev == end {
			break
		}
		out = append(out, ev)
	}
	return out
}

// TestRoomJoinedPages: a member list paged over several RoomJoined frames
// (more = true on all but the last) completes the join only with the last
// page, and the handler then hears of every member of every page, in
// order, once.
func TestRoomJoinedPages(t *testing.T) {
	r, a, h := feedRoom(t, JoinTypeFirst)
	r.onSignal(roomJoined(true, "m1", "m2"))
	r.onSignal(roomJoined(true, "m3"))
	require.False(t, isClosed(a.active), "active before the last page")
	r.onSignal(roomJoined(false, "m4"))
	require.True(t, isClosed(a.active), "active after the last page")
	require.Equal(t, []string{"joined m1 xm1", "joined m2 xm2", "joined m3 xm3", "joined m4 xm4"}, runPending(t, r, a, h))
	require.Len(t, a.members, 4)

	// A RoomJoined after the join is complete changes nothing.
	r.onSignal(roomJoined(false, "m5"))
	require.Len(t, a.members, 4)
}

// TestRoomJoinedOnePage: the list in one frame (more = false), as an older
// server sends it, works as before; so does an empty room.
func TestRoomJoinedOnePage(t *testing.T) {
	r, a, h := feedRoom(t, JoinTypeFirst)
	r.onSignal(roomJoined(false, "m1", "m2"))
	require.True(t, isClosed(a.active))
	require.Equal(t, []string{"joined m1 xm1", "joined m2 xm2"}, runPending(t, r, a, h))

	r, a, h = feedRoom(t, JoinTypeFirst)
	r.onSignal(roomJoined(false))
	require.True(t, isClosed(a.active))
	require.Empty(t, runPending(t, r, a, h))
}

// TestRoomJoinedPagesRejoin: a rejoin reconciles with the whole paged
// list, not with its first page: members on a later page are not taken
// for gone.
func TestRoomJoinedPagesRejoin(t *testing.T) {
	known := []UserInfo{{UserID: "m1", ExtraInfo: "xm1"}, {UserID: "m3", ExtraInfo: "xm3"}, {UserID: "gone", ExtraInfo: "xgone"}}
	r, a, h := feedRoom(t, JoinTypeReconnected, known...)
	r.onSignal(roomJoined(true, "m1", "m2"))
	require.False(t, isClosed(a.active))
	r.onSignal(roomJoined(false, "m3"))
	require.True(t, isClosed(a.active))
	require.Equal(t, []string{"left gone Dropped", "joined m2 xm2"}, runPending(t, r, a, h))
}
