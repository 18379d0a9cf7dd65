package parley_test

// End-to-end tests of rooms that share one PeerConnection: an Engine has
// one to the server, and the server's session one to the Engine, however
// many rooms it is in (rtc.go, internal/server/rtc.go). A bot in hundreds
// of rooms pays for a room what the room needs, not a PeerConnection, and
// each room's events reach that room's handler only; one room's backlog on
// the shared data channel does not hold up another room's packets; a
// second join sets up no transport.
// Only the public API, on the harness (e2e_harness_test.go).

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
	"github.com/parleyhq/parley/server"
)

// botRoomID names the bot's room i.
func botRoomID(i int) string { return fmt.Sprintf("bot-%03d", i) }

// requireJoinedAll requires the next len(users) events of rec to be
// OnUserJoined of users, in any order.
func requireJoinedAll(t *testing.T, rec *parleytest.Recorder, users ...string) {
	t.Helper()
	var got []string
	for range users {
		got = append(got, expect[parleytest.UserJoined](t, rec).User.UserID)
	}
	require.ElementsMatch(t, users, got, "OnUserJoined")
}

// waitMetric waits until the server's metric key (as scrape names it)
// reaches at least want.
func waitMetric(t *testing.T, srv *parleytest.Server, key string, want float64) {
	t.Helper()
	// The server tells nobody when a metric moves, so it is polled, on a
	// ticker, until the deadline.
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		got := scrape(t, srv)[key]
		if got >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is %v after %v, want %v", key, got, waitTimeout, want)
		}
		<-tick.C
	}
}

// TestBotInManyRooms: one Engine, a bot, joins 300 rooms (100 with
// -short), all at once. A room costs what a room needs, SDK and server
// together, not a PeerConnection (39 goroutines and 245 KiB a room when
// each room had its own): from 10 rooms to all of them, the process gains
// at most 2 goroutines and 64 KiB of live heap per room. The server counts one transport per
// Engine, the bot's and three peers', not one per room. The peers, each
// in 3 of the bot's rooms, exchange user messages in every mode and
// broadcasts with it: every message, result and membership event reaches
// the handler of its own room and no other, and every one of the bot's
// rooms carries a broadcast and its result.
func TestBotInManyRooms(t *testing.T) {
	rooms := 300
	if testing.Short() {
		rooms = 100
	}
	const (
		base  = 10 // rooms joined before the first measurement
		peers = 3  // peer i is in the bot's rooms i, i+1 and i+2
		// The bounds per room added, SDK and server together. Measured on
		// a 2-core machine, per room: 0 goroutines and 4.4 KiB of heap
		// (4.7 KiB with -race); with a PeerConnection per room, before
		// rooms shared one, 39 goroutines and 245 KiB.
		goroutinesPerRoom = 2
		heapPerRoom       = 64 << 10
	)
	srv := parleytest.NewServer(t)
	bot := newLoginPeer(t, srv, "bot") // its Engine, no room yet
	var botRooms []*peer
	// joinRooms has the bot join its next n rooms at once: every JoinRoom
	// is called, then every state 0 awaited.
	joinRooms := func(n int) {
		t.Helper()
		batch := make([]*peer, n)
		for i := range batch {
			r := bot.addRoom(t, botRoomID(len(botRooms)+i))
			require.NoError(t, r.room.JoinRoom(srv.Token(r.room.RoomID(), bot.user), bot.info, parley.RoomConfig{}))
			batch[i] = r
		}
		var slowest time.Duration
		for _, r := range batch {
			slowest = max(slowest, requireState(t, r.rec, 0).Info.Elapsed)
		}
		t.Logf("%d joins at once: the slowest took %v", n, slowest)
		botRooms = append(botRooms, batch...)
	}
	joinRooms(base)

	// in[r] are the peers' Rooms in the bot's room r, by peer index.
	in := make(map[int][]*peer)
	for i := range peers {
		p := newLoginPeer(t, srv, fmt.Sprintf("peer%d", i))
		for r := i; r < i+3; r++ {
			in[r] = append(in[r], p.enter(t, botRoomID(r)))
		}
	}
	for r, ps := range in {
		var users []string
		for _, p := range ps {
			users = append(users, p.user)
			others := []string{"bot"}
			for _, o := range ps {
				if o != p {
					others = append(others, o.user)
				}
			}
			requireJoinedAll(t, p.rec, others...)
		}
		requireJoinedAll(t, botRooms[r].rec, users...)
	}

	before := settled(t)
	joinRooms(rooms - base)
	after := settled(t)
	added := rooms - base
	goroutines := after.goroutines - before.goroutines
	heap := int64(after.heap) - int64(before.heap)
	t.Logf("bot in %d rooms: %v; in %d: %v; per room added: %.2f goroutines, %.1f KiB heap",
		base, before, rooms, after, float64(goroutines)/float64(added), float64(heap)/1024/float64(added))
	require.LessOrEqual(t, goroutines, goroutinesPerRoom*added, "goroutines gained for %d rooms", added)
	require.LessOrEqual(t, heap, int64(heapPerRoom*added), "heap gained for %d rooms", added)

	m := scrape(t, srv)
	require.Equal(t, float64(1+peers), m["parley_transports"], "one transport per Engine, not per room")
	require.Equal(t, float64(rooms), m["parley_rooms"])
	require.Equal(t, float64(rooms+3*peers), m["parley_members"])

	// Every room carries a broadcast and brings back its result.
	hello := make([]int64, rooms)
	for i, r := range botRooms {
		hello[i] = r.room.SendRoomMessage("hello " + r.room.RoomID())
	}
	for i, r := range botRooms {
		require.Equal(t, roomResult(hello[i], parley.RoomMessageSendResultSuccess), r.rec.NextResult(t), r.room.RoomID())
	}

	// The peers and the bot exchange messages in the peers' rooms; each
	// message names its room and the mode it went in.
	wantMsgs := make(map[*parleytest.Recorder][]parleytest.Message)
	wantResults := make(map[*parleytest.Recorder][]parleytest.SendResult)
	for r, ps := range in {
		b := botRooms[r]
		id := b.room.RoomID()
		for _, p := range ps {
			wantMsgs[p.rec] = append(wantMsgs[p.rec], roomMsg("bot", true, false, []byte("hello "+id)))
		}
		for _, p := range ps {
			for _, mode := range allModes {
				text := fmt.Sprintf("%s to bot in %s, %v", p.user, id, mode)
				res := userResult(p.room.SendUserMessage("bot", text, mode), parley.UserMessageSendResultSuccess)
				wantResults[p.rec] = append(wantResults[p.rec], res)
				wantMsgs[b.rec] = append(wantMsgs[b.rec], roomMsg(p.user, false, false, []byte(text)))

				data := []byte(fmt.Sprintf("bot to %s in %s, %v", p.user, id, mode))
				res = userResult(b.room.SendUserBinaryMessage(p.user, data, mode), parley.UserMessageSendResultSuccess)
				wantResults[b.rec] = append(wantResults[b.rec], res)
				wantMsgs[p.rec] = append(wantMsgs[p.rec], roomMsg("bot", false, true, data))
			}
			data := []byte(fmt.Sprintf("%s to all in %s", p.user, id))
			res := roomResult(p.room.SendRoomBinaryMessage(data), parley.RoomMessageSendResultSuccess)
			wantResults[p.rec] = append(wantResults[p.rec], res)
			wantMsgs[b.rec] = append(wantMsgs[b.rec], roomMsg(p.user, true, true, data))
			for _, o := range ps {
				if o != p {
					wantMsgs[o.rec] = append(wantMsgs[o.rec], roomMsg(p.user, true, true, data))
				}
			}
		}
	}
	// The reliable and the unreliable channels keep no order between them.
	for rec, want := range wantMsgs {
		require.ElementsMatch(t, want, rec.NextMessages(t, len(want)), "messages")
	}
	for rec, want := range wantResults {
		var got []parleytest.SendResult
		for range want {
			got = append(got, rec.NextResult(t))
		}
		require.ElementsMatch(t, want, got, "send results")
	}

	// Nothing else reached any room: after a barrier each way in every
	// room of the peers, no room handler has an event left.
	for r, ps := range in {
		for _, p := range ps {
			require.Empty(t, barrier(t, p, botRooms[r]), "messages before the barrier in %s", botRoomID(r))
			require.Empty(t, barrier(t, botRooms[r], p), "messages before the barrier in %s", botRoomID(r))
		}
	}
	for _, r := range botRooms {
		requireNoEvent(t, r.rec)
	}
	for _, ps := range in {
		for _, p := range ps {
			requireNoEvent(t, p.rec)
		}
	}
}

// TestRoomBacklogDoesNotStallOtherRoom: E is in rooms A and B. Two
// senders in A flood E with 64 KiB reliable messages, from a goroutine
// each, while E reads nothing: its handler blocks on A's first message, so
// its callback queue fills (1,100 small messages first, more than its
// 1,024), its SDK stops reading, its SCTP receive window (1 MiB) fills,
// and the rest of the flood waits in the server's queue toward E for room
// A, some 7 MiB (MemberQueue is raised to 32 MiB: the 8 MiB E has not
// acknowledged would pass the default 8 MiB). The stall makes that
// backlog certain whatever the machine's speed; two links in and one out
// would build one only if E's link were the slower. Then T, in B, sends
// E one small message, and E's handler resumes. Each room has its queue
// in the server's writer, served in turn, so T's message overtakes A's
// backlog: when it reaches E's handler, at least n of the 2n large
// messages are still to come, where one queue for both rooms would have
// put it behind all of them (measured, with -race or not: 18 of the 128
// came before it; with the Writer's queues made one, all 128). Then every
// message arrives, in order per sender, and every send gets Success.
func TestRoomBacklogDoesNotStallOtherRoom(t *testing.T) {
	const (
		fill        = 1100 // small messages from s1: more than E's callback queue holds
		n           = 64   // 64 KiB messages from each sender
		stillToCome = n    // of the 2n, at least this many must reach E after T's message
		memberQ     = 32 << 20
	)
	srv := parleytest.NewServer(t, parleytest.WithConfig(func(c *server.Config) { c.MemberQueue = memberQ }))
	e := newLoginPeer(t, srv, "e")
	ea, eb := e.enter(t, "A"), e.enter(t, "B")
	// A message is acknowledged once E's callback queue takes it, long
	// after the default 10 s under -race: no Timeout before that.
	patient := parley.WithMessageTimeout(time.Minute)
	s1 := newPeer(t, srv, "A", "s1", patient)
	s1.join(t)
	s2 := newPeer(t, srv, "A", "s2", patient)
	s2.join(t)
	tp := newPeer(t, srv, "B", "t", patient)
	tp.join(t)
	requireJoinedAll(t, ea.rec, "s1", "s2")
	requireJoinedAll(t, s1.rec, "e", "s2")
	requireJoinedAll(t, s2.rec, "e", "s1")
	requireJoinedAll(t, eb.rec, "t")
	requireJoinedAll(t, tp.rec, "e")

	g := newGate()
	t.Cleanup(g.open)          // before the Engines close (cleanups run last first)
	var large atomic.Int32     // A's 64 KiB messages E's handler has had
	tAt := make(chan int32, 1) // large when T's message reached E's handler
	ea.rec.SetHook(onMessage(func(m parleytest.Message) {
		if m.Binary {
			large.Add(1)
		}
		g.wait()
	}))
	eb.rec.SetHook(onMessage(func(m parleytest.Message) {
		if m.From == "t" {
			tAt <- large.Load()
		}
	}))
	const relayed = "parley_messages_total,kind=user,outcome=ok" // handed to the receiver's queue
	base := scrape(t, srv)[relayed]

	g.shut()
	fillIDs := make([]int64, fill)
	for i := range fillIDs {
		fillIDs[i] = s1.room.SendUserMessage("e", strconv.Itoa(i), reliableOrdered)
	}
	g.waitEntered(t)
	require.Eventually(t, func() bool { return parley.QueueLen(e.e) >= parley.MaxQueuedMessages }, waitTimeout, time.Millisecond,
		"E's callback queue fills: its SDK stops reading")

	bulk := func(sender, i int) []byte {
		b := payloadOf(parley.MaxMessageSize, byte(i+128*sender))
		copy(b, fmt.Sprintf("s%d %03d ", sender+1, i))
		return b
	}
	var (
		wg       sync.WaitGroup
		floodIDs [2][]int64
	)
	for k, s := range []*peer{s1, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range n {
				floodIDs[k] = append(floodIDs[k], s.room.SendUserBinaryMessage("e", bulk(k, i), reliableOrdered))
			}
		}()
	}
	wg.Wait()
	// Every message of A is in the server's queue toward E, or beyond.
	waitMetric(t, srv, relayed, base+fill+2*n)
	tid := tp.room.SendUserMessage("e", "to E in B", reliableOrdered)
	waitMetric(t, srv, relayed, base+fill+2*n+1) // T's too
	g.open()

	var at int32
	select {
	case at = <-tAt:
	case <-time.After(waitTimeout):
		t.Fatalf("T's message did not reach E within %v", waitTimeout)
	}
	t.Logf("T's message reached E's handler after %d of A's %d large messages", at, 2*n)
	require.GreaterOrEqual(t, 2*n-int(at), stillToCome,
		"T's message waited behind room A's backlog: %d of A's %d large messages came before it", at, 2*n)
	require.Equal(t, roomMsg("t", false, false, []byte("to E in B")), eb.rec.NextMessage(t))
	require.Equal(t, userResult(tid, parley.UserMessageSendResultSuccess), tp.rec.NextResult(t), "T's result")

	// All of A's messages, in order per sender.
	var next [2]int
	small := 0
	for _, m := range ea.rec.NextMessages(t, fill+2*n) {
		switch {
		case m.From == "s1" && !m.Binary:
			require.Equal(t, 0, next[0], "s1's small messages came before its large ones")
			require.Equal(t, strconv.Itoa(small), string(m.Payload), "s1's small message %d", small)
			small++
		case m.From == "s1" || m.From == "s2":
			k := 0
			if m.From == "s2" {
				k = 1
			}
			require.True(t, m.Binary && !m.Broadcast, "%v", m)
			require.Less(t, next[k], n, "%s: more messages than sent", m.From)
			requireBytes(t, bulk(k, next[k]), m.Payload, fmt.Sprintf("%s's large message %d", m.From, next[k]))
			next[k]++
		default:
			t.Fatalf("unexpected message in A: %v", m)
		}
	}
	require.Equal(t, fill, small)
	for k, s := range []*peer{s1, s2} {
		ids := floodIDs[k]
		if k == 0 {
			ids = append(fillIDs, ids...)
		}
		s.rec.Timeout = time.Minute
		for id, res := range s.rec.WaitResults(t, ids...) {
			require.Equal(t, userResult(id, parley.UserMessageSendResultSuccess), res, "%s's result", s.user)
		}
	}
	requireNone[parleytest.RoomStateChanged](t, ea.rec, "E's room A state changed: the server dropped it")
	requireNone[parleytest.UserLeave](t, s1.rec, "s1 saw someone leave")
}

// TestSecondJoinNeedsNoNewPeerConnection: an Engine's second room rides
// the PeerConnection of its first. alice joins A, then B: the server still
// counts one transport, B works both ways, and neither room reports a
// rejoin. (A PeerConnection replaced at the second join would leave the
// count at 1, the old one failing as the new one comes, but would make
// the rooms on the old one rejoin.)
// Once bob, on an Engine of his own, is in both rooms too, the server
// counts two transports: one per Engine.
func TestSecondJoinNeedsNoNewPeerConnection(t *testing.T) {
	srv := parleytest.NewServer(t)
	alice := newLoginPeer(t, srv, "alice")
	a := alice.addRoom(t, "A")
	first := a.join(t)
	require.Equal(t, 1.0, scrape(t, srv)["parley_transports"], "the first join sets up the Engine's transport")
	b := alice.addRoom(t, "B")
	second := b.join(t)
	t.Logf("first join: %v; second join, on the same PeerConnection: %v", first.Info.Elapsed, second.Info.Elapsed)
	require.Equal(t, parley.JoinTypeFirst, second.Info.JoinType)
	require.Equal(t, 1.0, scrape(t, srv)["parley_transports"], "the second join sets up no transport")

	bob := newLoginPeer(t, srv, "bob")
	bb := bob.enter(t, "B")
	requireJoined(t, bb.rec, alice.info)
	requireJoined(t, b.rec, bob.info)
	ba := bob.enter(t, "A")
	requireJoined(t, ba.rec, alice.info)
	requireJoined(t, a.rec, bob.info) // A's next event: no rejoin came before
	require.Equal(t, 2.0, scrape(t, srv)["parley_transports"], "one transport per Engine")

	// send requires x's message to be y's next event, and its result x's.
	send := func(x, y *peer) {
		t.Helper()
		text := x.user + " to " + y.user + " in " + x.room.RoomID()
		id := x.room.SendUserMessage(y.user, text, reliableOrdered)
		require.Equal(t, roomMsg(x.user, false, false, []byte(text)), expect[parleytest.Message](t, y.rec))
		require.Equal(t, userResult(id, parley.UserMessageSendResultSuccess), expect[parleytest.SendResult](t, x.rec))
	}
	send(b, bb)
	send(bb, b)
	send(a, ba)
	send(ba, a)
	for _, p := range []*peer{a, b, ba, bb} {
		requireNoEvent(t, p.rec)
	}
}

// TestIdleTransportCloses: once no room has used an Engine's
// PeerConnection for the idle timeout (WithIdleTransportTimeout), it
// closes at both ends, quietly: no event on the Engine or its room, the
// login goes on (it needs the signaling connection only). The next join
// sets up a new one first, reports a first join, and works both ways; the
// other member sees alice leave (Quit) and come back, nothing else.
func TestIdleTransportCloses(t *testing.T) {
	srv := parleytest.NewServer(t)
	alice := newPeer(t, srv, "A", "alice", parley.WithIdleTransportTimeout(200*time.Millisecond))
	alice.login(t)
	bob := newPeer(t, srv, "A", "bob")
	bob.login(t)
	joinAll(t, alice, bob)
	require.Equal(t, 2.0, scrape(t, srv)["parley_transports"])

	require.NoError(t, alice.room.LeaveRoom())
	requireLeft(t, alice.rec)
	requireLeave(t, bob.rec, "alice", parley.UserOfflineReasonQuit)
	require.Eventually(t, func() bool { return scrape(t, srv)["parley_transports"] == 1 }, waitTimeout, 10*time.Millisecond,
		"alice's PeerConnection closes once idle; bob's stays")

	id := alice.e.SendUserMessageOutsideRoom("bob", "still logged in", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, alice.sent(t, id))
	require.Equal(t, outsideMsg("alice", false, []byte("still logged in")), bob.recv(t))

	again := alice.join(t)
	require.Equal(t, parley.JoinTypeFirst, again.Info.JoinType)
	requireJoined(t, alice.rec, bob.info)
	requireJoined(t, bob.rec, alice.info)
	require.Equal(t, 2.0, scrape(t, srv)["parley_transports"], "a new PeerConnection for alice")
	for _, d := range []struct{ from, to *peer }{{alice, bob}, {bob, alice}} {
		text := d.from.user + " to " + d.to.user
		id := d.from.room.SendUserMessage(d.to.user, text, reliableOrdered)
		require.Equal(t, roomMsg(d.from.user, false, false, []byte(text)), expect[parleytest.Message](t, d.to.rec))
		require.Equal(t, userResult(id, parley.UserMessageSendResultSuccess), expect[parleytest.SendResult](t, d.from.rec))
	}
	for _, p := range []*peer{alice, bob} {
		requireNoEvent(t, p.rec)
		p.quiet(t)
	}
}
