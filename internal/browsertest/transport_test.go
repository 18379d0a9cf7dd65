package browsertest

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
)

// transports reads the server's parley_transports gauge: the sessions'
// PeerConnections.
func (h *harness) transports() float64 {
	h.t.Helper()
	return metric(h.t, h.srv, "parley_transports")
}

// TestIdleTransportCloses: once the page's engine has been in no room for
// idleTransportMs, its PeerConnection closes, at both ends; the next
// joinRoom sets up a new one (its TransportRequest before the join, as
// the session had one), and messages go both ways on it.
func TestIdleTransportCloses(t *testing.T) {
	h := newHarness(t)
	p := h.newPage("")
	evalT[bool](p, "h.make("+js(h.srv.AppID)+", '', {idleTransportMs: 200})")
	p.join(h.srv, "room1", "web")
	g := h.goEngine()
	g.join(t, h.srv, "room1", "gopher")
	require.Equal(t, "gopher", p.next("onUserJoined").UserInfo.UserID)
	g.rec.WaitUserJoined(t, "web")
	require.Equal(t, 2.0, h.transports())

	p.mustCall("leaveRoom()")
	require.Equal(t, parley.UserOfflineReasonQuit, g.rec.WaitUserLeave(t, "web").Reason)
	require.Eventually(t, func() bool { return h.transports() == 1 }, waitTimeout, 10*time.Millisecond,
		"the page's PeerConnection closes once idle; the Go Engine's stays")

	p.join(h.srv, "room1", "web")
	g.rec.WaitUserJoined(t, "web")
	require.Equal(t, "gopher", p.next("onUserJoined").UserInfo.UserID)
	require.Equal(t, 2.0, h.transports(), "a new PeerConnection for the page")

	p.mustCall("sendUserMessage('gopher', 'after the idle close', sdk.MessageConfig.RELIABLE_ORDERED)")
	m := g.message(t)
	require.Equal(t, "web", m.From)
	require.Equal(t, "after the idle close", string(m.Payload))
	id := g.room.SendUserMessage("web", "and back", parley.MessageConfigReliableOrdered)
	require.Equal(t, parley.UserMessageSendResultSuccess, parley.UserMessageSendResult(g.rec.WaitResult(t, id).Code))
	ev := p.next("onUserMessageReceived")
	require.Equal(t, "gopher", ev.UserID)
	require.Equal(t, "and back", ev.Message)
}
