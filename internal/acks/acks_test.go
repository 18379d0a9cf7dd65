package acks

import (
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBookSettlesPrefixes(t *testing.T) {
	var b Book
	for _, id := range []int64{1, 3, 4, 9} {
		b.Expect("a", id)
	}
	b.Expect("b", 2)
	require.Equal(t, []int64{1, 3}, b.Settle("a", 3))
	require.Empty(t, b.Settle("a", 3))
	require.Empty(t, b.Settle("nobody", 100))
	b.Expect("a", 10)
	b.Remove("a", 10)
	b.Remove("a", 99) // not there: nothing happens
	require.Equal(t, []int64{4, 9}, b.Settle("a", 100))
	require.Equal(t, map[string][]int64{"b": {2}}, b.Drain())
	require.Empty(t, b.Drain())
}

// The Batcher tests run on a fake clock: advance moves it and runs the
// flushes that fall due, in order, before it returns, so each check is at
// an exact point of the Batcher's delay, not raced against a timer.

func TestBatcherSendsOneCumulativeAckPerPeer(t *testing.T) {
	const delay = 10 * time.Millisecond
	c := newFakeClock()
	b := &Batcher{Delay: delay, Clock: c}
	taken := recordFlushes(b)

	for _, id := range []int64{1, 5, 3} {
		b.Ack("a", id)
	}
	c.advance(delay / 2)
	b.Ack("b", 7) // within the first's delay: the same flush
	require.Empty(t, taken(), "a flush before the delay")
	c.advance(delay/2 - time.Nanosecond)
	require.Empty(t, taken(), "a flush before the delay")
	c.advance(time.Nanosecond)
	require.Equal(t, []map[string]int64{{"a": 5, "b": 7}}, taken(), "one flush, the highest ID per peer, a delay after the first ack")

	c.advance(delay / 4) // before b's ack is a delay old
	b.Ack("a", 6)
	b.Ack("a", 2) // lower than one acked: covered
	c.advance(delay - time.Nanosecond)
	require.Empty(t, taken(), "the next burst flushed before its delay")
	c.advance(time.Nanosecond)
	require.Equal(t, []map[string]int64{{"a": 6}}, taken(), "the next burst: one flush again")

	c.advance(10 * delay)
	require.Empty(t, taken(), "a flush with nothing acked")
}

// TestBatcherLazyAcks: a lazy ack waits for Lazy, not Delay; an urgent
// one brings the flush forward for everything owed; lazily acked bytes
// past LazyBytes make the flush urgent.
func TestBatcherLazyAcks(t *testing.T) {
	const delay, lazy = 10 * time.Millisecond, 500 * time.Millisecond
	c := newFakeClock()
	b := &Batcher{Delay: delay, Lazy: lazy, LazyBytes: 1000, Clock: c}
	taken := recordFlushes(b)

	b.AckLazy("a", 1, 10)
	c.advance(lazy - time.Nanosecond)
	require.Empty(t, taken(), "a lazy ack flushed before Lazy")
	c.advance(time.Nanosecond)
	require.Equal(t, []map[string]int64{{"a": 1}}, taken())

	b.AckLazy("a", 2, 10)
	c.advance(lazy / 2)
	b.Ack("b", 3) // urgent: the flush comes a Delay after it, with a's too
	c.advance(delay - time.Nanosecond)
	require.Empty(t, taken())
	c.advance(time.Nanosecond)
	require.Equal(t, []map[string]int64{{"a": 2, "b": 3}}, taken())
	c.advance(lazy)
	require.Empty(t, taken(), "the lazy timer left nothing behind")

	b.AckLazy("a", 4, 600)
	b.AckLazy("a", 5, 600) // past LazyBytes: urgent
	c.advance(delay)
	require.Equal(t, []map[string]int64{{"a": 5}}, taken())
	b.AckLazy("a", 6, 600) // the byte count starts again after a flush
	c.advance(delay)
	require.Empty(t, taken())
	c.advance(lazy)
	require.Equal(t, []map[string]int64{{"a": 6}}, taken())
}

// TestBatcherTakeLazy: TakeLazy hands over what is owed, as the flush
// would have sent it, and that flush does not come; acks after it start a
// new one. Once an urgent ack is owed, it takes nothing: the urgent flush
// sends all.
func TestBatcherTakeLazy(t *testing.T) {
	const delay, lazy = 10 * time.Millisecond, 500 * time.Millisecond
	c := newFakeClock()
	b := &Batcher{Delay: delay, Lazy: lazy, LazyBytes: 1000, Clock: c}
	taken := recordFlushes(b)

	require.Nil(t, b.TakeLazy(), "nothing owed")
	b.AckLazy("a", 1, 10)
	b.AckLazy("b", 2, 10)
	require.Equal(t, map[string]int64{"a": 1, "b": 2}, b.TakeLazy())
	require.Nil(t, b.TakeLazy(), "taken twice")
	c.advance(lazy)
	require.Empty(t, taken(), "the flush came after TakeLazy")

	b.AckLazy("a", 3, 10)
	b.Ack("c", 7) // urgent: left to its flush, with the lazy one
	require.Nil(t, b.TakeLazy())
	c.advance(delay)
	require.Equal(t, []map[string]int64{{"a": 3, "c": 7}}, taken())

	b.AckLazy("a", 4, 10) // lazy again after the urgent flush
	require.Equal(t, map[string]int64{"a": 4}, b.TakeLazy())
	b.AckLazy("a", 5, 600)
	b.AckLazy("a", 6, 600) // past LazyBytes: urgent
	require.Nil(t, b.TakeLazy())
	c.advance(delay)
	require.Equal(t, []map[string]int64{{"a": 6}}, taken())

	b.AckLazy("a", 7, 10)
	b.Close()
	require.Nil(t, b.TakeLazy(), "TakeLazy after Close")
}

// recordFlushes makes b's Flush keep what it sends, and returns taken:
// the flushes since its last call.
func recordFlushes(b *Batcher) (taken func() []map[string]int64) {
	var flushes []map[string]int64 // the fake clock runs Flush on the test's goroutine
	b.Flush = func(m map[string]int64) { flushes = append(flushes, m) }
	return func() []map[string]int64 {
		f := flushes
		flushes = nil
		return f
	}
}

// fakeClock is a clock.Clock whose time moves only by advance, which runs
// the functions that fall due on the caller's goroutine, earliest first.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time    // guarded by mu
	timers []*fakeTimer // guarded by mu; not yet run or stopped
}

type fakeTimer struct {
	at time.Time
	f  func()
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1e9, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for i, o := range c.timers {
			if o == t {
				c.timers = slices.Delete(c.timers, i, i+1)
				return true
			}
		}
		return false // run already
	}
}

// advance moves the clock by d, running each function due by then at its
// time.
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	for {
		i := -1
		for j, t := range c.timers {
			if !t.at.After(end) && (i < 0 || t.at.Before(c.timers[i].at)) {
				i = j
			}
		}
		if i < 0 {
			break
		}
		t := c.timers[i]
		c.timers = slices.Delete(c.timers, i, i+1)
		c.now = t.at
		c.mu.Unlock()
		t.f()
		c.mu.Lock()
	}
	c.now = end
	c.mu.Unlock()
}

// TestBatcherClose: Close drops what is owed and the flush to come; acks
// after it are ignored; and it waits for a flush already running, so that
// none runs once it has returned.
func TestBatcherClose(t *testing.T) {
	const delay = 10 * time.Millisecond
	c := newFakeClock()
	b := &Batcher{Delay: delay, Clock: c}
	taken := recordFlushes(b)
	b.Ack("a", 1)
	b.Close()
	b.Ack("a", 2)
	c.advance(10 * delay)
	require.Empty(t, taken(), "a flush after Close")

	synctest.Test(t, func(t *testing.T) {
		started, release := make(chan struct{}), make(chan struct{})
		b := &Batcher{Delay: delay, Flush: func(map[string]int64) {
			close(started)
			<-release
		}}
		b.Ack("a", 1)
		<-started // the flush is running, held
		closed := make(chan struct{})
		go func() {
			b.Close()
			close(closed)
		}()
		synctest.Wait()
		select {
		case <-closed:
			t.Fatal("Close returned while a flush was running")
		default:
		}
		close(release)
		<-closed
	})
}
