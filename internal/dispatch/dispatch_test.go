package dispatch

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// guard bounds every wait for something that must happen, so a bug fails the
// test instead of hanging it. It is never what a test waits for.
const guard = 5 * time.Second

// blockedFor is the negative check: how long a producer that must be blocked
// is watched for not returning.
const blockedFor = 50 * time.Millisecond

// newQueue returns a Queue that is closed, and whose goroutine is waited for,
// when the test ends.
func newQueue(t *testing.T, maxMessages int) *Queue {
	t.Helper()
	q := New(maxMessages)
	t.Cleanup(func() {
		q.Close()
		waitClosed(t, q.Done(), "Done")
	})
	return q
}

// blockRunner queues a control event that holds the dispatcher until release
// is called, and returns once it is running. release is idempotent and also
// runs at the end of the test.
func blockRunner(t *testing.T, q *Queue) (release func()) {
	t.Helper()
	started, unblock := make(chan struct{}), make(chan struct{})
	require.True(t, q.Control(func() {
		close(started)
		<-unblock
	}))
	waitClosed(t, started, "blocking callback start")
	release = sync.OnceFunc(func() { close(unblock) })
	t.Cleanup(release)
	return release
}

func waitClosed(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(guard):
		t.Fatalf("%s: not closed after %v", what, guard)
	}
}

func receive[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(guard):
		t.Fatalf("%s: nothing after %v", what, guard)
		panic("unreachable")
	}
}

// eventually spins until cond holds; cond reads state under q.mu.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(guard)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %v", what, guard)
		}
		runtime.Gosched()
	}
}

// waiting returns how many producers wait in Message.
func (q *Queue) waiting() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.waiters
}

// requireBlocked fails if a value arrives on ch within blockedFor.
func requireBlocked[T any](t *testing.T, ch <-chan T, what string) {
	t.Helper()
	select {
	case v := <-ch:
		t.Fatalf("%s returned %v; want it blocked", what, v)
	case <-time.After(blockedFor):
	}
}

// queue sends f as a control event when i%3 == 0, else as a message event.
func queue(q *Queue, i int, f func()) bool {
	if i%3 == 0 {
		return q.Control(f)
	}
	return q.Message(f)
}

func TestOrderOneProducer(t *testing.T) {
	const n = 10_000
	q := newQueue(t, 16)
	got := make([]int, 0, n) // touched only by the dispatcher until Done
	for i := range n {
		require.True(t, queue(q, i, func() { got = append(got, i) }))
	}
	q.Close()
	waitClosed(t, q.Done(), "Done")

	want := make([]int, n)
	for i := range want {
		want[i] = i
	}
	require.Equal(t, want, got)
}

func TestOrderPerProducer(t *testing.T) {
	const producers, each = 4, 2_500
	q := newQueue(t, 8)
	type rec struct{ p, i int }
	got := make([]rec, 0, producers*each) // touched only by the dispatcher until Done

	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range each {
				if !queue(q, i+p, func() { got = append(got, rec{p, i}) }) {
					t.Errorf("producer %d: event %d refused", p, i)
					return
				}
			}
		})
	}
	wg.Wait()
	q.Close()
	waitClosed(t, q.Done(), "Done")

	require.Len(t, got, producers*each)
	next := make([]int, producers)
	for _, r := range got {
		require.Equal(t, next[r.p], r.i, "producer %d out of order", r.p)
		next[r.p]++
	}
}

func TestCallbacksNeverOverlap(t *testing.T) {
	const producers, each = 4, 1_000
	q := newQueue(t, 4)
	var inFlight, most atomic.Int32
	f := func() {
		n := inFlight.Add(1)
		for {
			m := most.Load()
			if n <= m || most.CompareAndSwap(m, n) {
				break
			}
		}
		runtime.Gosched() // widen the window another callback would need
		inFlight.Add(-1)
	}

	var wg sync.WaitGroup
	for p := range producers {
		wg.Go(func() {
			for i := range each {
				queue(q, i+p, f)
			}
		})
	}
	wg.Wait()
	q.Close()
	waitClosed(t, q.Done(), "Done")

	require.Equal(t, int32(1), most.Load())
}

func TestMessageWaitsAtBound(t *testing.T) {
	tests := []struct {
		name        string
		maxMessages int
		bound       int
	}{
		{"one", 1, 1},
		{"three", 3, 3},
		{"zero means default", 0, defaultMaxMessages},
		{"negative means default", -1, defaultMaxMessages},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := newQueue(t, tt.maxMessages)
			release := blockRunner(t, q)

			var ran atomic.Int32
			f := func() { ran.Add(1) }
			for i := range tt.bound {
				require.True(t, q.Message(f), "message %d", i)
			}
			require.Equal(t, tt.bound, q.Len())

			returned := make(chan bool, 1)
			go func() { returned <- q.Message(f) }()
			eventually(t, "producer waiting", func() bool { return q.waiting() == 1 })
			requireBlocked(t, returned, "Message past the bound")

			release()
			require.True(t, receive(t, returned, "Message after release"))
			q.Close()
			waitClosed(t, q.Done(), "Done")
			require.Equal(t, int32(tt.bound+1), ran.Load())
		})
	}
}

func TestControlNeverWaits(t *testing.T) {
	const controls = 10_000
	q := newQueue(t, 2)
	release := blockRunner(t, q)

	var got []int // touched only by the dispatcher until Done
	require.True(t, q.Message(func() { got = append(got, -2) }))
	require.True(t, q.Message(func() { got = append(got, -1) }))

	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for i := range controls {
			if !q.Control(func() { got = append(got, i) }) {
				t.Errorf("control %d refused", i)
				return
			}
		}
	}()
	waitClosed(t, finished, "controls while messages are full")
	require.Equal(t, controls+2, q.Len())

	release()
	q.Close()
	waitClosed(t, q.Done(), "Done")
	require.Len(t, got, controls+2)
	for k, v := range got {
		require.Equal(t, k-2, v)
	}
}

func TestCloseFromCallback(t *testing.T) {
	q := newQueue(t, 4)
	release := blockRunner(t, q)

	var got []int // touched only by the dispatcher until Done
	var controlAfter, messageAfter bool
	require.True(t, q.Control(func() {
		got = append(got, 0)
		q.Close()
		q.Close()
		controlAfter = q.Control(func() { got = append(got, 100) })
		messageAfter = q.Message(func() { got = append(got, 101) })
	}))
	for i := 1; i <= 4; i++ {
		require.True(t, queue(q, i, func() { got = append(got, i) }))
	}
	release()
	waitClosed(t, q.Done(), "Done")

	require.Equal(t, []int{0, 1, 2, 3, 4}, got)
	require.False(t, controlAfter, "Control inside the callback after Close")
	require.False(t, messageAfter, "Message inside the callback after Close")
	require.False(t, q.Control(func() { t.Error("ran after Close") }))
	require.False(t, q.Message(func() { t.Error("ran after Close") }))
	require.Zero(t, q.Len())
}

func TestCloseReleasesWaitingProducers(t *testing.T) {
	const waiters = 3
	q := newQueue(t, 1)
	release := blockRunner(t, q)

	var ran atomic.Int32
	require.True(t, q.Message(func() { ran.Add(1) }))

	returned := make(chan bool, waiters)
	for range waiters {
		go func() { returned <- q.Message(func() { t.Error("released producer's event ran") }) }()
	}
	eventually(t, "producers waiting", func() bool { return q.waiting() == waiters })
	requireBlocked(t, returned, "Message past the bound")

	q.Close() // the dispatcher is still held: Close must not need it
	for i := range waiters {
		require.False(t, receive(t, returned, "released producer"), "producer %d", i)
	}

	release()
	waitClosed(t, q.Done(), "Done")
	require.Equal(t, int32(1), ran.Load(), "the event queued before Close still runs")
}

func TestCloseIdempotent(t *testing.T) {
	q := New(0)
	select {
	case <-q.Done():
		t.Fatal("Done closed before Close")
	default:
	}

	var wg sync.WaitGroup
	for range 4 {
		wg.Go(q.Close)
	}
	wg.Wait()
	q.Close()
	waitClosed(t, q.Done(), "Done with an empty queue")

	require.False(t, q.Control(func() { t.Error("ran after Close") }))
	require.False(t, q.Message(func() { t.Error("ran after Close") }))
	require.Zero(t, q.Len())
}

// TestRing exercises the ring directly: wrap-around, growth while wrapped, and
// the message count.
func TestRing(t *testing.T) {
	q := &Queue{max: 1}
	next, want := 0, 0
	push := func(k int) {
		for range k {
			q.push(event{f: func() {}, msg: next%2 == 0})
			next++
		}
	}
	pop := func(k int) {
		for range k {
			e, ok := q.pop()
			require.True(t, ok)
			require.Equal(t, want%2 == 0, e.msg, "event %d", want)
			want++
		}
	}

	push(minRing)
	pop(minRing / 2)
	push(minRing/2 + 1) // wraps, then grows while wrapped
	require.Equal(t, 2*minRing, len(q.ring))
	pop(minRing + 1)
	_, ok := q.pop()
	require.False(t, ok)
	require.Zero(t, q.n)
}

func TestRingShrinksWhenDrained(t *testing.T) {
	q := newQueue(t, 1)
	release := blockRunner(t, q)
	for range 2 * keepRing {
		require.True(t, q.Control(func() {}))
	}
	release()
	eventually(t, "ring released", func() bool {
		q.mu.Lock()
		defer q.mu.Unlock()
		return q.n == 0 && q.idle && q.ring == nil
	})
}

// BenchmarkMessage measures Message from one producer while the dispatcher
// runs empty callbacks, the time to drain included. The chan baseline is a
// buffered channel of the same bound read by one goroutine: the ratio is what
// to read.
func BenchmarkMessage(b *testing.B) {
	f := func() {}

	b.Run("queue", func(b *testing.B) {
		q := New(0)
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			q.Message(f)
		}
		q.Close()
		<-q.Done()
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})

	b.Run("chan", func(b *testing.B) {
		ch := make(chan func(), defaultMaxMessages)
		done := make(chan struct{})
		go func() {
			defer close(done)
			for f := range ch {
				f()
			}
		}()
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			ch <- f
		}
		close(ch)
		<-done
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
}
