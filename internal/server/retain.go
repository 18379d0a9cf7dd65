package server

import "sync"

// The relay's books of reliable messages awaiting an ack. Each receiver
// has a retention (a member in a room; a login outside rooms), and each
// sender of user messages an outbox: a message is in both from its
// delivery until its receiver acknowledges it, or is gone and it fails.
// The receiver identity is its retention, the sender's its outbox: a
// second member or login of the same user ID has others, so an ack from
// one settles only what was delivered to it.

// retained is a reliable message delivered to a receiver that has not
// acknowledged it yet.
type retained struct {
	sender string  // the sender's user ID, which the receiver's ack names
	from   *outbox // the sender's outbox, for a user message; nil for a broadcast (nobody waits)
	id     int64
	b      []byte // a member's: the packet, to deliver again on its next transport
	cost   int    // what it counts in the backlog
}

// retention is a receiver's retained messages, in the order they were
// delivered. Its size is the receiver's backlog: for a member, the bytes
// the relay holds for it, whether written to its channel or waiting for a
// new one; for a login, the number of messages.
type retention struct {
	user string // the receiver's user ID

	mu      sync.Mutex
	q       []retained    // guarded by mu
	size    int           // the backlog; guarded by mu
	closed  bool          // the receiver is gone: nothing more is kept; guarded by mu
	removed chan struct{} // non-nil: sent to (never blocking) when a message goes; see watch; guarded by mu
}

// watch makes r signal c, without blocking, whenever it lets a message go
// (acknowledged, failed, taken back, or its receiver gone), until unwatch.
// One watcher at a time: a node leaving waits on it (Server.settleMoving).
func (r *retention) watch(c chan struct{}) {
	r.mu.Lock()
	r.removed = c
	r.mu.Unlock()
}

// unwatch ends watch.
func (r *retention) unwatch() { r.watch(nil) }

// removedLocked signals the watcher, if any, that messages went. r.mu is
// held.
func (r *retention) removedLocked() {
	if r.removed != nil {
		select {
		case r.removed <- struct{}{}:
		default: // a signal is pending already
		}
	}
}

// add keeps e, unless the retention is closed or, with limit above 0,
// already holds limit or more: then ok is false and full tells which. It
// returns the backlog with e.
func (r *retention) add(e retained, limit int) (size int, ok, full bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.closed:
		return r.size, false, false
	case limit > 0 && r.size >= limit:
		return r.size, false, true
	}
	r.q = append(r.q, e)
	r.size += e.cost
	return r.size, true, false
}

// settle forgets sender's messages up to upTo, which the receiver has
// acknowledged (cumulatively), and returns the user messages among them.
func (r *retention) settle(sender string, upTo int64) []retained {
	r.mu.Lock()
	defer r.mu.Unlock()
	var done []retained
	kept := r.q[:0]
	for _, e := range r.q {
		if e.sender == sender && e.id <= upTo {
			r.size -= e.cost
			if e.from != nil {
				done = append(done, e)
			}
			continue
		}
		kept = append(kept, e)
	}
	if len(kept) < len(r.q) {
		r.removedLocked()
	}
	clear(r.q[len(kept):])
	r.q = kept
	return done
}

// ack handles the receiver's ack of sender's messages up to upTo: each
// sender's outbox passes it on for what was delivered here (see
// outbox.acked).
func (r *retention) ack(sender string, upTo int64) {
	r.tell(r.settle(sender, upTo))
}

// tell passes the acknowledgement of done, messages r settled, to their
// senders' outboxes.
func (r *retention) tell(done []retained) {
	if len(done) == 0 {
		return
	}
	// Usually one outbox; two while a sender's member or login is being
	// replaced.
	var outs []*outbox
	top := make(map[*outbox]int64)
	for _, e := range done {
		if _, ok := top[e.from]; !ok {
			outs = append(outs, e.from)
		}
		top[e.from] = max(top[e.from], e.id)
	}
	for _, o := range outs {
		o.acked(r.user, r, top[o])
	}
}

// each calls f for every retained message, oldest first.
func (r *retention) each(f func(retained)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.q {
		f(e)
	}
}

// newest is the ID of the newest message held of each sender; nil if
// none is held.
func (r *retention) newest() map[string]int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var top map[string]int64
	for _, e := range r.q {
		if top == nil {
			top = make(map[string]int64)
		}
		top[e.sender] = max(top[e.sender], e.id)
	}
	return top
}

// holdsUpTo reports whether a message of a sender in upTo, with an ID up
// to upTo's for it, is still held.
func (r *retention) holdsUpTo(upTo map[string]int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.q {
		if top, ok := upTo[e.sender]; ok && e.id <= top {
			return true
		}
	}
	return false
}

// drain closes the retention, its receiver gone, and returns what it held.
func (r *retention) drain() []retained {
	r.mu.Lock()
	defer r.mu.Unlock()
	q := r.q
	r.q, r.size, r.closed = nil, 0, true
	r.removedLocked()
	return q
}

// failAll closes the retention, its receiver gone, and tells the senders
// of the user messages it held, which the receiver never acknowledged and
// never will, code: NoReceiver, or NoRelayPath for a receiver on a node
// that cannot be reached.
func (r *retention) failAll(code int32) {
	for _, e := range r.drain() {
		if e.from != nil {
			e.from.fail(r.user, e.id, r, code)
		}
	}
}

// outbox is a sender's reliable user messages that await their receiver's
// ack: by receiver user ID, in the order sent, each with the receiver it
// was delivered to. It mirrors the sender's own ack book, which settles
// by user ID: an ack "up to N" from user B settles every message to B up
// to N. So before an ack from one receiver of user ID B goes to the
// sender, the messages up to N delivered to another receiver of B (a
// member or login replaced meanwhile, whose failures may not have gone
// out yet) fail: they are not that ack's to settle.
//
// mu is held while the sender is told, so the results and acks reach it
// in the order they were decided.
type outbox struct {
	result func(id int64, code int32)    // tells the sender the result of its message id
	ack    func(peer string, upTo int64) // passes an ack from peer on to the sender

	mu     sync.Mutex
	q      map[string][]outgoing // by receiver user ID; guarded by mu
	closed bool                  // the sender is gone; guarded by mu
}

// outgoing is a message in an outbox: its ID and the receiver it went to.
type outgoing struct {
	id int64
	to *retention
}

// add notes message id, delivered to receiver to of user ID user. It
// reports false if the sender is gone.
func (o *outbox) add(user string, id int64, to *retention) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	if o.q == nil {
		o.q = make(map[string][]outgoing)
	}
	o.q[user] = append(o.q[user], outgoing{id, to})
	return true
}

// acked handles receiver to's ack, up to upTo, of the messages it got from
// this sender: the messages to user up to upTo that went to another
// receiver fail (NoReceiver), then the ack goes to the sender, if to got
// any of them.
func (o *outbox) acked(user string, to *retention, upTo int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	q := o.q[user]
	i, mine := 0, false
	var others []int64
	for ; i < len(q) && q[i].id <= upTo; i++ {
		if q[i].to == to {
			mine = true
		} else {
			others = append(others, q[i].id)
		}
	}
	if i == 0 {
		return
	}
	if i == len(q) {
		delete(o.q, user)
	} else {
		o.q[user] = q[i:]
	}
	for _, id := range others {
		o.result(id, resultNoReceiver)
	}
	if mine {
		o.ack(user, upTo)
	}
}

// fail takes message id to user, delivered to receiver to, out of the
// outbox and tells the sender code, if it is still there.
func (o *outbox) fail(user string, id int64, to *retention, code int32) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.removeLocked(user, id, to) {
		o.result(id, code)
	}
}

// forget takes message id to user, delivered to receiver to, out of the
// outbox without a result: it did not go after all, and the sender is
// told otherwise (a node that could not hand it over says so in its
// answer).
func (o *outbox) forget(user string, id int64, to *retention) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.removeLocked(user, id, to)
}

// removeLocked takes message id to user, delivered to to, out of the
// outbox and reports whether it was there.
func (o *outbox) removeLocked(user string, id int64, to *retention) bool {
	q := o.q[user]
	for i, e := range q {
		if e.id == id && e.to == to {
			if i == 0 {
				q = q[1:] // the usual case, in a receiver's drain: no copy
			} else {
				q = append(q[:i], q[i+1:]...)
			}
			if len(q) == 0 {
				delete(o.q, user)
			} else {
				o.q[user] = q
			}
			return true
		}
	}
	return false
}

// close forgets everything: the sender is gone.
func (o *outbox) close() {
	o.mu.Lock()
	o.q, o.closed = nil, true
	o.mu.Unlock()
}

// settleOne forgets sender's message id, which did not go after all.
func (r *retention) settleOne(sender string, id int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, e := range r.q {
		if e.sender == sender && e.id == id {
			r.size -= e.cost
			r.q = append(r.q[:i], r.q[i+1:]...)
			r.removedLocked()
			return
		}
	}
}

// take forgets message id of sender, sent from outbox from (any outbox if
// from is nil), and returns it.
func (r *retention) take(sender string, from *outbox, id int64) (retained, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, e := range r.q {
		if e.sender == sender && e.id == id && (from == nil || e.from == from) {
			r.size -= e.cost
			r.q = append(r.q[:i], r.q[i+1:]...)
			r.removedLocked()
			return e, true
		}
	}
	return retained{}, false
}

// retarget notes that message id to user, delivered to receiver from,
// now waits for receiver to's ack instead (a member that moved between
// nodes took it over).
func (o *outbox) retarget(user string, id int64, from, to *retention) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, e := range o.q[user] {
		if e.id == id && e.to == from {
			o.q[user][i].to = to
			return
		}
	}
}

// empty reports whether the retention holds nothing.
func (r *retention) empty() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.q) == 0
}
