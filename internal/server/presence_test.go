package server

import (
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"

	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// addActive puts m in r as an active member, as activate does, but
// telling nobody.
func addActive(r *room, m *member) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m.state = stateActive
	r.seq++
	m.seq = r.seq
	r.members[m.userID] = m
	r.pres.ver++
	m.joinVer = r.pres.ver
	m.pcursor = r.pres.ver
	r.roster.list = append(r.roster.list, m)
}

// waitIdle waits until r's presence and fan-out workers have nothing left
// to do; with tb nil, it panics if they do not stop in time.
func waitIdle(tb testing.TB, r *room) {
	// The workers signal nobody when they stop, so the condition is
	// polled, on a ticker, until the deadline.
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		r.mu.Lock()
		busy := r.pres.running
		r.mu.Unlock()
		r.fan.mu.Lock()
		busy = busy || r.fan.running
		r.fan.mu.Unlock()
		if !busy {
			return
		}
		if time.Now().After(deadline) {
			if tb == nil {
				panic("room still busy")
			}
			tb.Fatalf("room %s still busy after %v", r.id, waitTimeout)
		}
		<-tick.C
	}
}

// presenceView replays what one session was told about a room: its
// member list (RoomJoined pages), then the changes (Presence, or
// UserJoined and UserLeft), and fails on anything out of order: a change
// before the list, a member joining twice, or leaving without being there.
type presenceView struct {
	members map[string]bool
	changes []string // "+id" and "-id", in the order told
	frames  int      // Presence, UserJoined and UserLeft frames
	listed  bool
}

// viewOf replays cs's frames; known is what it knew before them, nil for a
// joiner that waits for its list.
func viewOf(t *testing.T, cs *captureSession, known map[string]bool) *presenceView {
	t.Helper()
	v := &presenceView{members: maps.Clone(known), listed: known != nil}
	if v.members == nil {
		v.members = make(map[string]bool)
	}
	join := func(id string) {
		require.True(t, v.listed, "%s: a change before the member list", cs.id)
		require.False(t, v.members[id], "%s: told twice that %s joined", cs.id, id)
		v.members[id] = true
		v.changes = append(v.changes, "+"+id)
	}
	leave := func(id string) {
		require.True(t, v.listed, "%s: a change before the member list", cs.id)
		require.True(t, v.members[id], "%s: told %s left, but not that it was there", cs.id, id)
		delete(v.members, id)
		v.changes = append(v.changes, "-"+id)
	}
	_, frames := cs.decoded(t)
	for _, f := range frames {
		switch b := f.Body.(type) {
		case *pb.ServerFrame_RoomJoined:
			require.False(t, v.listed, "%s: a second member list", cs.id)
			for _, m := range b.RoomJoined.Members {
				require.False(t, v.members[m.UserId], "%s: %s listed twice", cs.id, m.UserId)
				v.members[m.UserId] = true
			}
			v.listed = !b.RoomJoined.More
		case *pb.ServerFrame_UserJoined:
			v.frames++
			join(b.UserJoined.Member.UserId)
		case *pb.ServerFrame_UserLeft:
			v.frames++
			leave(b.UserLeft.UserId)
		case *pb.ServerFrame_Presence:
			v.frames++
			for _, c := range b.Presence.Changes {
				switch c := c.Change.(type) {
				case *pb.PresenceChange_Joined:
					join(c.Joined.UserId)
				case *pb.PresenceChange_Left:
					leave(c.Left.UserId)
				}
			}
		}
	}
	return v
}

// TestPresenceBatchesUnderChurn: in a room of 300 members, 150 join and
// 100 of the first leave, all at once, with IDs and extra info long
// enough that member lists come in several pages. Every member, old or
// new, ends up told exactly the room as it is: a joiner's list, then
// every change after it, none twice, none missed, none before its list.
// The members there throughout hear all 250 changes in the same order, in
// few frames: Presence batches for clients that take them, one frame per
// change for those that do not.
func TestPresenceBatchesUnderChurn(t *testing.T) {
	srv, err := New(Config{Apps: map[string]string{testAppID: testAppKey}})
	require.NoError(t, err)
	r := srv.room(testAppID, "churn")
	extra := strings.Repeat("x", 200)
	id := func(i int) string { return fmt.Sprintf("%0120d", i) }
	const n, joining, leaving = 300, 150, 100
	sessions := make(map[*member]*captureSession)
	var old []*member
	for i := range n {
		cs := newCaptureSession(t, srv, id(i))
		m := pendingMember(r, cs.session, id(i), extra)
		m.batches = i%3 != 0 // a third are clients without Presence
		addActive(r, m)
		sessions[m] = cs
		old = append(old, m)
	}
	var fresh []*member
	for i := n; i < n+joining; i++ {
		cs := newCaptureSession(t, srv, id(i))
		m := pendingMember(r, cs.session, id(i), extra)
		m.batches = i%3 != 0
		sessions[m] = cs
		fresh = append(fresh, m)
	}
	var wg sync.WaitGroup
	for i, m := range fresh {
		wg.Add(2)
		go func() {
			defer wg.Done()
			r.activate(m)
		}()
		go func() {
			defer wg.Done()
			if i < leaving {
				r.remove(old[i], reasonQuit, true)
			}
		}()
	}
	wg.Wait()
	waitIdle(t, r)

	r.mu.Lock()
	want := make(map[string]bool)
	for u := range r.members {
		want[u] = true
	}
	r.mu.Unlock()
	require.Len(t, want, n+joining-leaving)
	var order []string
	for m, cs := range sessions {
		if m.leftVer.Load() != 0 {
			continue // gone: what it heard before does not matter
		}
		var known map[string]bool
		if m.joinVer <= uint64(n) {
			known = make(map[string]bool)
			for _, o := range old {
				if o != m {
					known[o.userID] = true
				}
			}
		}
		v := viewOf(t, cs, known)
		require.True(t, v.listed, "%s never got its list", m.userID)
		exp := maps.Clone(want)
		delete(exp, m.userID)
		require.Equal(t, exp, v.members, "%s's picture of the room", m.userID)
		if m.joinVer > uint64(n) {
			continue
		}
		// There throughout: every change, in the room's one order.
		require.Len(t, v.changes, joining+leaving)
		if order == nil {
			order = v.changes
		}
		require.Equal(t, order, v.changes, "%s heard the changes in another order", m.userID)
		if m.batches {
			require.LessOrEqual(t, v.frames, 10, "%s: %d Presence frames for %d changes", m.userID, v.frames, joining+leaving)
		} else {
			require.Equal(t, joining+leaving, v.frames, "%s: one frame per change", m.userID)
		}
	}
}

// BenchmarkRoomJoins joins 2,000 members to one room, one every 200 µs
// (5,000 joins a second, as a burst of clients whose channels open at
// once would), without PeerConnections: sessions that keep their frames.
// It reports the signaling frames the room's presence cost per member
// (one UserJoined per member already there, before batching: about 1,000
// at this size), the time activate holds the room (mean and max), and the
// time until every member has been told everything.
//
//	go test -run '^$' -bench BenchmarkRoomJoins -benchtime 1x ./internal/server
func BenchmarkRoomJoins(b *testing.B) {
	const n = 2000
	for b.Loop() {
		srv, err := New(Config{Apps: map[string]string{testAppID: testAppKey}})
		require.NoError(b, err)
		r := srv.room(testAppID, "bench")
		sessions := make([]*captureSession, n)
		members := make([]*member, n)
		for i := range n {
			sessions[i] = newCaptureSession(b, srv, fmt.Sprintf("u%d", i))
			members[i] = pendingMember(r, sessions[i].session, fmt.Sprintf("u%d", i), "")
			members[i].batches = true
		}
		start := time.Now()
		var held, maxHeld time.Duration
		tick := time.NewTicker(200 * time.Microsecond)
		for _, m := range members {
			<-tick.C
			t0 := time.Now()
			r.activate(m)
			d := time.Since(t0)
			held += d
			maxHeld = max(maxHeld, d)
		}
		tick.Stop()
		waitIdle(b, r)
		told := time.Since(start)
		frames := 0
		for _, cs := range sessions {
			cs.mu.Lock()
			frames += len(cs.frames)
			cs.mu.Unlock()
		}
		b.ReportMetric(float64(frames)/n, "frames/member")
		b.ReportMetric(float64(held.Microseconds())/n, "activate-µs")
		b.ReportMetric(float64(maxHeld.Microseconds()), "activate-max-µs")
		b.ReportMetric(told.Seconds(), "all-told-s")
	}
}

// TestJoinerListGoesAtOnce: in a room of 1,000 members, whose changes wait
// 105 ms for their batch once one has gone, a joiner that comes while the
// presence worker waits out that interval gets its member list at once,
// not with the next batch (a join waited up to the interval for it); the
// others hear of it with the batch. The clock is synctest's, so "at once"
// is exact: no time passes before the list is there.
func TestJoinerListGoesAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv, err := New(Config{Apps: map[string]string{testAppID: testAppKey}})
		require.NoError(t, err)
		r := srv.room(testAppID, "big")
		const n = 1000
		var old *captureSession
		for i := range n {
			cs := newCaptureSession(t, srv, fmt.Sprintf("u%d", i))
			m := pendingMember(r, cs.session, fmt.Sprintf("u%d", i), "")
			m.batches = true
			addActive(r, m)
			old = cs
		}
		join := func(id string) *captureSession {
			cs := newCaptureSession(t, srv, id)
			m := pendingMember(r, cs.session, id, "")
			m.batches = true
			r.activate(m)
			synctest.Wait()
			return cs
		}
		start := time.Now()
		join("first") // a quiet room's change goes at once, and starts the interval
		<-old.sent
		join("second") // its change waits for the interval; the worker with it
		third := join("third")
		require.Zero(t, time.Since(start), "no time passed")
		v := viewOf(t, third, nil)
		require.True(t, v.listed, "the third joiner waits for its list")
		require.Len(t, v.members, n+2)
		require.Equal(t, []string{"+first"}, viewOf(t, old, map[string]bool{}).changes, "the batch went early")

		// The next frame old gets is the batch, when its interval has
		// passed on the bubble's clock (which moves once all wait).
		<-old.sent
		require.GreaterOrEqual(t, time.Since(start), presenceInterval(n+2), "the batch came before its interval")
		require.Equal(t, []string{"+first", "+second", "+third"}, viewOf(t, old, map[string]bool{}).changes)
		require.Empty(t, viewOf(t, third, nil).changes, "the joiner heard of its own arrival")
		waitIdle(t, r)
	})
}
