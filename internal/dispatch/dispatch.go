package dispatch

import "sync"

const (
	// defaultMaxMessages is the message bound New uses for maxMessages <= 0.
	defaultMaxMessages = 1024

	// minRing is the ring's first capacity; it doubles when full.
	minRing = 64
	// keepRing is the largest ring kept once the queue drains, unless the
	// message bound alone needs more. A burst of control events may grow
	// the ring past it; an empty queue then gives the memory back.
	keepRing = 8192
)

// event is one queued callback.
type event struct {
	f   func()
	msg bool // counts toward the message bound
}

// Queue runs callbacks on one goroutine, in the order they were queued.
// See the package documentation for the contract.
type Queue struct {
	max int

	mu      sync.Mutex
	ring    []event // len is a power of two (or 0)
	head    int     // index of the oldest event
	n       int     // events queued and not yet started
	msgs    int     // message events among them
	waiters int     // producers waiting in Message
	idle    bool    // runner is waiting on wake
	closed  bool
	space   sync.Cond // signalled when a message event starts, broadcast on Close

	wake chan struct{} // cap 1; sent to once per idle period
	done chan struct{}
}

// New starts a Queue whose Message waits while maxMessages message events are
// queued and not yet started. maxMessages <= 0 means 1024.
func New(maxMessages int) *Queue {
	if maxMessages <= 0 {
		maxMessages = defaultMaxMessages
	}
	q := &Queue{
		max:  maxMessages,
		wake: make(chan struct{}, 1),
		done: make(chan struct{}),
	}
	q.space.L = &q.mu
	go q.run()
	return q
}

// Control queues f as a control event. It never blocks. It reports false, and
// drops f, once Close has been called.
func (q *Queue) Control(f func()) bool {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.push(event{f: f})
	q.unlockAndWake()
	return true
}

// Message queues f as a message event. While maxMessages message events are
// queued and not yet started it waits. It reports false, and drops f, once
// Close has been called, including when Close happens while it waits.
//
// Message must not be called from a callback; use Control there.
func (q *Queue) Message(f func()) bool {
	q.mu.Lock()
	for !q.closed && q.msgs >= q.max {
		q.waiters++
		q.space.Wait()
		q.waiters--
	}
	if q.closed {
		q.mu.Unlock()
		return false
	}
	q.push(event{f: f, msg: true})
	q.msgs++
	q.unlockAndWake()
	return true
}

// Close stops the Queue from accepting events and releases every producer
// waiting in Message. Events already queued still run, in order; then the
// goroutine exits and Done is closed. Close never waits, is idempotent, and
// may be called from any goroutine, including from a callback.
func (q *Queue) Close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	if q.waiters > 0 {
		q.space.Broadcast()
	}
	q.unlockAndWake()
}

// Done is closed once the Queue is closed, the last queued event has run and
// the goroutine has exited.
func (q *Queue) Done() <-chan struct{} {
	return q.done
}

// Len returns the number of events queued and not yet started.
func (q *Queue) Len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// push appends e to the ring, growing it when full. q.mu must be held.
func (q *Queue) push(e event) {
	if q.n == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.n)&(len(q.ring)-1)] = e
	q.n++
}

// grow doubles the ring, moving the events to its start. q.mu must be held.
func (q *Queue) grow() {
	ring := make([]event, max(2*len(q.ring), minRing))
	k := copy(ring, q.ring[q.head:])
	copy(ring[k:], q.ring[:q.head])
	q.ring = ring
	q.head = 0
}

// unlockAndWake releases q.mu and wakes the runner if it is waiting.
func (q *Queue) unlockAndWake() {
	wake := q.idle
	q.idle = false
	q.mu.Unlock()
	if wake {
		// The runner receives once per idle period and only one caller
		// saw idle set, so this never blocks.
		q.wake <- struct{}{}
	}
}

// run is the dispatcher goroutine: it takes the oldest event and runs it with
// no lock held, until the Queue is closed and empty.
func (q *Queue) run() {
	for {
		q.mu.Lock()
		e, ok := q.pop()
		if !ok {
			if q.closed {
				q.mu.Unlock()
				close(q.done)
				return
			}
			if len(q.ring) > max(keepRing, 2*q.max) {
				q.ring, q.head = nil, 0
			}
			q.idle = true
			q.mu.Unlock()
			<-q.wake
			continue
		}
		if e.msg {
			q.msgs--
			if q.waiters > 0 {
				q.space.Signal() // one slot freed: one waiter may take it
			}
		}
		q.mu.Unlock()

		e.f()
	}
}

// pop removes and returns the oldest event, if any. q.mu must be held.
func (q *Queue) pop() (event, bool) {
	if q.n == 0 {
		return event{}, false
	}
	e := q.ring[q.head]
	q.ring[q.head] = event{} // let f be collected once it has run
	q.head = (q.head + 1) & (len(q.ring) - 1)
	q.n--
	return e, true
}
