package acks

import (
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

// TestBatcherSendsOneCumulativeAckPerPeer runs in a synctest bubble, whose
// clock moves only when every goroutine of the test waits: the flushes are
// checked at exact points of the Batcher's delay, not raced against a
// timer.
func TestBatcherSendsOneCumulativeAckPerPeer(t *testing.T) {
	// In synctest's bubble time.Sleep waits for nothing real: it moves the
	// bubble's fake clock once every goroutine in it is blocked, so each
	// sleep below puts the clock at an exact point of the delay.
	synctest.Test(t, func(t *testing.T) {
		const delay = 10 * time.Millisecond
		b := &Batcher{Delay: delay}
		taken := recordFlushes(b)

		for _, id := range []int64{1, 5, 3} {
			b.Ack("a", id)
		}
		time.Sleep(delay / 2)
		b.Ack("b", 7) // within the first's delay: the same flush
		require.Empty(t, taken(), "a flush before the delay")
		time.Sleep(delay/2 - time.Nanosecond)
		require.Empty(t, taken(), "a flush before the delay")
		time.Sleep(time.Nanosecond)
		require.Equal(t, []map[string]int64{{"a": 5, "b": 7}}, taken(), "one flush, the highest ID per peer, a delay after the first ack")

		time.Sleep(delay / 4) // before b's ack is a delay old
		b.Ack("a", 6)
		b.Ack("a", 2) // lower than one acked: covered
		time.Sleep(delay - time.Nanosecond)
		require.Empty(t, taken(), "the next burst flushed before its delay")
		time.Sleep(time.Nanosecond)
		require.Equal(t, []map[string]int64{{"a": 6}}, taken(), "the next burst: one flush again")

		time.Sleep(10 * delay)
		require.Empty(t, taken(), "a flush with nothing acked")
	})
}

// TestBatcherLazyAcks: a lazy ack waits for Lazy, not Delay; an urgent
// one brings the flush forward for everything owed; lazily acked bytes
// past LazyBytes make the flush urgent. In a synctest bubble, as above.
func TestBatcherLazyAcks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const delay, lazy = 10 * time.Millisecond, 500 * time.Millisecond
		b := &Batcher{Delay: delay, Lazy: lazy, LazyBytes: 1000}
		taken := recordFlushes(b)

		b.AckLazy("a", 1, 10)
		time.Sleep(lazy - time.Nanosecond)
		require.Empty(t, taken(), "a lazy ack flushed before Lazy")
		time.Sleep(time.Nanosecond)
		require.Equal(t, []map[string]int64{{"a": 1}}, taken())

		b.AckLazy("a", 2, 10)
		time.Sleep(lazy / 2)
		b.Ack("b", 3) // urgent: the flush comes a Delay after it, with a's too
		time.Sleep(delay - time.Nanosecond)
		require.Empty(t, taken())
		time.Sleep(time.Nanosecond)
		require.Equal(t, []map[string]int64{{"a": 2, "b": 3}}, taken())
		time.Sleep(lazy)
		require.Empty(t, taken(), "the lazy timer left nothing behind")

		b.AckLazy("a", 4, 600)
		b.AckLazy("a", 5, 600) // past LazyBytes: urgent
		time.Sleep(delay)
		require.Equal(t, []map[string]int64{{"a": 5}}, taken())
		b.AckLazy("a", 6, 600) // the byte count starts again after a flush
		time.Sleep(delay)
		require.Empty(t, taken())
		time.Sleep(lazy)
		require.Equal(t, []map[string]int64{{"a": 6}}, taken())
	})
}

// recordFlushes makes b's Flush keep what it sends, and returns taken:
// the flushes since its last call, once every timer due has fired and
// its Flush returned (in a synctest bubble).
func recordFlushes(b *Batcher) (taken func() []map[string]int64) {
	var (
		mu      sync.Mutex
		flushes []map[string]int64 // guarded by mu
	)
	b.Flush = func(m map[string]int64) {
		mu.Lock()
		flushes = append(flushes, m)
		mu.Unlock()
	}
	return func() []map[string]int64 {
		synctest.Wait()
		mu.Lock()
		defer mu.Unlock()
		f := flushes
		flushes = nil
		return f
	}
}
