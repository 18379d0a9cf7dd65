package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
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

// tries is how often a test sends an unreliable message before it calls
// it lost: the unreliable modes may lose one (an SCTP message of 64 KiB is
// about 55 chunks, none retransmitted), rarely on loopback, but a busy
// machine drops datagrams. A reliable message gets one try.
func tries(cfg parley.MessageConfig) int {
	if cfg == parley.MessageConfigReliableOrdered {
		return 1
	}
	return 5
}

// unreliableWait is how long a try of an unreliable message waits.
const unreliableWait = 3 * time.Second

func TestUserMessagesBothWays(t *testing.T) {
	_, page, g := inRoom(t)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			p := page.in(t)
			wait := waitTimeout
			if tries(m.cfg) > 1 {
				wait = unreliableWait
			}
			// Browser to Go: text, binary, and a full 65,536-byte binary message.
			toGo := func(call string, want parleytest.Message) {
				t.Helper()
				for try := 1; ; try++ {
					p.mustCall(call) // Success: forwarded, or (reliable) acknowledged
					ctx, cancel := context.WithTimeout(context.Background(), wait)
					_, err := g.rec.NextWhereContext(ctx, func(e parleytest.Event) bool {
						got, ok := e.(parleytest.Message)
						return ok && got.From == want.From && got.Binary == want.Binary && bytes.Equal(got.Payload, want.Payload)
					})
					cancel()
					if err == nil {
						return
					}
					require.Less(t, try, tries(m.cfg), "%s: never arrived", short(call))
					t.Logf("%s: lost on try %d, sending again", short(call), try)
				}
			}
			text := "hello from chromium, " + m.name
			toGo(fmt.Sprintf("sendUserMessage('gopher', %s, sdk.MessageConfig.%s)", js(text), m.name),
				parleytest.Message{From: "web", Payload: []byte(text)})
			for i, n := range []int{3, 65536} {
				toGo(fmt.Sprintf("sendUserBinaryMessage('gopher', bytes(%d, %d), sdk.MessageConfig.%s)", n, i, m.name),
					parleytest.Message{From: "web", Binary: true, Payload: pattern(n, i)})
			}

			// Go to browser, the same three.
			toPage := func(send func() int64, name string, want []byte) {
				t.Helper()
				for try := 1; ; try++ {
					id := send()
					require.Equal(t, parley.UserMessageSendResultSuccess, parley.UserMessageSendResult(g.rec.WaitResult(t, id).Code))
					for {
						ev := evalT[*event](p, fmt.Sprintf("h.within(%s, %d)", js(name), wait.Milliseconds()))
						if ev == nil {
							break // lost
						}
						if ev.UserID == "gopher" && bytes.Equal(ev.payload(t), want) {
							return
						} // else a late copy of an earlier try
					}
					require.Less(t, try, tries(m.cfg), "%s: never arrived", name)
					t.Logf("%s (%d bytes): lost on try %d, sending again", name, len(want), try)
				}
			}
			text = "hello from go, " + m.name
			toPage(func() int64 { return g.room.SendUserMessage("web", text, m.cfg) }, "onUserMessageReceived", []byte(text))
			for i, n := range []int{5, 65536} {
				toPage(func() int64 { return g.room.SendUserBinaryMessage("web", pattern(n, 7+i), m.cfg) },
					"onUserBinaryMessageReceived", pattern(n, 7+i))
			}
		})
	}
}

func TestBroadcastsBothWays(t *testing.T) {
	h, p, g := inRoom(t)
	// A third member, in Go, hears the page's broadcasts too.
	g2 := h.goEngine()
	g2.join(t, h.srv, "room1", "gopher2")
	require.Equal(t, "gopher2", p.next("onUserJoined").UserInfo.UserID)

	o := p.mustCall("sendRoomMessage('hello room')")
	require.Equal(t, "null", string(o.Value))
	for _, peer := range []*goPeer{g, g2} {
		require.Equal(t, parleytest.Message{From: "web", Broadcast: true, Payload: []byte("hello room")}, peer.message(t))
	}
	p.mustCall("sendRoomBinaryMessage(bytes(65536, 3))")
	for _, peer := range []*goPeer{g, g2} {
		got := peer.message(t)
		require.True(t, got.Broadcast && got.Binary)
		require.Equal(t, pattern(65536, 3), got.Payload)
	}
	res := p.next("onRoomMessageSendResult")
	require.Equal(t, 200, res.Error)

	id := g.room.SendRoomMessage("hello from go")
	ev := p.next("onRoomMessageReceived")
	require.Equal(t, "gopher", ev.UserID)
	require.Equal(t, "hello from go", ev.Message)
	require.Equal(t, int(parley.RoomMessageSendResultSuccess), g.rec.WaitResult(t, id).Code)
	g.room.SendRoomBinaryMessage(pattern(1000, 9))
	ev = p.next("onRoomBinaryMessageReceived")
	require.Equal(t, pattern(1000, 9), ev.payload(t))
}

func TestSendResults(t *testing.T) {
	h := newHarness(t)
	p := h.newPage("")
	evalT[bool](p, "h.make("+js(h.srv.AppID)+")")
	for _, c := range []struct {
		call, code string
		result     int
	}{
		// Not in a room yet.
		{"sendUserMessage('gopher', 'x')", "USER_MESSAGE_NOT_JOIN", 100},
		{"sendRoomMessage('x')", "USER_MESSAGE_NOT_JOIN", 100},
		// Not logged in.
		{"sendUserMessageOutsideRoom('gopher', 'x')", "USER_MESSAGE_NOT_LOGIN", 105},
		{"sendServerMessage('x')", "USER_MESSAGE_NOT_LOGIN", 105},
	} {
		o := p.call(c.call)
		require.False(t, o.OK, c.call)
		require.Equal(t, c.code, o.Code, c.call)
		require.Equal(t, c.result, o.Result, c.call)
	}
	o := evalT[outcome](p, fmt.Sprintf("h.settle(h.engine.joinRoom(%s, 'room1', {userId: 'web'}))", js(h.srv.Token("room1", "web"))))
	require.True(t, o.OK, o.Code)
	g := h.goEngine()
	g.join(t, h.srv, "room1", "gopher")
	p.next("onUserJoined")
	for _, c := range []struct {
		call, code string
		result     int
	}{
		{"sendUserMessage('nobody', 'x')", "USER_MESSAGE_NO_RECEIVER", 3},
		{"sendUserMessage('nobody', 'x', sdk.MessageConfig.UNRELIABLE_ORDERED)", "USER_MESSAGE_NO_RECEIVER", 3},
		{"sendUserMessage('nobody', 'x', sdk.MessageConfig.UNRELIABLE_UNORDERED)", "USER_MESSAGE_NO_RECEIVER", 3},
		{"sendUserBinaryMessage('gopher', bytes(65537, 0))", "USER_MESSAGE_EXCEED_MAX_LENGTH", 103},
		{"sendRoomBinaryMessage(bytes(65537, 0))", "USER_MESSAGE_EXCEED_MAX_LENGTH", 103},
		{"sendUserMessage('', 'x')", "USER_MESSAGE_EMPTY_USER", 104},
		{"sendUserMessage('gopher', 'x', 7)", "USER_MESSAGE_UNKNOWN", 1000},
	} {
		o := p.call(c.call)
		require.False(t, o.OK, c.call)
		require.Equal(t, c.code, o.Code, c.call)
		require.Equal(t, c.result, o.Result, c.call)
	}
	// A refused join rejects with the room error code.
	p2 := h.newPage("")
	evalT[bool](p2, "h.make("+js(h.srv.AppID)+")")
	o = p2.call("joinRoom('garbage', 'room1', {userId: 'web2'})")
	require.Equal(t, outcome{Code: "INVALID_TOKEN", Result: -1000}, outcome{Code: o.Code, Result: o.Result})
	o = p2.call("joinRoom(" + js(h.srv.Token("room1", "web2")) + ", 'a b', {userId: 'web2'})")
	require.Equal(t, "ROOM_ID_ILLEGAL", o.Code)
	// After leaving, a send is NotJoin again, and the Go peer saw the page quit.
	p.mustCall("leaveRoom()")
	require.Equal(t, parley.UserOfflineReasonQuit, g.rec.WaitUserLeave(t, "web").Reason)
	o = p.call("sendUserMessage('gopher', 'x')")
	require.Equal(t, "USER_MESSAGE_NOT_JOIN", o.Code)
	// The same engine joins again, on its open PeerConnection, and talks.
	p.join(h.srv, "room1", "web")
	g.rec.WaitUserJoined(t, "web")
	p.mustCall("sendUserMessage('gopher', 'back again')")
	require.Equal(t, "back again", string(g.message(t).Payload))
}

func TestPresenceBothWays(t *testing.T) {
	h := newHarness(t)
	g := h.goEngine()
	g.join(t, h.srv, "room1", "gopher")
	p := h.newPage("")
	p.join(h.srv, "room1", "web")
	// The page hears of the member already there, with its extra info.
	ev := p.next("onUserJoined")
	require.Equal(t, "gopher", ev.UserInfo.UserID)
	require.Equal(t, "from go", ev.UserInfo.ExtraInfo)
	// The Go peer hears of the page.
	require.Equal(t, parley.UserInfo{UserID: "web", ExtraInfo: "from chromium"}, g.rec.WaitUserJoined(t, "web").User)
	// A second page comes and goes; both others see it.
	p2 := h.newPage("")
	p2.join(h.srv, "room1", "web2")
	require.ElementsMatch(t, []string{"gopher", "web"}, []string{p2.next("onUserJoined").UserInfo.UserID, p2.next("onUserJoined").UserInfo.UserID})
	require.Equal(t, "web2", p.next("onUserJoined").UserInfo.UserID)
	g.rec.WaitUserJoined(t, "web2")
	p2.mustCall("leaveRoom()")
	ev = p.next("onUserLeave")
	require.Equal(t, "web2", ev.UserInfo.UserID)
	require.Equal(t, 0, ev.Reason)
	require.Equal(t, parley.UserOfflineReasonQuit, g.rec.WaitUserLeave(t, "web2").Reason)
	// The Go peer leaves; the page sees it.
	require.NoError(t, g.room.LeaveRoom())
	ev = p.next("onUserLeave")
	require.Equal(t, "gopher", ev.UserInfo.UserID)
	require.Equal(t, "from go", ev.UserInfo.ExtraInfo)
	require.Equal(t, 0, ev.Reason)
	// A page that closes without leaving is Dropped for the others once its
	// session ends (destroy closes with 1000: at once).
	g2 := h.goEngine()
	g2.join(t, h.srv, "room1", "gopher2")
	require.Equal(t, "gopher2", p.next("onUserJoined").UserInfo.UserID)
	p.do(chromedp.Navigate("about:blank"))
	require.Equal(t, parley.UserOfflineReasonDropped, g2.rec.WaitUserLeave(t, "web").Reason)
}
