package server

import "sync"

// retained is a reliable message forwarded to a member that has not
// acknowledged it yet, kept (with its bytes) to deliver again if the
// member's PeerConnection is replaced.
type retained struct {
	sender string
	id     int64
	user   bool // a user message (its sender waits for the ack), not a broadcast
	b      []byte
}

// retention is a member's retained messages, in the order they were
// forwarded. Its size is the member's reliable backlog: what the relay
// holds for it, whether written to its channel or waiting for a new one.
type retention struct {
	mu    sync.Mutex
	q     []retained
	bytes int
}

// add keeps e and returns the backlog's size.
func (r *retention) add(e retained) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.q = append(r.q, e)
	r.bytes += len(e.b)
	return r.bytes
}

// settle forgets sender's messages up to upTo: the member acknowledged
// them (cumulatively).
func (r *retention) settle(sender string, upTo int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	kept := r.q[:0]
	for _, e := range r.q {
		if e.sender == sender && e.id <= upTo {
			r.bytes -= len(e.b)
			continue
		}
		kept = append(kept, e)
	}
	clear(r.q[len(kept):])
	r.q = kept
}

// each calls f for every retained message, oldest first.
func (r *retention) each(f func(retained)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.q {
		f(e)
	}
}

// drain empties the retention and returns what it held.
func (r *retention) drain() []retained {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.q
	r.q, r.bytes = nil, 0
	return q
}
