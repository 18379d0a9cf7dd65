package parley_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
)

// TestStateZeroBeforeMessages: a member broadcasts without pause while 20
// others join, three times over; each joiner's first event is its state 0,
// never a message (the server forwards to a new member as soon as its
// channels are open, which can be before its last RoomJoined is read).
func TestStateZeroBeforeMessages(t *testing.T) {
	const rounds, joiners, maxSends, window = 3, 20, 30000, 64
	srv := parleytest.NewServer(t)
	alice := joined(t, srv, "busy", "alice", "")

	// At most window broadcasts in flight: the hook hands a slot back with
	// each result. Bounded in count, and ended once the joins are done.
	slots := make(chan struct{}, window)
	for range window {
		slots <- struct{}{}
	}
	alice.rec.SetHook(func(ev parleytest.Event) {
		if _, ok := ev.(parleytest.SendResult); ok {
			slots <- struct{}{}
		}
	})
	stop, sent := make(chan struct{}), make(chan int, 1)
	go func() {
		n := 0
		defer func() { sent <- n }()
		for ; n < maxSends; n++ {
			select {
			case <-slots:
			case <-stop:
				return
			}
			alice.room.SendRoomMessage(strconv.Itoa(n))
		}
	}()

	got := 0
	for round := range rounds {
		peers := make([]*peer, joiners)
		for i := range peers {
			peers[i] = newPeer(t, srv, "busy", "joiner"+strconv.Itoa(round)+"-"+strconv.Itoa(i))
		}
		var wg sync.WaitGroup
		for _, p := range peers {
			wg.Go(func() { // the joins overlap, and with the broadcasts
				_ = p.room.JoinRoom(srv.Token("busy", p.user), p.info, parley.RoomConfig{})
			})
		}
		wg.Wait()
		for _, p := range peers {
			requireState(t, p.rec, 0) // the first event of the room
		}
		for _, p := range peers {
			got += len(p.rec.TakeAll(isA[parleytest.Message]))
			require.NoError(t, p.e.Close())
		}
	}
	close(stop)
	n := <-sent
	require.Positive(t, got, "the joiners received broadcasts")
	t.Logf("%d broadcasts sent during the joins; the joiners received %d after their state 0", n, got)
}

// requireRejoined requires rec's next room states to be warnings -2001
// (a rejoin's try failed; it retries) and then state 0 with
// JoinTypeReconnected; it returns how many warnings came first.
func requireRejoined(t *testing.T, rec *parleytest.Recorder) int {
	t.Helper()
	for warnings := 0; ; warnings++ {
		sc := rec.NextRoomState(t)
		if sc.State == int(parley.ErrorCodeJoinRoomFailed) {
			require.Equal(t, parley.JoinTypeReconnected, sc.Info.JoinType, "-2001 is a rejoin's warning")
			continue
		}
		require.Equalf(t, 0, sc.State, "room state (%v) while rejoining", parley.ErrorCode(sc.State))
		require.Equal(t, parley.JoinTypeReconnected, sc.Info.JoinType)
		return warnings
	}
}

// TestRejoinWarnsJoinRoomFailed: a room whose transport died rejoins by
// itself; while its tries fail (the server cannot be reached) it reports
// the warning -2001 for each, and state 0 (JoinTypeReconnected) once the
// server is back. The other member notices nothing.
func TestRejoinWarnsJoinRoomFailed(t *testing.T) {
	srv := parleytest.NewServer(t)
	proxy := newCutProxy(t, srv)
	alice := newPeerAt(t, srv, parley.EngineConfig{AppID: srv.AppID, ServerURL: proxy.URL()}, "room1",
		parley.UserInfo{UserID: "alice"}, parley.WithJoinTimeout(time.Second))
	alice.join(t)
	bob := joined(t, srv, "room1", "bob", "")
	requireJoined(t, alice.rec, bob.info)
	requireJoined(t, bob.rec, alice.info)

	proxy.block()
	proxy.cut()
	require.NoError(t, parley.CrashRoomTransport(alice.room))
	for range 2 {
		sc := requireState(t, alice.rec, int(parley.ErrorCodeJoinRoomFailed))
		require.Equal(t, parley.JoinTypeReconnected, sc.Info.JoinType)
	}
	proxy.unblock()
	requireRejoined(t, alice.rec)
	requireNothingBefore(t, srv, bob, "probe") // no leave, no rejoin seen
	requireJoined(t, alice.rec, parley.UserInfo{UserID: "probe", ExtraInfo: "probe"})
}

// TestServerRefusesForGood: when the server's address answers a reconnect
// with 404 (it no longer serves this endpoint), the Engine's connection
// fails for good (Failed) and every room reports -1084
// AbnormalServerStatus: the SDK gives them up, and says so.
func TestServerRefusesForGood(t *testing.T) {
	first, mint := startServerAt(t, "127.0.0.1:0", 0)
	addr := first.Addr().String()
	alice := newPeerAt(t, nil, parley.EngineConfig{AppID: restartAppID, ServerURL: first.URL()}, "room1", parley.UserInfo{UserID: "alice"})
	require.NoError(t, alice.room.JoinRoom(mint("room1", "alice"), alice.info, parley.RoomConfig{}))
	requireState(t, alice.rec, 0)
	rec2 := parleytest.NewRecorder()
	room2, err := alice.e.CreateRoom("room2", rec2)
	require.NoError(t, err)
	require.NoError(t, room2.JoinRoom(mint("room2", "alice"), alice.info, parley.RoomConfig{}))
	requireState(t, rec2, 0)

	require.NoError(t, first.Shutdown(context.Background()))
	alice.eng.WaitState(t, parley.ConnectionStateReconnecting)
	// What answers now refuses the WebSocket: 404.
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	web := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: time.Second}
	served := make(chan struct{})
	go func() { defer close(served); _ = web.Serve(ln) }()
	t.Cleanup(func() { _ = web.Close(); <-served })

	alice.eng.WaitState(t, parley.ConnectionStateFailed)
	for _, rec := range []*parleytest.Recorder{alice.rec, rec2} {
		for {
			sc := rec.NextRoomState(t)
			if sc.State == int(parley.ErrorCodeJoinRoomFailed) {
				continue // a rejoin's try failed before the connection did
			}
			require.Equalf(t, int(parley.ErrorCodeAbnormalServerStatus), sc.State, "room state (%v)", parley.ErrorCode(sc.State))
			break
		}
	}
	requireNoRoomEvent(t, alice.room, alice.rec)
	requireNoRoomEvent(t, room2, rec2)
}

// TestSendsWhileRebuildingAreBounded: while a room rebuilds itself (its
// transport died and the server cannot be reached), sends are kept to go
// out once it is back, but no more than parley.MaxHeld bytes of them: the
// next Send* waits, as it would on a full data channel. Once the room is
// back every message arrives, in order, and every send gets Success.
func TestSendsWhileRebuildingAreBounded(t *testing.T) {
	const n, size = 64, 64 << 10 // four times the bound
	srv := parleytest.NewServer(t)
	proxy := newCutProxy(t, srv)
	alice := newPeerAt(t, srv, parley.EngineConfig{AppID: srv.AppID, ServerURL: proxy.URL()}, "room1", parley.UserInfo{UserID: "alice"})
	alice.join(t)
	bob := joined(t, srv, "room1", "bob", "")
	requireJoined(t, alice.rec, bob.info)
	requireJoined(t, bob.rec, alice.info)

	proxy.block()
	proxy.cut()
	require.NoError(t, parley.CrashRoomTransport(alice.room))
	require.Eventually(t, func() bool { return parley.Rebuilding(alice.room) }, waitTimeout, time.Millisecond)

	payload := func(i int) []byte {
		b := make([]byte, size)
		copy(b, strconv.Itoa(i))
		return b
	}
	ids := make(chan int64, n)
	go func() {
		defer close(ids)
		for i := range n {
			ids <- alice.room.SendUserBinaryMessage("bob", payload(i), parley.MessageConfigReliableOrdered)
		}
	}()
	// The sender fills the bound, then waits inside Send*.
	require.Eventually(t, func() bool { return parley.HeldBytes(alice.room) > parley.MaxHeld-size }, waitTimeout, time.Millisecond)
	require.Never(t, func() bool { return parley.HeldBytes(alice.room) > parley.MaxHeld || len(ids) == n },
		time.Second, 5*time.Millisecond, "sends while the room rebuilds pass the bound")
	t.Logf("%d of %d sends returned while the room rebuilt, holding %d bytes", len(ids), n, parley.HeldBytes(alice.room))

	proxy.unblock()
	requireRejoined(t, alice.rec)
	var all []int64
	for id := range ids {
		all = append(all, id)
	}
	require.Len(t, all, n)
	bob.rec.Timeout = 30 * time.Second
	for i, m := range bob.rec.NextMessages(t, n) {
		require.Equal(t, roomMsg("alice", false, true, payload(i)), m, "message %d", i)
	}
	for id, r := range alice.rec.WaitResults(t, all...) {
		require.Equal(t, userResult(id, parley.UserMessageSendResultSuccess), r)
	}
}

// TestOutsideMessagesBoundedForBlockedReceiver: a receiver whose handler
// never returns holds at most the dispatcher's bound of messages received
// outside rooms (1024), as in rooms: the signaling reader waits, and TCP
// pushes back on the server. Once the handler returns, every message
// arrives, in order.
func TestOutsideMessagesBoundedForBlockedReceiver(t *testing.T) {
	const n, slack = 4000, 16 // slack: control events, such as connection states
	srv := parleytest.NewServer(t)
	alice, bob := loggedIn(t, srv, "alice"), loggedIn(t, srv, "bob")
	release := make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the Engines close (Cleanup runs last-registered first)
	bob.eng.SetHook(onMessage(func(parleytest.Message) { <-release }))

	ids := make([]int64, n)
	for i := range ids {
		ids[i] = alice.e.SendUserMessageOutsideRoom("bob", strconv.Itoa(i), parley.MessageConfigUnreliableOrdered)
	}
	// Unreliable: each result comes once the server has forwarded the
	// message, so all of them are on their way to bob now.
	alice.eng.Timeout = 30 * time.Second
	for id, r := range alice.eng.WaitResults(t, ids...) {
		require.Equal(t, outsideResult(id, parley.UserMessageSendResultSuccess), r)
	}
	require.Eventually(t, func() bool { return parley.QueueLen(bob.e) >= parley.MaxQueuedMessages }, waitTimeout, time.Millisecond)
	require.Never(t, func() bool { return parley.QueueLen(bob.e) > parley.MaxQueuedMessages+slack },
		time.Second, 5*time.Millisecond, "the blocked receiver's queue passes its bound")
	t.Logf("blocked receiver: %d events queued", parley.QueueLen(bob.e))

	unblock()
	bob.eng.Timeout = 30 * time.Second
	for i, m := range bob.eng.NextMessages(t, n) {
		require.Equal(t, outsideMsg("alice", false, []byte(strconv.Itoa(i))), m, "message %d", i)
	}
}

// TestOutsideBurstKeepsTheConnection: a burst of outside-room messages
// larger than the signaling connection's send queue (8 frames here) waits
// for the queue to drain instead of dropping the connection: no
// Reconnecting, every send succeeds, and the receiver has every message in
// order. Before, each overflow started the connection over, and under load
// the resumes could take longer than the message timeout.
func TestOutsideBurstKeepsTheConnection(t *testing.T) {
	const n = 2000
	srv := parleytest.NewServer(t)
	alice := newPeerAt(t, srv, parley.EngineConfig{AppID: srv.AppID, ServerURL: srv.URL}, "",
		parley.UserInfo{UserID: "alice"}, parley.WithSignalQueue(8))
	alice.login(t)
	bob := loggedIn(t, srv, "bob")

	ids := make([]int64, n)
	for i := range ids {
		ids[i] = alice.e.SendUserMessageOutsideRoom("bob", strconv.Itoa(i), parley.MessageConfigUnreliableOrdered)
	}
	for id, r := range alice.eng.WaitResults(t, ids...) {
		require.Equal(t, outsideResult(id, parley.UserMessageSendResultSuccess), r)
	}
	for i, m := range bob.eng.NextMessages(t, n) {
		require.Equal(t, outsideMsg("alice", false, []byte(strconv.Itoa(i))), m, "message %d", i)
	}
	drops := alice.eng.TakeAll(func(ev parleytest.Event) bool {
		return ev == parleytest.ConnectionStateChanged{State: parley.ConnectionStateReconnecting}
	})
	require.Empty(t, drops, "the burst dropped the signaling connection")
}

// TestFailureReasonsLogged: a join or a login that fails reports only its
// code to the handler (-1000, -1001); why it failed, as the server said
// or as the dial failed, is logged at Warn through WithLogger.
func TestFailureReasonsLogged(t *testing.T) {
	srv := parleytest.NewServer(t)
	warnings := func() (*zap.Logger, *observer.ObservedLogs) {
		core, logs := observer.New(zapcore.WarnLevel)
		return zap.New(core), logs
	}
	// requireWarn requires a Warn entry with msg whose fields mention want.
	requireWarn := func(logs *observer.ObservedLogs, msg, want string) {
		t.Helper()
		for _, e := range logs.FilterMessage(msg).All() {
			for _, v := range e.ContextMap() {
				if strings.Contains(fmt.Sprint(v), want) {
					return
				}
			}
		}
		t.Fatalf("no Warn %q mentioning %q; Warn entries: %v", msg, want, logs.All())
	}

	t.Run("server refusals", func(t *testing.T) {
		log, logs := warnings()
		alice := newPeerAt(t, srv, parley.EngineConfig{AppID: srv.AppID, ServerURL: srv.URL}, "room1",
			parley.UserInfo{UserID: "alice"}, parley.WithLogger(log))
		require.NoError(t, alice.room.JoinRoom(srv.Token("room1", "bob"), alice.info, parley.RoomConfig{}))
		requireState(t, alice.rec, int(parley.ErrorCodeInvalidToken))
		requireWarn(logs, "join failed", `token: for user "bob", not "alice"`)

		require.NoError(t, alice.e.Login(srv.LoginToken("bob"), "alice"))
		alice.requireLogin(t, "alice", parley.LoginErrorCodeInvalidToken)
		requireWarn(logs, "login refused", `"bob"`)
	})

	t.Run("no server", func(t *testing.T) {
		web := httptest.NewServer(http.NotFoundHandler())
		t.Cleanup(web.Close)
		url := "ws" + strings.TrimPrefix(web.URL, "http") + "/rtc"
		log, logs := warnings()
		alice := newPeerAt(t, srv, parley.EngineConfig{AppID: srv.AppID, ServerURL: url}, "room1",
			parley.UserInfo{UserID: "alice"}, parley.WithLogger(log))
		require.NoError(t, alice.room.JoinRoom(srv.Token("room1", "alice"), alice.info, parley.RoomConfig{}))
		requireState(t, alice.rec, int(parley.ErrorCodeJoinRoom))
		requireWarn(logs, "join failed", "404")

		require.NoError(t, alice.e.Login(srv.LoginToken("alice"), "alice"))
		alice.requireLogin(t, "alice", parley.LoginErrorCodeLoginFailed)
		requireWarn(logs, "login failed: no connection", "404")
	})
}
