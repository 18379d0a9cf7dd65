package parley

import (
	"errors"

	"github.com/pion/webrtc/v4"
)

// Crash hooks for the end-to-end tests in package parley_test (the
// export_test.go idiom): they kill a member's network without a leave
// request, as a crash or a broken link would.

// CrashRoomTransport closes the PeerConnection r's current join travels
// on directly, as if it had died: the Engine's one PeerConnection, so
// every room of r's Engine loses it.
func CrashRoomTransport(r *Room) error {
	r.mu.Lock()
	var x *rtc
	if r.att != nil {
		x = r.att.rtc
	}
	r.mu.Unlock()
	var pc *webrtc.PeerConnection
	if x != nil {
		pc = x.peerConn()
	}
	if pc == nil {
		return errors.New("room has no PeerConnection")
	}
	if x.ended() {
		return errors.New("the room's PeerConnection has failed already")
	}
	err := pc.Close()
	// pion reports the close on a goroutine of its own; the crash is
	// over once the rooms on x have started their rejoins, so that a test
	// can wait for them to finish (fail runs once: this waits for pion's
	// call if it came first).
	x.fail(errors.New("room transport closed"), false)
	return err
}

// CrashSignaling closes e's signaling connection under the Engine's feet:
// no leave request goes out, the server only sees the connection end.
func CrashSignaling(e *Engine) error {
	sig := e.liveSignal()
	if sig == nil {
		return errors.New("no signaling connection")
	}
	sig.Close()
	<-sig.Done()
	return nil
}
