package browsertest

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
)

// modes are the three MessageConfigs, by their ByteRTC Web names.
var modes = []struct {
	name string
	cfg  parley.MessageConfig
}{
	{"RELIABLE_ORDERED", parley.MessageConfigReliableOrdered},
	{"UNRELIABLE_ORDERED", parley.MessageConfigUnreliableOrdered},
	{"UNRELIABLE_UNORDERED", parley.MessageConfigUnreliableUnordered},
}

// inRoom is a page and a Go Engine joined to one room, the page first.
func inRoom(t *testing.T) (*harness, *page, *goPeer) {
	t.Helper()
	h := newHarness(t)
	p := h.newPage("")
	ms := p.join(h.srv, "room1", "web")
	t.Logf("page load to joined: %.1f ms", ms)
	g := h.goEngine()
	g.join(t, h.srv, "room1", "gopher")
	require.Equal(t, "gopher", p.next("onUserJoined").UserInfo.UserID)
	return h, p, g
}

func TestUserMessagesBothWays(t *testing.T) {
	_, page, g := inRoom(t)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			p := page.in(t)
			// Browser to Go: text, binary, and a full 65,536-byte binary message.
			text := "hello from chromium, " + m.name
			p.mustCall(fmt.Sprintf("sendUserMessage('gopher', %s, sdk.MessageConfig.%s)", js(text), m.name))
			got := g.message(t)
			require.Equal(t, parleytest.Message{From: "web", Payload: []byte(text)}, got)
			for i, n := range []int{3, 65536} {
				p.mustCall(fmt.Sprintf("sendUserBinaryMessage('gopher', bytes(%d, %d), sdk.MessageConfig.%s)", n, i, m.name))
				got := g.message(t)
				require.True(t, got.Binary)
				require.Equal(t, pattern(n, i), got.Payload)
			}

			// Go to browser, the same three.
			id := g.room.SendUserMessage("web", "hello from go, "+m.name, m.cfg)
			ev := p.next("onUserMessageReceived")
			require.Equal(t, "gopher", ev.UserID)
			require.Equal(t, "hello from go, "+m.name, ev.Message)
			require.Equal(t, parley.UserMessageSendResultSuccess, parley.UserMessageSendResult(g.rec.WaitResult(t, id).Code))
			for i, n := range []int{5, 65536} {
				id := g.room.SendUserBinaryMessage("web", pattern(n, 7+i), m.cfg)
				ev := p.next("onUserBinaryMessageReceived")
				require.Equal(t, "gopher", ev.UserID)
				require.Equal(t, pattern(n, 7+i), ev.payload(t))
				require.Equal(t, 0, g.rec.WaitResult(t, id).Code)
			}
		})
	}
}
