package parley_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
)

// TestOutsideMessagesSurviveSignalingCuts streams 2,000 reliable
// outside-room messages while the sender's signaling connection is cut
// twice and the receiver's once: every message arrives exactly once, in
// order, and every send gets Success.
func TestOutsideMessagesSurviveSignalingCuts(t *testing.T) {
	const n = 2000
	srv := parleytest.NewServer(t)
	proxyA, proxyB := newCutProxy(t, srv), newCutProxy(t, srv)
	login := func(url, user string) (*parley.Engine, *parleytest.Recorder) {
		p := newPeerAt(t, srv, parley.EngineConfig{AppID: srv.AppID, ServerURL: url}, "", parley.UserInfo{UserID: user})
		p.login(t)
		return p.e, p.eng
	}
	alice, aliceRec := login(proxyA.URL(), "alice")
	_, bobRec := login(proxyB.URL(), "bob")

	cuts := map[int]func(){
		n / 4:     proxyA.cut,
		n / 2:     proxyB.cut,
		3 * n / 4: proxyA.cut,
	}
	for i := range n {
		if cut := cuts[i]; cut != nil {
			cut()
		}
		require.Equal(t, int64(i+1), alice.SendUserMessageOutsideRoom("bob", strconv.Itoa(i), parley.MessageConfigReliableOrdered))
	}
	aliceRec.Timeout, bobRec.Timeout = 30*time.Second, 30*time.Second
	for i, m := range bobRec.NextMessages(t, n) {
		require.Equal(t, outsideMsg("alice", false, []byte(strconv.Itoa(i))), m, "message %d out of order or doubled", i)
	}
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = int64(i + 1)
	}
	for id, r := range aliceRec.WaitResults(t, ids...) { // fails on a second result
		require.Equal(t, outsideResult(id, parley.UserMessageSendResultSuccess), r)
	}
	requireNoMsg(t, bobRec)
	aliceRec.WaitState(t, parley.ConnectionStateReconnected)
	bobRec.WaitState(t, parley.ConnectionStateReconnected)
}

// outsideRecorder records outside-room traffic and connection states for
// TestNoLossAcrossCuts.
type outsideRecorder struct {
	parley.NopEngineEventHandler
	logins  chan parley.LoginErrorCode
	msgs    chan string
	results chan [2]int64 // msgID, result
	states  chan parley.ConnectionState
	status  chan parley.UserOnlineStatus
}

func newOutsideRecorder() *outsideRecorder {
	return &outsideRecorder{
		logins:  make(chan parley.LoginErrorCode, 8),
		msgs:    make(chan string, 1<<14),
		results: make(chan [2]int64, 1<<14),
		states:  make(chan parley.ConnectionState, 64),
		status:  make(chan parley.UserOnlineStatus, 64),
	}
}

func (r *outsideRecorder) OnLoginResult(_ string, code parley.LoginErrorCode, _ time.Duration) {
	r.logins <- code
}
func (r *outsideRecorder) OnConnectionStateChanged(s parley.ConnectionState) { r.states <- s }
func (r *outsideRecorder) OnGetPeerOnlineStatus(_ string, s parley.UserOnlineStatus) {
	r.status <- s
}
func (r *outsideRecorder) OnUserMessageReceivedOutsideRoom(_, m string) { r.msgs <- m }
func (r *outsideRecorder) OnUserMessageSendResultOutsideRoom(id int64, res parley.UserMessageSendResult) {
	r.results <- [2]int64{id, int64(res)}
}

func (r *outsideRecorder) waitState(t *testing.T, want parley.ConnectionState) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case s := <-r.states:
			if s == want {
				return
			}
		case <-timeout:
			t.Fatalf("no %v within 15s", want)
		}
	}
}

// streamRecorder counts a room's messages and results for the no-loss
// test.
type streamRecorder struct {
	parley.NopRoomEventHandler
	joined  chan parley.RoomStateInfo
	msgs    chan string
	results chan [2]int64
}

func (r *streamRecorder) OnRoomStateChanged(_, _ string, state int, info parley.RoomStateInfo) {
	if state == 0 {
		r.joined <- info
	}
}
func (r *streamRecorder) OnUserMessageReceived(_, m string) { r.msgs <- m }
func (r *streamRecorder) OnUserMessageSendResult(id int64, res parley.UserMessageSendResult) {
	r.results <- [2]int64{id, int64(res)}
}

// TestNoLossAcrossCuts streams 10,000 reliable user messages in a room and
// 2,000 outside it while the sender's signaling connection is cut, its
// room's PeerConnection dies, and the receiver's signaling connection is
// cut: every message arrives exactly once, in order, and every send gets
// Success.
func TestNoLossAcrossCuts(t *testing.T) {
	const inRoom, outside = 10000, 2000
	srv := parleytest.NewServer(t)
	proxyA, proxyB := newCutProxy(t, srv), newCutProxy(t, srv)
	type peer struct {
		e    *parley.Engine
		eng  *outsideRecorder
		room *parley.Room
		rec  *streamRecorder
	}
	join := func(url, user string) peer {
		eng := newOutsideRecorder()
		e := newEngineFor(t, parley.EngineConfig{AppID: srv.AppID, ServerURL: url}, eng)
		rec := &streamRecorder{joined: make(chan parley.RoomStateInfo, 8), msgs: make(chan string, inRoom+16), results: make(chan [2]int64, inRoom+16)}
		room, err := e.CreateRoom("stream", rec)
		require.NoError(t, err)
		require.NoError(t, room.JoinRoom(srv.Token("stream", user), parley.UserInfo{UserID: user}, parley.RoomConfig{}))
		select {
		case <-rec.joined:
		case <-time.After(15 * time.Second):
			t.Fatal("no join")
		}
		require.NoError(t, e.Login(srv.LoginToken(user), user))
		require.Equal(t, parley.LoginErrorCodeSuccess, <-eng.logins)
		return peer{e, eng, room, rec}
	}
	alice, bob := join(proxyA.URL(), "alice"), join(proxyB.URL(), "bob")

	faults := map[int]func(){
		inRoom / 4:     proxyA.cut,
		inRoom / 2:     func() { require.NoError(t, parley.CrashRoomTransport(alice.room)) },
		3 * inRoom / 4: proxyB.cut,
	}
	start := time.Now()
	for i := range inRoom {
		if f := faults[i]; f != nil {
			f()
		}
		alice.room.SendUserMessage("bob", strconv.Itoa(i), parley.MessageConfigReliableOrdered)
		if i%5 == 0 {
			alice.e.SendUserMessageOutsideRoom("bob", strconv.Itoa(i/5), parley.MessageConfigReliableOrdered)
		}
	}
	for i := range inRoom {
		select {
		case m := <-bob.rec.msgs:
			require.Equal(t, strconv.Itoa(i), m, "room message %d out of order, doubled or lost", i)
		case <-time.After(30 * time.Second):
			t.Fatalf("room message %d of %d did not arrive", i, inRoom)
		}
	}
	for i := range outside {
		select {
		case m := <-bob.eng.msgs:
			require.Equal(t, strconv.Itoa(i), m, "outside message %d out of order, doubled or lost", i)
		case <-time.After(30 * time.Second):
			t.Fatalf("outside message %d of %d did not arrive", i, outside)
		}
	}
	for _, c := range []struct {
		name string
		ch   chan [2]int64
		n    int
	}{{"room", alice.rec.results, inRoom}, {"outside", alice.eng.results, outside}} {
		seen := map[int64]bool{}
		for range c.n {
			select {
			case r := <-c.ch:
				require.Equal(t, int64(parley.UserMessageSendResultSuccess), r[1], "%s result of %d", c.name, r[0])
				require.False(t, seen[r[0]], "second %s result for %d", c.name, r[0])
				seen[r[0]] = true
			case <-time.After(30 * time.Second):
				t.Fatalf("%s: only %d of %d results", c.name, len(seen), c.n)
			}
		}
	}
	info := <-alice.rec.joined
	require.Equal(t, parley.JoinTypeReconnected, info.JoinType, "alice's room came back by itself")
	alice.eng.waitState(t, parley.ConnectionStateReconnected) // both cuts took effect
	bob.eng.waitState(t, parley.ConnectionStateReconnected)
	t.Logf("%d room + %d outside messages across 2 signaling cuts and 1 transport loss: all delivered once, in order, all Success, in %v",
		inRoom, outside, time.Since(start).Round(time.Millisecond))
	select {
	case m := <-bob.rec.msgs:
		t.Fatalf("an extra room message: %q", m)
	case m := <-bob.eng.msgs:
		t.Fatalf("an extra outside message: %q", m)
	default:
	}
}

// TestUnreachableDuringGrace: while a logged-in user's connection is down
// and the server keeps its session, others see it Unreachable; Online
// again once it has resumed.
func TestUnreachableDuringGrace(t *testing.T) {
	srv := parleytest.NewServer(t)
	proxy := newCutProxy(t, srv)
	alice := newPeerAt(t, srv, parley.EngineConfig{AppID: srv.AppID, ServerURL: proxy.URL()}, "", parley.UserInfo{UserID: "alice"})
	alice.login(t)
	watcher := loggedIn(t, srv, "watcher")
	status := func() parley.UserOnlineStatus { return watcher.status(t, "alice") }
	require.Equal(t, parley.UserOnlineStatusOnline, status())
	proxy.block()
	proxy.cut()
	require.Eventually(t, func() bool { return status() == parley.UserOnlineStatusUnreachable }, 15*time.Second, 20*time.Millisecond)
	proxy.unblock()
	alice.eng.WaitState(t, parley.ConnectionStateReconnected)
	require.Equal(t, parley.UserOnlineStatusOnline, status())
}
