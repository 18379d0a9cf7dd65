package browsertest

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/internal/faultproxy"
	"github.com/parleyhq/parley/parleytest"
)

// newProxy is a TCP proxy between the page and the server that a test can
// cut (internal/faultproxy); it is closed in t.Cleanup.
func newProxy(t *testing.T, target string) *faultproxy.Proxy {
	p, err := faultproxy.New(target)
	require.NoError(t, err)
	t.Cleanup(p.Close)
	return p
}

// waitState reads the page's connection states until want.
func (p *page) waitState(want int) {
	p.t.Helper()
	for {
		if s := p.next("onConnectionStateChanged").State; s == want {
			return
		} else if s == 7 {
			p.t.Fatalf("connection failed while waiting for state %d", want)
		}
	}
}

func TestWebSocketDropResumesWithoutLoss(t *testing.T) {
	h := newHarness(t)
	px := newProxy(t, h.srv.Server().Addr().String())
	p := h.newPage("http://" + px.Addr())
	p.login(h.srv, "web")
	p.join(h.srv, "room1", "web")
	g := h.goEngine()
	g.login(t, h.srv, "gopher")
	g.join(t, h.srv, "room1", "gopher")
	require.Equal(t, "gopher", p.next("onUserJoined").UserInfo.UserID)
	g.rec.WaitUserJoined(t, "web")

	// The network drops and stays down.
	px.Block(true)
	px.Cut()
	p.waitState(4) // RECONNECTING

	const n = 20
	// While the page is away: Go sends it outside-room messages (kept in
	// its detached session at the server) and room messages (on the
	// PeerConnection, which does not depend on the WebSocket); the page
	// sends outside-room messages (kept in its replay buffer).
	var goIDs []int64
	for i := range n {
		goIDs = append(goIDs, g.e.SendUserMessageOutsideRoom("web", fmt.Sprintf("away %d", i), parley.MessageConfigReliableOrdered))
		goIDs = append(goIDs, g.room.SendUserMessage("web", fmt.Sprintf("room %d", i), parley.MessageConfigReliableOrdered))
	}
	evalT[bool](p, fmt.Sprintf(`(window.sent = Array.from({length: %d}, (_, i) =>
		h.settle(h.engine.sendUserMessageOutsideRoom('gopher', 'back ' + i))), true)`, n))
	require.NoError(t, g.e.GetPeerOnlineStatus("web"))
	st := g.rec.NextWhere(t, "PeerOnlineStatus", func(e parleytest.Event) bool { _, ok := e.(parleytest.PeerOnlineStatus); return ok })
	require.Equal(t, parley.UserOnlineStatusUnreachable, st.(parleytest.PeerOnlineStatus).Status, "detached, within its grace period")

	// The network comes back: the page resumes its session.
	px.Block(false)
	p.waitState(5) // RECONNECTED

	for i := range n {
		ev := p.next("onUserMessageReceivedOutsideRoom")
		require.Equal(t, fmt.Sprintf("away %d", i), ev.Message, "in order, once")
		ev = p.next("onUserMessageReceived")
		require.Equal(t, fmt.Sprintf("room %d", i), ev.Message)
	}
	for i := range n {
		m := g.message(t)
		require.Equal(t, parleytest.Message{From: "web", OutsideRoom: true, Payload: []byte(fmt.Sprintf("back %d", i))}, m)
	}
	sent := evalT[[]outcome](p, "Promise.all(window.sent)")
	for i, o := range sent {
		require.True(t, o.OK, "page's send %d: %s", i, o.Code)
	}
	for id, r := range g.rec.WaitResults(t, goIDs...) {
		require.Equal(t, 0, r.Code, "Go send %d", id)
	}
	// One more each way after the resume, then nothing else is pending:
	// no message came twice.
	g.e.SendUserMessageOutsideRoom("web", "last", parley.MessageConfigReliableOrdered)
	require.Equal(t, "last", p.next("onUserMessageReceivedOutsideRoom").Message)
	p.mustCall("sendUserMessageOutsideRoom('gopher', 'last')")
	require.Equal(t, "last", string(g.message(t).Payload))
	require.Equal(t, 0, evalT[int](p, "h.pending('onUserMessageReceivedOutsideRoom') + h.pending('onUserMessageReceived')"))
	require.Empty(t, g.rec.TakeAll(isMessage))
	// Nobody saw the page leave: the session was resumed, not replaced.
	require.Empty(t, g.rec.TakeAll(func(e parleytest.Event) bool {
		_, left := e.(parleytest.UserLeave)
		_, joined := e.(parleytest.UserJoined)
		return left || joined
	}))
	p.mustCall("sendUserMessage('gopher', 'still in the room')")
	require.Equal(t, "still in the room", string(g.message(t).Payload))
}

func TestTransportFailureRejoinsWithoutLoss(t *testing.T) {
	_, p, g := inRoom(t)
	g.rec.WaitUserJoined(t, "web")
	const n = 20
	// The page's PeerConnection dies; both sides keep sending reliable
	// messages while the page builds a new one and rejoins.
	evalT[bool](p, fmt.Sprintf(`(h.engine.dropTransportForTesting(), window.sent = Array.from({length: %d}, (_, i) =>
		h.settle(h.engine.sendUserMessage('gopher', 'during ' + i))), true)`, n))
	var ids []int64
	for i := range n {
		ids = append(ids, g.room.SendUserMessage("web", fmt.Sprintf("to web %d", i), parley.MessageConfigReliableOrdered))
	}
	for i := range n {
		require.Equal(t, fmt.Sprintf("to web %d", i), p.next("onUserMessageReceived").Message, "in order, once")
		require.Equal(t, fmt.Sprintf("during %d", i), string(g.message(t).Payload))
	}
	for i, o := range evalT[[]outcome](p, "Promise.all(window.sent)") {
		require.True(t, o.OK, "page's send %d: %s", i, o.Code)
	}
	for id, r := range g.rec.WaitResults(t, ids...) {
		require.Equal(t, 0, r.Code, "Go send %d", id)
	}
	// Nothing twice, and nobody saw the page leave or come back.
	p.mustCall("sendUserMessage('gopher', 'after')")
	require.Equal(t, "after", string(g.message(t).Payload))
	g.room.SendUserMessage("web", "after", parley.MessageConfigReliableOrdered)
	require.Equal(t, "after", p.next("onUserMessageReceived").Message)
	require.Equal(t, 0, evalT[int](p, "h.pending('onUserMessageReceived') + h.pending('onUserLeave') + h.pending('onUserJoined')"))
	require.Empty(t, g.rec.TakeAll(func(e parleytest.Event) bool {
		_, left := e.(parleytest.UserLeave)
		_, joined := e.(parleytest.UserJoined)
		return left || joined || isMessage(e)
	}))
}

// TestOfflineBurstIsBounded: messages the page sends while its WebSocket is
// down beyond the replay buffer's 1,024 frames wait for room in it, in
// order, instead of growing it (the Go SDK's signaling queue bound); once
// the network is back the resume replays the buffer, the rest follows as
// the server acknowledges, and every message arrives once, in order, with
// Success.
func TestOfflineBurstIsBounded(t *testing.T) {
	h := newHarness(t)
	px := newProxy(t, h.srv.Server().Addr().String())
	p := h.newPage("http://" + px.Addr())
	p.login(h.srv, "web")
	g := h.goEngine()
	g.login(t, h.srv, "gopher")

	px.Block(true)
	px.Cut()
	p.waitState(4) // RECONNECTING

	const n = 1500
	type queued struct{ Kept, Waiting int }
	before := evalT[queued](p, "h.engine.signalQueuedForTesting()")
	evalT[bool](p, fmt.Sprintf(`(window.sent = Array.from({length: %d}, (_, i) =>
		h.settle(h.engine.sendUserMessageOutsideRoom('gopher', 'burst ' + i))), true)`, n))
	q := evalT[queued](p, "h.engine.signalQueuedForTesting()")
	t.Logf("before the burst %+v, after %+v", before, q)
	require.Equal(t, 1024, q.Kept, "the replay buffer holds 1,024 frames")
	require.Equal(t, before.Kept+n, q.Kept+q.Waiting, "the rest wait for room")

	px.Block(false)
	p.waitState(5) // RECONNECTED
	for i := range n {
		m := g.message(t)
		require.Equal(t, parleytest.Message{From: "web", OutsideRoom: true, Payload: []byte(fmt.Sprintf("burst %d", i))}, m)
	}
	for i, o := range evalT[[]outcome](p, "Promise.all(window.sent)") {
		require.True(t, o.OK, "page's send %d: %s", i, o.Code)
	}
	require.Zero(t, evalT[queued](p, "h.engine.signalQueuedForTesting()").Waiting, "nothing waits")
	require.Empty(t, g.rec.TakeAll(isMessage), "no message twice")
}
