package parley_test

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
)

// leakCycles is how many cycles the leak tests run: 2000 by default,
// PARLEY_LEAK_CYCLES to change it (CI sets a smaller number).
func leakCycles(t *testing.T) int {
	n := 2000
	if s := os.Getenv("PARLEY_LEAK_CYCLES"); s != "" {
		v, err := strconv.Atoi(s)
		require.NoError(t, err, "PARLEY_LEAK_CYCLES")
		n = v
	}
	if testing.Short() && n > 100 {
		n = 100
	}
	return n
}

// footprint is what a leak would grow: goroutines, live heap, open files.
type footprint struct {
	goroutines int
	heap       uint64
	fds        int
}

func (f footprint) String() string {
	return fmt.Sprintf("%d goroutines, %.1f MiB heap, %d fds", f.goroutines, float64(f.heap)/(1<<20), f.fds)
}

// settled measures once the goroutine count has held still for a second:
// what the warm-up cycles left winding down is gone.
func settled(t *testing.T) footprint {
	t.Helper()
	prev, still := measure(t), 0
	for range 300 {
		<-time.After(200 * time.Millisecond) // polling the runtime: there is no event for "goroutines ended"
		cur := measure(t)
		if cur.goroutines == prev.goroutines {
			if still++; still == 5 {
				return cur
			}
		} else {
			still = 0
		}
		prev = cur
	}
	t.Fatalf("goroutines did not settle: %v", prev)
	return prev
}

func measure(t *testing.T) footprint {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fds, err := os.ReadDir("/proc/self/fd")
	require.NoError(t, err)
	return footprint{goroutines: runtime.NumGoroutine(), heap: ms.HeapAlloc, fds: len(fds)}
}

// Leak tolerances. Goroutines and file descriptors must come back to
// within a few of before: a leak of one per cycle shows at any cycle count.
// Live heap may grow by heapSlack, what the runtime's and pion's pools keep
// whatever the count, plus heapPerCycle for each cycle. A healthy run of
// either test grows by 0.2–0.3 MiB, at 500 cycles as at 2,000, while a
// leak of 4 KiB a cycle exceeds the tolerance from about 300 cycles on (CI
// runs 500; the default is 2,000): the tolerance grows with the count more
// slowly than any such leak does.
const (
	fdSlack, goroutineSlack = 5, 5
	heapSlack               = 1 << 20
	heapPerCycle            = 512
)

// requireBack waits until the footprint after cycles cycles is back near
// before, within the tolerances above.
func requireBack(t *testing.T, before footprint, cycles int) footprint {
	t.Helper()
	heapLimit := before.heap + heapSlack + uint64(cycles)*heapPerCycle
	deadline := time.Now().Add(30 * time.Second)
	for {
		after := measure(t)
		if abs(after.goroutines-before.goroutines) <= goroutineSlack && abs(after.fds-before.fds) <= fdSlack &&
			after.heap <= heapLimit {
			return after
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Fatalf("not back after 30s: before %v, after %v (heap limit %.1f MiB after %d cycles)\n%s",
				before, after, float64(heapLimit)/(1<<20), cycles, buf[:n])
		}
		<-time.After(50 * time.Millisecond) // polling the runtime: there is no event for "goroutines ended"
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// TestLeakJoinLeave joins and leaves one room many times on one Engine,
// with another member watching, and checks that nothing accumulates.
func TestLeakJoinLeave(t *testing.T) {
	n := leakCycles(t)
	srv := parleytest.NewServer(t)
	watcher := joined(t, srv, "leak", "watcher", "")
	e := newEngine(t, srv, nil)
	rec := parleytest.NewRecorder()
	room, err := e.CreateRoom("leak", rec)
	require.NoError(t, err)
	user := parley.UserInfo{UserID: "cycler"}
	cycle := func() {
		require.NoError(t, room.JoinRoom(srv.Token("leak", "cycler"), user, parley.RoomConfig{}))
		requireState(t, rec, 0)
		requireJoined(t, rec, parley.UserInfo{UserID: "watcher"})
		require.NoError(t, room.LeaveRoom())
		requireLeft(t, rec)
		requireJoined(t, watcher.rec, user)
		requireLeave(t, watcher.rec, "cycler", parley.UserOfflineReasonQuit)
	}
	for range 10 { // warm up pools and lazily started goroutines
		cycle()
	}
	before := settled(t)
	start := time.Now()
	for range n {
		cycle()
	}
	elapsed := time.Since(start)
	after := requireBack(t, before, n)
	t.Logf("%d join/leave cycles in %v (%v each): before %v; after %v", n, elapsed.Round(time.Millisecond),
		(elapsed / time.Duration(n)).Round(time.Microsecond), before, after)
}

// TestLeakConnectClose creates, connects (logs in) and closes many Engines
// in turn and checks that nothing accumulates.
func TestLeakConnectClose(t *testing.T) {
	n := leakCycles(t)
	srv := parleytest.NewServer(t)
	cycle := func() {
		rec := parleytest.NewRecorder()
		e, err := parley.NewEngine(parley.EngineConfig{AppID: srv.AppID, ServerURL: srv.URL}, rec, parley.WithLoopbackOnly())
		require.NoError(t, err)
		require.NoError(t, e.Login(srv.LoginToken("cycler"), "cycler"))
		require.Equal(t, parley.LoginErrorCodeSuccess, parleytest.NextOf[parleytest.LoginResult](t, rec).Code)
		require.NoError(t, e.Close())
		waitDone(t, e)
	}
	for range 10 {
		cycle()
	}
	before := settled(t)
	start := time.Now()
	for range n {
		cycle()
	}
	elapsed := time.Since(start)
	after := requireBack(t, before, n)
	t.Logf("%d connect/close cycles in %v (%v each): before %v; after %v", n, elapsed.Round(time.Millisecond),
		(elapsed / time.Duration(n)).Round(time.Microsecond), before, after)
}
