package server

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/parleyhq/parley/internal/signal"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// captureSession is a session whose frames, as the connection would get
// them, are kept in order.
type captureSession struct {
	*session
	mu     sync.Mutex
	frames [][]byte
	sent   chan struct{} // cap 1: signalled at each frame
}

func newCaptureSession(t testing.TB, srv *Server, id string) *captureSession {
	t.Helper()
	cs := &captureSession{session: &session{
		srv: srv, id: id, log: zap.NewNop(), out: signal.NewStream(maxReplay), members: make(map[string]*member),
	}, sent: make(chan struct{}, 1)}
	cs.quota.Store(newUserQuota(srv.cfg.Quotas))
	write := func(b []byte) error {
		cs.mu.Lock()
		cs.frames = append(cs.frames, b)
		cs.mu.Unlock()
		select {
		case cs.sent <- struct{}{}:
		default:
		}
		return nil
	}
	require.NoError(t, cs.out.Attach(0, write, write))
	return cs
}

// decoded returns the frames the session sent so far.
func (cs *captureSession) decoded(t *testing.T) (sizes []int, frames []*pb.ServerFrame) {
	t.Helper()
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, b := range cs.frames {
		var f pb.ServerFrame
		require.NoError(t, proto.Unmarshal(b, &f))
		sizes = append(sizes, len(b))
		frames = append(frames, &f)
	}
	return sizes, frames
}

// pendingMember adds a member of ss to r as handleJoin does, ready for
// activate.
func pendingMember(r *room, ss *session, user, extra string) *member {
	m := newMember(r, ss, user, extra, 1)
	m.joinTimer = time.AfterFunc(time.Hour, func() {})
	ss.members[r.id] = m
	r.srv.mu.Lock()
	r.refs++
	r.srv.mu.Unlock()
	return m
}

// TestRoomJoinedPages: joining a room of 10,000 members with the longest
// IDs and extra info, the newcomer gets the member list in RoomJoined
// pages of at most 64 KiB each, every member once and in the order they
// joined, more on all pages but the last, and nothing else between them,
// though other members join meanwhile.
func TestRoomJoinedPages(t *testing.T) {
	srv, err := New(Config{Apps: map[string]string{testAppID: testAppKey}})
	require.NoError(t, err)
	r := srv.room(testAppID, "big")
	const n = 10_000
	extra := strings.Repeat("e", 200)
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprintf("%0128d", i)
		ss := newCaptureSession(t, srv, want[i])
		m := pendingMember(r, ss.session, want[i], extra)
		addActive(r, m)
	}

	cs := newCaptureSession(t, srv, "newcomer")
	nm := pendingMember(r, cs.session, "newcomer", "")
	// Others join while the newcomer does: their UserJoined may come
	// before or after its pages, never between them.
	late := make([]*member, 8)
	for i := range late {
		late[i] = pendingMember(r, newCaptureSession(t, srv, fmt.Sprint("late", i)).session, fmt.Sprint("late", i), "")
	}
	var wg sync.WaitGroup
	for _, m := range late {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r.activate(m)
		}()
	}
	r.activate(nm)
	wg.Wait()
	waitIdle(t, r)

	sizes, frames := cs.decoded(t)
	first, prev, last := -1, -1, -1
	var got []string
	for i, f := range frames {
		require.LessOrEqual(t, sizes[i], 64<<10, "frame %d", i)
		rj := f.GetRoomJoined()
		if rj == nil {
			require.Equal(t, "big", f.GetUserJoined().GetRoomId(), "frame %d: %v", i, f)
			continue
		}
		require.Equal(t, "big", rj.RoomId)
		require.Equal(t, -1, last, "frame %d: a RoomJoined page after the last", i)
		if prev >= 0 {
			require.Equal(t, prev+1, i, "frame %d: another frame between RoomJoined pages", i)
		} else {
			first = i
		}
		prev = i
		for _, mem := range rj.Members {
			if len(got) < n {
				require.Equal(t, extra, mem.ExtraInfo)
			}
			got = append(got, mem.UserId)
		}
		if !rj.More {
			last = i
		}
	}
	require.NotEqual(t, -1, last, "the last page has more false")
	pages := last - first + 1
	t.Logf("%d members in %d pages, largest frame %d bytes", len(got), pages, slices.Max(sizes))
	require.Greater(t, pages, 1)
	// The members there before the newcomer, in order, then those of
	// the late ones that were quicker.
	require.GreaterOrEqual(t, len(got), n)
	require.Equal(t, want, got[:n])
	seen := make(map[string]bool)
	for _, u := range got {
		require.False(t, seen[u], "%s listed twice", u)
		seen[u] = true
	}
	require.Len(t, got, n+(len(late)-(len(frames)-pages)), "every late member once: in the list or by UserJoined")
}
