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
	var pc *webrtc.PeerConnection
	if r.att != nil && r.att.rtc != nil {
		pc = r.att.rtc.pc
	}
	r.mu.Unlock()
	if pc == nil {
		return errors.New("room has no PeerConnection")
	}
	return pc.Close()
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
