// Package acks keeps the SDK's books of cumulative acknowledgements: which
// reliable messages await an ack, per peer and in sending order, and which
// acks a receiver still owes. (The relay keeps its own books, per member
// and per login: internal/server's retention and outbox.)
package acks

import (
	"sync"
	"time"
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
type Batcher struct {
	Delay time.Duration               // how long to gather
	Flush func(upTo map[string]int64) // sends the acks; runs on a timer goroutine

	mu    sync.Mutex
	max   map[string]int64
	armed bool
}

// Ack records that message id from peer was accepted.
func (b *Batcher) Ack(peer string, id int64) {
	b.mu.Lock()
	if b.max == nil {
		b.max = make(map[string]int64)
	}
	if id > b.max[peer] {
		b.max[peer] = id
	}
	arm := !b.armed
	b.armed = true
	b.mu.Unlock()
	if arm {
		time.AfterFunc(b.Delay, b.flush)
	}
}

func (b *Batcher) flush() {
	b.mu.Lock()
	upTo := b.max
	b.max = nil
	b.armed = false
	b.mu.Unlock()
	if len(upTo) > 0 {
		b.Flush(upTo)
	}
}
