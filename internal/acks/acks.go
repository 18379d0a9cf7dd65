// Package acks keeps the SDK's books of cumulative acknowledgements: which
// reliable messages await an ack, per peer and in sending order, and which
// acks a receiver still owes. (The relay keeps its own books, per member
// and per login: internal/server's retention and outbox.)
package acks

import (
	"sync"
	"time"

	"github.com/parleyhq/parley/internal/clock"
)

// Book holds the reliable messages that await an ack, by peer, in the
// order they were sent: acks are cumulative, so an ack up to N settles a
// prefix. The zero Book is ready to use.
type Book struct {
	mu      sync.Mutex
	pending map[string][]int64
}

// Expect notes that message id, to or from peer, awaits an ack.
func (b *Book) Expect(peer string, id int64) {
	b.mu.Lock()
	if b.pending == nil {
		b.pending = make(map[string][]int64)
	}
	b.pending[peer] = append(b.pending[peer], id)
	b.mu.Unlock()
}

// Remove takes message id of peer out of the book, wherever it is: it got
// a result other than an ack (no receiver, timeout) and no ack will come.
func (b *Book) Remove(peer string, id int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.pending[peer]
	for i, v := range q {
		if v == id {
			q = append(q[:i:i], q[i+1:]...)
			break
		}
	}
	if len(q) == 0 {
		delete(b.pending, peer)
	} else {
		b.pending[peer] = q
	}
}

// Settle removes and returns peer's messages with IDs up to upTo.
func (b *Book) Settle(peer string, upTo int64) []int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.pending[peer]
	i := 0
	for i < len(q) && q[i] <= upTo {
		i++
	}
	done := q[:i:i]
	if i == len(q) {
		delete(b.pending, peer)
	} else {
		b.pending[peer] = q[i:]
	}
	return done
}

// Drain empties the book and returns what was in it.
func (b *Book) Drain() map[string][]int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.pending
	b.pending = nil
	return p
}

// Batcher gathers the acks a receiver owes and sends one cumulative ack
// per peer a moment after the first: a burst costs one ack, not one per
// message.
//
// An ack that only settles what the server keeps (a broadcast's: its
// sender's result does not wait for it) may wait longer, AckLazy: up to
// Lazy, or until LazyBytes of such messages are owed, so that a member
// receiving a steady trickle of broadcasts sends an ack now and then, not
// one per broadcast. An urgent ack (Ack) brings the flush forward, and
// every flush sends all that is owed.
type Batcher struct {
	Delay     time.Duration               // how long an urgent ack waits
	Lazy      time.Duration               // how long a lazy ack may wait; 0: Delay
	LazyBytes int                         // lazy acks' message bytes that make the flush urgent; 0: no bound
	Flush     func(upTo map[string]int64) // sends the acks; runs on a timer goroutine
	Clock     clock.Clock                 // runs the flushes; nil: the wall clock

	mu       sync.Mutex
	max      map[string]int64 // guarded by mu
	bytes    int              // guarded by mu; the lazily acked messages' bytes since the last flush
	urgent   bool             // guarded by mu; the flush to come is an urgent one (Delay)
	stop     func() bool      // guarded by mu; stops the flush to come; nil if none
	due      time.Time        // guarded by mu; when that flush runs
	closed   bool             // guarded by mu
	flushing sync.WaitGroup   // a flush running; Add under mu
}

// Ack records that message id from peer was accepted, and that the sender
// waits for the ack.
func (b *Batcher) Ack(peer string, id int64) { b.add(peer, id, b.Delay, 0) }

// AckLazy records that message id from peer, of size bytes, was accepted,
// and that nobody waits for the ack but the server's copy.
func (b *Batcher) AckLazy(peer string, id int64, size int) {
	lazy := b.Lazy
	if lazy == 0 {
		lazy = b.Delay
	}
	b.add(peer, id, lazy, size)
}

func (b *Batcher) add(peer string, id int64, delay time.Duration, size int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	if b.max == nil {
		b.max = make(map[string]int64)
	}
	if id > b.max[peer] {
		b.max[peer] = id
	}
	if b.bytes += size; b.LazyBytes > 0 && b.bytes > b.LazyBytes {
		delay = b.Delay
	}
	if delay == b.Delay {
		b.urgent = true
	}
	c := b.Clock
	if c == nil {
		c = clock.Real{}
	}
	due := c.Now().Add(delay)
	switch {
	case b.stop == nil:
	case !due.Before(b.due):
		return // the flush to come is soon enough
	case !b.stop():
		return // firing now: it takes this ack too
	}
	b.stop, b.due = c.AfterFunc(delay, b.flush), due
}

func (b *Batcher) flush() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	upTo := b.max
	b.max, b.bytes, b.stop, b.urgent = nil, 0, nil, false
	b.flushing.Add(1)
	b.mu.Unlock()
	defer b.flushing.Done()
	if len(upTo) > 0 {
		b.Flush(upTo)
	}
}

// TakeLazy returns the acks owed, as the next flush would send them, and
// cancels that flush, if that flush is a lazy one: for a caller that sends
// them along with a packet of its own. An urgent ack is left to its flush,
// Delay away at most, so that the caller's packet does not carry the
// work of acks that soon due (they would ride in front of an answer to the
// very message they ack). It returns nil when nothing is owed, when an
// urgent ack is, and after Close.
func (b *Batcher) TakeLazy() map[string]int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed || len(b.max) == 0 || b.urgent {
		return nil
	}
	upTo := b.max
	b.max, b.bytes = nil, 0
	if b.stop != nil {
		b.stop() // if it fires anyway, it finds nothing owed
		b.stop = nil
	}
	return upTo
}

// Close drops the acks still owed and the flush to come, and waits for a
// flush that is running: no Flush starts after it returns, and later acks
// are ignored. It must not be called from Flush. Whoever owns the
// receiver calls it when the receiver ends, so that no timer sends its
// acks afterwards; the server keeps what they would have settled.
func (b *Batcher) Close() {
	b.mu.Lock()
	b.closed = true
	if b.stop != nil {
		b.stop()
		b.stop = nil
	}
	b.max, b.bytes, b.urgent = nil, 0, false
	b.mu.Unlock()
	b.flushing.Wait()
}
