package parley_test

import (
	"encoding/binary"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
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

// TestBigRoom joins PARLEY_BIG_ROOM members (real Engines, each with its
// own PeerConnection, all in this process) to one room, 32 joins in flight
// at a time (PARLEY_BIG_ROOM_INFLIGHT), and reports how long until every member has state 0 and
// knows every other; then one member broadcasts 64 B at 5/s for 4 s and
// it reports the delivery latency over all receivers. It is opt-in (it
// takes minutes at 2,000 on a small machine): PARLEY_BIG_ROOM=2000 go test
// -run TestBigRoom -v -timeout 30m . With PARLEY_BIG_ROOM_HEAP=file it
// writes a heap profile of the idle room (SDKs and server) there, and with
// PARLEY_BIG_ROOM_GOROUTINES=file a dump of its goroutines.
func TestBigRoom(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("PARLEY_BIG_ROOM"))
	if n < 2 {
		t.Skip("set PARLEY_BIG_ROOM to the room size to run it")
	}
	srv := parleytest.NewServer(t, parleytest.WithConfig(func(c *server.Config) {
		c.MaxConnsPerAddress = 2*n + 64
		c.JoinTimeout = 5 * time.Minute
	}))
	type member struct {
		room    *parley.Room
		joined  chan int
		known   atomic.Int32
		handler *bigHandler
	}
	var (
		mu   sync.Mutex
		lats []time.Duration
	)
	got := make(chan struct{}, 1<<20)
	members := make([]*member, n)
	inFlight := 32
	if v, _ := strconv.Atoi(os.Getenv("PARLEY_BIG_ROOM_INFLIGHT")); v > 0 {
		inFlight = v
	}
	sem := make(chan struct{}, inFlight)
	start := time.Now()
	var wg sync.WaitGroup
	for i := range members {
		m := &member{joined: make(chan int, 1)}
		m.handler = &bigHandler{m: &m.known, joined: m.joined, onMessage: func(b []byte) {
			if len(b) >= 8 {
				d := time.Since(time.Unix(0, int64(binary.BigEndian.Uint64(b))))
				mu.Lock()
				lats = append(lats, d)
				mu.Unlock()
			}
			got <- struct{}{}
		}}
		members[i] = m
		e, err := parley.NewEngine(parley.EngineConfig{AppID: srv.AppID, ServerURL: srv.URL}, nil, parley.WithLoopbackOnly())
		require.NoError(t, err)
		t.Cleanup(func() { _ = e.Close() })
		m.room, err = e.CreateRoom("big", m.handler)
		require.NoError(t, err)
		user := fmt.Sprintf("u%d", i)
		sem <- struct{}{}
		require.NoError(t, m.room.JoinRoom(srv.Token("big", user), parley.UserInfo{UserID: user}, parley.RoomConfig{}))
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			select {
			case st := <-m.joined:
				if st != 0 {
					t.Errorf("%s: join state %d", user, st)
				}
			case <-time.After(5 * time.Minute):
				t.Errorf("%s: join timed out", user)
			}
		}()
	}
	wg.Wait()
	joined := time.Since(start)
	t.Logf("%d members: all joins ended after %v", n, joined.Round(time.Millisecond))
	if t.Failed() {
		t.FailNow()
	}
	require.Eventually(t, func() bool {
		for _, m := range members {
			if int(m.known.Load()) != n-1 {
				return false
			}
		}
		return true
	}, 5*time.Minute, 10*time.Millisecond, "every member knows every other")
	known := time.Since(start)
	t.Logf("%d members: all state 0 after %v, all know each other after %v", n, joined.Round(time.Millisecond), known.Round(time.Millisecond))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("idle, SDK and server together: %d goroutines (%.1f per member), heap %.1f MiB (%.0f KiB per member), stacks %.1f MiB",
		runtime.NumGoroutine(), float64(runtime.NumGoroutine())/float64(n), float64(ms.HeapAlloc)/(1<<20),
		float64(ms.HeapAlloc)/1024/float64(n), float64(ms.StackInuse)/(1<<20))
	if path := os.Getenv("PARLEY_BIG_ROOM_GOROUTINES"); path != "" {
		f, err := os.Create(path)
		require.NoError(t, err)
		require.NoError(t, pprof.Lookup("goroutine").WriteTo(f, 2))
		require.NoError(t, f.Close())
	}
	if path := os.Getenv("PARLEY_BIG_ROOM_HEAP"); path != "" {
		f, err := os.Create(path)
		require.NoError(t, err)
		require.NoError(t, pprof.WriteHeapProfile(f))
		require.NoError(t, f.Close())
	}

	const sends = 20
	sender := members[0].room
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	payload := make([]byte, 64)
	for range sends {
		<-tick.C
		binary.BigEndian.PutUint64(payload, uint64(time.Now().UnixNano()))
		sender.SendRoomBinaryMessage(payload)
	}
	timeout := time.After(2 * time.Minute)
	for range sends * (n - 1) {
		select {
		case <-got:
		case <-timeout:
			t.Fatalf("not every broadcast reached every member")
		}
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("broadcast to %d: %d deliveries, p50 %v, p90 %v, p99 %v, max %v", n-1, len(lats),
		percentile(lats, 50).Round(100*time.Microsecond), percentile(lats, 90).Round(100*time.Microsecond),
		percentile(lats, 99).Round(100*time.Microsecond), percentile(lats, 100).Round(100*time.Microsecond))
}

type bigHandler struct {
	parley.NopRoomEventHandler
	m         *atomic.Int32
	joined    chan int
	onMessage func([]byte)
}

func (h *bigHandler) OnRoomStateChanged(_, _ string, state int, _ parley.RoomStateInfo) {
	select {
	case h.joined <- state:
	default:
	}
}
func (h *bigHandler) OnUserJoined(parley.UserInfo)                   { h.m.Add(1) }
func (h *bigHandler) OnUserLeave(string, parley.UserOfflineReason)   { h.m.Add(-1) }
func (h *bigHandler) OnRoomBinaryMessageReceived(_ string, b []byte) { h.onMessage(b) }

// presenceLog records a room's state and membership callbacks in order.
type presenceLog struct {
	parley.NopRoomEventHandler
	mu     sync.Mutex
	events []string // "state N", "+user", "-user"
}

func (h *presenceLog) add(s string) {
	h.mu.Lock()
	h.events = append(h.events, s)
	h.mu.Unlock()
}
func (h *presenceLog) OnRoomStateChanged(_, _ string, state int, _ parley.RoomStateInfo) {
	h.add(fmt.Sprintf("state %d", state))
}
func (h *presenceLog) OnUserJoined(u parley.UserInfo)                    { h.add("+" + u.UserID) }
func (h *presenceLog) OnUserLeave(id string, _ parley.UserOfflineReason) { h.add("-" + id) }

// members replays the log: the members it tells of, or an error if it is
// out of order (a change before state 0, a member joining twice, leaving
// without having joined).
func (h *presenceLog) members() (map[string]bool, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	in := make(map[string]bool)
	for i, ev := range h.events {
		switch {
		case i == 0 && ev != "state 0":
			return nil, fmt.Errorf("first event %q, not state 0", ev)
		case i == 0:
		case ev[0] == '+' && in[ev[1:]]:
			return nil, fmt.Errorf("event %d: %s joined twice", i, ev[1:])
		case ev[0] == '+':
			in[ev[1:]] = true
		case ev[0] == '-' && !in[ev[1:]]:
			return nil, fmt.Errorf("event %d: %s left without having joined", i, ev[1:])
		case ev[0] == '-':
			delete(in, ev[1:])
		default:
			return nil, fmt.Errorf("event %d: %q", i, ev)
		}
	}
	return in, nil
}

// TestRoomPresenceBurst: 12 members join one room at once, then 4 of
// them leave at once. Each of the others hears state 0 first, then of
// every other member once, in an order that never has one join twice or
// leave unseen, and ends up knowing exactly the 7 others (the server
// batches these changes into Presence frames, which the SDK unpacks).
func TestRoomPresenceBurst(t *testing.T) {
	srv := parleytest.NewServer(t)
	const n, leaving = 12, 4
	logs := make([]*presenceLog, n)
	rooms := make([]*parley.Room, n)
	for i := range n {
		e, err := parley.NewEngine(parley.EngineConfig{AppID: srv.AppID, ServerURL: srv.URL}, nil, parley.WithLoopbackOnly())
		require.NoError(t, err)
		t.Cleanup(func() { _ = e.Close() })
		logs[i] = &presenceLog{}
		rooms[i], err = e.CreateRoom("burst", logs[i])
		require.NoError(t, err)
	}
	for i, r := range rooms {
		user := fmt.Sprintf("u%d", i)
		require.NoError(t, r.JoinRoom(srv.Token("burst", user), parley.UserInfo{UserID: user}, parley.RoomConfig{}))
	}
	var bad error // the first log found out of order
	var badMu sync.Mutex
	knows := func(i int, want map[string]bool) func() bool {
		return func() bool {
			got, err := logs[i].members()
			if err != nil {
				badMu.Lock()
				bad = fmt.Errorf("u%d: %w", i, err)
				badMu.Unlock()
				return true // stop waiting: it is wrong for good
			}
			return len(got) == len(want) && func() bool {
				for u := range want {
					if !got[u] {
						return false
					}
				}
				return true
			}()
		}
	}
	all := func(except int, from int) map[string]bool {
		m := make(map[string]bool)
		for j := from; j < n; j++ {
			if j != except {
				m[fmt.Sprintf("u%d", j)] = true
			}
		}
		return m
	}
	check := func() {
		badMu.Lock()
		defer badMu.Unlock()
		require.NoError(t, bad)
	}
	for i := range n {
		require.Eventually(t, knows(i, all(i, 0)), 30*time.Second, 5*time.Millisecond, "u%d knows the other %d", i, n-1)
		check()
	}
	var wg sync.WaitGroup
	for i := range leaving {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = rooms[i].LeaveRoom()
		}()
	}
	wg.Wait()
	for i := leaving; i < n; i++ {
		require.Eventually(t, knows(i, all(i, leaving)), 30*time.Second, 5*time.Millisecond, "u%d knows the %d left", i, n-leaving-1)
		check()
	}
}
