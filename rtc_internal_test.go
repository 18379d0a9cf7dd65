package parley

import (
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/zap"
)

// newIdleTestEngine is an Engine with only what the idle timer touches,
// and its rtc x, as if built and accepted.
func newIdleTestEngine(idle time.Duration) (*Engine, *rtc) {
	e := &Engine{opts: newOptions([]Option{WithIdleTransportTimeout(idle)}), log: zap.NewNop()}
	x := &rtc{e: e, kick: make(chan struct{}), sent: make(chan struct{}), open: make(chan struct{}), done: make(chan struct{}), freed: make(chan struct{}), accepted: true}
	e.pr = x
	return e, x
}

// TestIdleTransportTimer: the rtc ends (errTransportIdle) the idle timeout
// after the last room's attempt ends, not before; a room's claim in
// between stops the timer and the next release starts it again from
// zero; a login's claims and releases do not touch it; Close stops it.
func TestIdleTransportTimer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, x := newIdleTestEngine(30 * time.Second)
		for range 2 { // two rooms
			if !e.claimUser("alice", true) {
				t.Fatal("claim refused")
			}
		}
		e.releaseUser(true)
		advance(time.Minute)
		if x.ended() {
			t.Fatal("ended with a room still on it")
		}
		e.releaseUser(true) // the last room: the timer starts
		advance(20 * time.Second)
		if !e.claimUser("alice", false) { // a login
			t.Fatal("login claim refused")
		}
		e.releaseUser(false)
		if !e.claimUser("alice", true) { // a room again, 20 s in
			t.Fatal("claim refused")
		}
		advance(time.Minute)
		if x.ended() {
			t.Fatal("ended although a room claimed it before the timeout")
		}
		e.releaseUser(true) // from zero again
		advance(30*time.Second - time.Millisecond)
		if x.ended() {
			t.Fatal("ended before the timeout")
		}
		advance(time.Millisecond)
		synctest.Wait() // the timer's goroutine has run
		if !x.ended() || !errors.Is(x.err, errTransportIdle) {
			t.Fatalf("not ended as idle at the timeout: ended %v, err %v", x.ended(), x.err)
		}
		e.wg.Wait()

		// Close stops a timer that has not fired.
		e2, x2 := newIdleTestEngine(time.Second)
		e2.claimUser("bob", true)
		e2.releaseUser(true)
		e2.mu.Lock()
		e2.closed = true
		e2.idleStop() // what Close does under mu
		e2.idleStop = nil
		e2.mu.Unlock()
		advance(time.Minute)
		if x2.ended() {
			t.Fatal("ended after Close stopped the timer")
		}
	})
}

// TestIdleTransportOption: 30 s by default and for zero, the value given,
// and never (0 inside) for a negative one; with never, no timer starts.
func TestIdleTransportOption(t *testing.T) {
	for _, c := range []struct {
		give, want time.Duration
	}{{0, 30 * time.Second}, {time.Second, time.Second}, {-1, 0}} {
		if got := newOptions([]Option{WithIdleTransportTimeout(c.give)}).idleTransport; got != c.want {
			t.Errorf("WithIdleTransportTimeout(%v): %v, want %v", c.give, got, c.want)
		}
	}
	if got := newOptions(nil).idleTransport; got != defaultIdleTransport {
		t.Errorf("default %v, want %v", got, defaultIdleTransport)
	}
	e, _ := newIdleTestEngine(-1)
	e.claimUser("alice", true)
	e.releaseUser(true)
	if e.idleStop != nil {
		t.Error("a timer started with the idle timeout off")
	}
}
