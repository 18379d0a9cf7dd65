package parley

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/parleyhq/parley/internal/acks"
)

// sendKind tells which callback a send's result goes to.
type sendKind int

const (
	kindUser      sendKind = iota // OnUserMessageSendResult
	kindBroadcast                 // OnRoomMessageSendResult
	kindOutside                   // OnUserMessageSendResultOutsideRoom
	kindServer                    // OnServerMessageSendResult
)

func kindOf(broadcast bool) sendKind {
	if broadcast {
		return kindBroadcast
	}
	return kindUser
}

// pendingSend is a send waiting for its result.
type pendingSend struct {
	kind sendKind
	room *Room  // for kindUser and kindBroadcast
	to   string // the receiver of a user message
	ch   int    // the data channel it goes on

	// Guarded by outbox.mu once the send is in the outbox.
	att    *attempt   // the room attempt that owes it; nil outside rooms
	book   *acks.Book // where a reliable user message awaits its ack; nil if none
	packet []byte     // the encoded packet, kept to send (again) after a rejoin
	unsent bool       // packet is not on a live transport yet: it counts in outbox.held
}

// maxHeld bounds the bytes of packets an attempt holds unsent: sends made
// while its room rebuilds itself, and reliable ones whose write failed on
// a transport not yet known to be dead. A send that would pass it waits,
// as a send on a full data channel does (transport.HighWater).
const maxHeld = 1 << 20

// outbox holds an Engine's sends that await their results. Every send that
// got a message ID is in it until its one result is reported. Only its
// methods touch its fields.
//
// The timed sends' deadlines share one timer. Every send has the same
// timeout and IDs rise with time, so their deadlines come in ID order: a
// queue, not a heap, whose oldest entry the timer waits for. A send that
// settles stays in the queue until it reaches the front, where the timer
// or the next add drops it.
type outbox struct {
	timeout time.Duration  // WithMessageTimeout
	expire  func(id int64) // reports a timed send's Timeout
	timer   *time.Timer    // fires at due[0].at while armed

	mu      sync.Mutex
	closed  bool                   // guarded by mu; Engine.Close: no new send
	next    int64                  // guarded by mu; the last message ID handed out
	pending map[int64]*pendingSend // guarded by mu; by message ID
	held    map[*attempt]int       // guarded by mu; bytes of unsent packets, by attempt
	freed   chan struct{}          // guarded by mu; closed and replaced when held bytes fall
	due     []deadline             // guarded by mu; the timed sends' deadlines, oldest first
	armed   bool                   // guarded by mu; timer is set for due[0]
}

// deadline is when a timed send times out.
type deadline struct {
	id int64
	at time.Time
}

// newOutbox returns an outbox whose timed sends time out after timeout,
// reported to expire (which runs on a timer's goroutine, with no lock
// held).
func newOutbox(timeout time.Duration, expire func(id int64)) *outbox {
	o := &outbox{
		timeout: timeout,
		expire:  expire,
		pending: make(map[int64]*pendingSend),
		held:    make(map[*attempt]int),
		freed:   make(chan struct{}),
	}
	o.timer = time.AfterFunc(time.Hour, o.expireDue)
	o.timer.Stop()
	return o
}

// add registers ps under the next message ID and, if timed, its deadline;
// -1 once the outbox is closed. Registering in the same step as the ID is
// handed out leaves no moment in which Close could miss the send.
func (o *outbox) add(ps *pendingSend, timed bool) int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return -1
	}
	o.next++
	id := o.next
	o.pending[id] = ps
	if timed {
		o.dropSettledLocked()
		o.due = append(o.due, deadline{id, time.Now().Add(o.timeout)})
		if !o.armed {
			o.armed = true
			o.timer.Reset(o.timeout)
		}
	}
	return id
}

// expireDue reports the Timeout of every send whose deadline has passed
// and that has no result yet, oldest first, and sets the timer for the
// next deadline.
func (o *outbox) expireDue() {
	o.mu.Lock()
	if !o.armed {
		o.mu.Unlock()
		return // stopped by close as it fired
	}
	now := time.Now()
	var ids []int64
	n := 0
	for ; n < len(o.due) && !o.due[n].at.After(now); n++ {
		if _, ok := o.pending[o.due[n].id]; ok {
			ids = append(ids, o.due[n].id)
		}
	}
	o.due = o.due[n:]
	o.dropSettledLocked()
	if len(o.due) > 0 {
		o.timer.Reset(o.due[0].at.Sub(now))
	} else {
		o.armed = false
	}
	o.mu.Unlock()
	for _, id := range ids {
		o.expire(id)
	}
}

// dropSettledLocked drops the deadlines of settled sends from the front of
// the queue; with the first one pending, no deadline is due before its
// own. A queue left empty gives its array back.
func (o *outbox) dropSettledLocked() {
	n := 0
	for n < len(o.due) && o.pending[o.due[n].id] == nil {
		n++
	}
	if o.due = o.due[n:]; len(o.due) == 0 {
		o.due = nil
	}
}

// close refuses every later add and stops the timer: the pending sends get
// their results from Engine.Close.
func (o *outbox) close() {
	o.mu.Lock()
	o.closed = true
	o.armed = false
	o.timer.Stop()
	o.due = nil
	o.mu.Unlock()
}

// keep stores the packet b of send id until its result: a rejoin sends it again. An
// unsent packet (its room is rebuilding, or its write failed) counts
// toward its attempt's held bytes until it is written.
// A send already resolved keeps nothing.
func (o *outbox) keep(id int64, b []byte, unsent bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ps := o.pending[id]
	if ps == nil {
		return
	}
	ps.packet = b
	if unsent && !ps.unsent {
		ps.unsent = true
		o.held[ps.att] += len(b)
	}
}

// heldBytes is the size of a's unsent packets, and a channel closed when
// some of that goes (sent again, or resolved).
func (o *outbox) heldBytes(a *attempt) (int, <-chan struct{}) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.held[a], o.freed
}

// unholdLocked takes n bytes off a's held count.
func (o *outbox) unholdLocked(a *attempt, n int) {
	if n == 0 {
		return
	}
	if o.held[a] -= n; o.held[a] <= 0 {
		delete(o.held, a)
	}
	close(o.freed)
	o.freed = make(chan struct{})
}

// settle takes send id out of the outbox, stops its timer and calls
// report with it, all under the outbox's lock: whoever settles an ID
// first reports it, later calls do nothing. report must only queue.
func (o *outbox) settle(id int64, report func(ps *pendingSend)) {
	o.mu.Lock()
	defer o.mu.Unlock()
	ps := o.pending[id]
	if ps == nil {
		return
	}
	delete(o.pending, id)
	if ps.unsent {
		ps.unsent = false
		o.unholdLocked(ps.att, len(ps.packet))
	}
	report(ps)
}

// ids returns the IDs of the pending sends that match.
func (o *outbox) ids(match func(*pendingSend) bool) []int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	var ids []int64
	for id, ps := range o.pending {
		if match(ps) {
			ids = append(ids, id)
		}
	}
	return ids
}

// move hands the kept sends of attempt from (those with a packet) to its
// rejoin to, which sends them again once it is back; reliable user
// messages then await their acks in to's book. The others stay with from
// and end with it.
func (o *outbox) move(from, to *attempt) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, ps := range o.pending {
		if ps.att != from || ps.packet == nil {
			continue
		}
		ps.att = to
		if ps.book != nil {
			ps.book = &to.unacked
		}
		if !ps.unsent {
			ps.unsent = true
			o.held[to] += len(ps.packet)
		}
	}
	if n := o.held[from]; n > 0 {
		delete(o.held, from)
		o.held[to] += n
	}
}

// keptSend is a kept packet to send again.
type keptSend struct {
	id int64
	ps *pendingSend
}

// resendable returns a's kept packets in ID order, and counts them sent:
// the caller writes them.
func (o *outbox) resendable(a *attempt) []keptSend {
	o.mu.Lock()
	defer o.mu.Unlock()
	var items []keptSend
	n := 0
	for id, ps := range o.pending {
		if ps.att == a && ps.packet != nil {
			items = append(items, keptSend{id, ps})
			if ps.unsent {
				ps.unsent = false
				n += len(ps.packet)
			}
		}
	}
	o.unholdLocked(a, n)
	slices.SortFunc(items, func(x, y keptSend) int { return cmp.Compare(x.id, y.id) })
	return items
}

// newID returns the Engine's next message ID with ps registered under it
// and, with timeout, its Timeout timer started; -1 on a closed Engine.
func (e *Engine) newID(ps *pendingSend, timeout bool) int64 {
	return e.out.add(ps, timeout)
}

// fail assigns an ID to a send that failed before it left and reports its
// result; -1 on a closed Engine.
func (e *Engine) fail(ps *pendingSend, code int) int64 {
	id := e.newID(ps, false)
	if id > 0 {
		e.resolve(id, code)
	}
	return id
}

// resolve reports the result of send id, once: later results for the same
// ID (a late ack after a timeout) are dropped.
func (e *Engine) resolve(id int64, code int) { e.resolveAck(id, code, nil) }

// resolveAck is resolve with the application server's answer of a server
// message.
//
// The result is queued while the send is taken out of the outbox, under
// its lock: Close, which fails what is pending and then stops the queue,
// can never find a send gone from the outbox whose result is not queued
// yet.
func (e *Engine) resolveAck(id int64, code int, ack []byte) {
	e.out.settle(id, func(ps *pendingSend) {
		if ps.book != nil && code != int(UserMessageSendResultSuccess) {
			ps.book.Remove(ps.to, id) // no ack will come for it
		}
		switch ps.kind {
		case kindBroadcast:
			res := RoomMessageSendResult(code)
			ps.room.emit(func(h RoomEventHandler) { h.OnRoomMessageSendResult(id, res) })
		case kindUser:
			res := UserMessageSendResult(code)
			ps.room.emit(func(h RoomEventHandler) { h.OnUserMessageSendResult(id, res) })
		case kindOutside:
			res := UserMessageSendResult(code)
			e.emit(func(h EngineEventHandler) { h.OnUserMessageSendResultOutsideRoom(id, res) })
		case kindServer:
			res := UserMessageSendResult(code)
			e.emit(func(h EngineEventHandler) { h.OnServerMessageSendResult(id, res, ack) })
		}
	})
}

// failPending resolves every pending send of attempt a (every one, if a is
// nil) with NetworkDisconnected.
func (e *Engine) failPending(a *attempt) {
	e.failWhere(func(ps *pendingSend) bool { return a == nil || ps.att == a })
}

// failWhere resolves the pending sends that match with NetworkDisconnected.
func (e *Engine) failWhere(match func(*pendingSend) bool) {
	for _, id := range e.out.ids(match) {
		e.resolve(id, int(UserMessageSendResultNetworkDisconnected))
	}
}
