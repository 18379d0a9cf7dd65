package parley

import "time"

// Hooks for the end-to-end tests in package parley_test (the
// export_test.go idiom): they read what a user cannot see, to check the
// SDK's bounds.

// HeldBytes is the size of the packets r's current attempt holds unsent:
// sends made while the room rebuilds itself, and reliable ones whose
// write failed.
func HeldBytes(r *Room) int {
	r.mu.Lock()
	a := r.att
	r.mu.Unlock()
	if a == nil {
		return 0
	}
	n, _ := r.e.out.heldBytes(a)
	return n
}

// Rebuilding reports whether r is rejoining by itself: its attempt is a
// rejoin that has not reported state 0 yet.
func Rebuilding(r *Room) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.att != nil && r.att.joinType == JoinTypeReconnected && !r.att.joined
}

// QueueLen is the number of events queued in e's dispatcher and not yet
// started.
func QueueLen(e *Engine) int { return e.q.Len() }

// WithSignalQueue sets the signaling connection's send queue to n frames.
func WithSignalQueue(n int) Option { return func(o *options) { o.signalQueue = n } }

// MaxQueuedMessages is the dispatcher's bound on message events.
const MaxQueuedMessages = 1024

// MaxHeld is the bound on HeldBytes.
const MaxHeld = maxHeld

// WithJoinTimeout shortens the time a join's try may take, so that a test
// sees a rejoin fail and retry in seconds rather than in 20.
func WithJoinTimeout(d time.Duration) Option { return func(o *options) { o.joinTimeout = d } }
