package parley

import (
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// newTestOutbox returns an outbox with the given timeout that records the
// IDs it times out, in order.
func newTestOutbox(timeout time.Duration) (*outbox, func() []int64) {
	var mu sync.Mutex
	var expired []int64
	o := newOutbox(timeout, func(id int64) {
		mu.Lock()
		expired = append(expired, id)
		mu.Unlock()
	})
	return o, func() []int64 {
		synctest.Wait() // the timer's goroutine has reported
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(expired)
	}
}

// advance moves the bubble's clock on by d.
func advance(d time.Duration) { <-time.After(d) }

// TestOutboxTimeouts: the timed sends that have no result time out at
// their own deadlines, oldest first, on the one timer; untimed and
// settled sends never do.
func TestOutboxTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o, expired := newTestOutbox(10 * time.Second)
		a := o.add(&pendingSend{}, true)  // due at 10 s
		b := o.add(&pendingSend{}, true)  // due at 10 s; settled below
		c := o.add(&pendingSend{}, false) // never due
		advance(4 * time.Second)
		d := o.add(&pendingSend{}, true) // due at 14 s
		o.settle(b, func(*pendingSend) {})

		advance(6*time.Second - time.Millisecond)
		if got := expired(); len(got) != 0 {
			t.Fatalf("timed out before the deadline: %v", got)
		}
		advance(time.Millisecond)
		if got := expired(); !slices.Equal(got, []int64{a}) {
			t.Fatalf("at 10 s timed out %v, want [%d]", got, a)
		}
		advance(4 * time.Second)
		if got := expired(); !slices.Equal(got, []int64{a, d}) {
			t.Fatalf("at 14 s timed out %v, want [%d %d]", got, a, d)
		}
		o.mu.Lock()
		armed, due := o.armed, len(o.due)
		o.mu.Unlock()
		if armed || due != 0 {
			t.Fatalf("nothing is due, but armed %v with %d deadlines", armed, due)
		}
		if _, ok := o.pending[c]; !ok {
			t.Fatal("the untimed send left the outbox")
		}

		// A send after the queue emptied sets the timer again.
		e := o.add(&pendingSend{}, true)
		advance(10 * time.Second)
		if got := expired(); !slices.Equal(got, []int64{a, d, e}) {
			t.Fatalf("timed out %v, want [%d %d %d]", got, a, d, e)
		}
	})
}

// TestOutboxCloseStopsTimeouts: after close, no send times out; Engine.Close
// gives them their results.
func TestOutboxCloseStopsTimeouts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o, expired := newTestOutbox(time.Second)
		o.add(&pendingSend{}, true)
		o.close()
		advance(2 * time.Second)
		if got := expired(); len(got) != 0 {
			t.Fatalf("timed out after close: %v", got)
		}
		if id := o.add(&pendingSend{}, true); id != -1 {
			t.Fatalf("add after close = %d, want -1", id)
		}
	})
}

// TestOutboxDueStaysShort: sends that settle as fast as they go do not pile
// up deadlines until their timeouts.
func TestOutboxDueStaysShort(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		o, expired := newTestOutbox(time.Minute)
		for range 1000 {
			id := o.add(&pendingSend{}, true)
			o.settle(id, func(*pendingSend) {})
		}
		o.mu.Lock()
		due := len(o.due)
		o.mu.Unlock()
		if due > 1 {
			t.Fatalf("%d deadlines queued for 1,000 settled sends", due)
		}
		advance(time.Minute)
		if got := expired(); len(got) != 0 {
			t.Fatalf("settled sends timed out: %v", got)
		}
	})
}
