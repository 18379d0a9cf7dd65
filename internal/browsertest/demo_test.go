package browsertest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/internal/devapp"
	"github.com/parleyhq/parley/parleytest"
	"github.com/parleyhq/parley/server"
	"github.com/parleyhq/parley/token"
)

// withDevApp adds the development app to the server, as `parleyd serve`
// with no app configures it: /demo/token then hands the page tokens.
func withDevApp() parleytest.ServerOption {
	return parleytest.WithConfig(func(c *server.Config) { c.Apps[devapp.ID] = devapp.Key })
}

// echo is examples/echobot's behaviour: it answers a user message to its
// sender and a broadcast to the room, with the same text or bytes.
type echo struct {
	parley.NopRoomEventHandler
	room atomic.Pointer[parley.Room]
}

func (e *echo) OnUserMessageReceived(userID, message string) {
	e.room.Load().SendUserMessage(userID, message, parley.MessageConfigReliableOrdered)
}

func (e *echo) OnUserBinaryMessageReceived(userID string, message []byte) {
	e.room.Load().SendUserBinaryMessage(userID, message, parley.MessageConfigReliableOrdered)
}

func (e *echo) OnRoomMessageReceived(userID, message string) {
	e.room.Load().SendRoomMessage("echo: " + message)
}

func (e *echo) OnRoomBinaryMessageReceived(userID string, message []byte) {
	e.room.Load().SendRoomBinaryMessage(message)
}

// echoBot joins room as user on the harness's server with a token of
// appID/appKey and echoes; it waits until joined.
func (h *harness) echoBot(room, user, appID, appKey string) {
	t := h.t
	t.Helper()
	rec := parleytest.NewRecorder()
	e, err := parley.NewEngine(parley.EngineConfig{AppID: appID, ServerURL: h.srv.URL}, rec, parley.WithLoopbackOnly())
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close() })
	bot := &echo{}
	r, err := e.CreateRoom(room, bot)
	require.NoError(t, err)
	bot.room.Store(r)
	joined := make(chan int, 1)
	r.SetRoomEventHandler(stateHook{echo: bot, joined: joined})
	tk := token.New(appID, appKey, room, user)
	tk.ExpireTime(time.Now().Add(time.Hour))
	raw, err := tk.Serialize()
	require.NoError(t, err)
	require.NoError(t, r.JoinRoom(raw, parley.UserInfo{UserID: user, ExtraInfo: "echo bot"}, parley.RoomConfig{}))
	select {
	case st := <-joined:
		require.Equal(t, 0, st, "bot join")
	case <-time.After(waitTimeout):
		t.Fatal("bot: no join result")
	}
}

// stateHook is the bot's room handler: echo, plus the join's state.
type stateHook struct {
	*echo
	joined chan int
}

func (s stateHook) OnRoomStateChanged(roomID, userID string, state int, info parley.RoomStateInfo) {
	select {
	case s.joined <- state:
	default:
	}
}

// openDemo opens the demo page at query in a new tab (after granting the
// origin what WebRTC's host candidates need) and returns the tab.
func (h *harness) openDemo(query string) *page {
	t := h.t
	t.Helper()
	p := h.blankPage(h.origin)
	p.do(chromedp.Navigate(h.origin + "/demo/" + query))
	return p
}

// joinedAt waits until the demo page has joined and returns the time from
// its navigation start, in ms.
func (p *page) joinedAt() float64 {
	p.t.Helper()
	return evalT[float64](p, `new Promise((resolve) => {
		const f = () => document.body.dataset.joinedAt ? resolve(+document.body.dataset.joinedAt) : setTimeout(f, 5);
		f();
	})`)
}

func TestDemoScreenshot(t *testing.T) {
	h := newHarness(t, withDevApp())
	h.echoBot("lobby", "echobot", devapp.ID, devapp.Key)
	p := h.openDemo("")
	// A person enters the room and a name, and talks to the bot.
	p.do(
		chromedp.SetValue(chromedp.ID("user"), "alice"),
		chromedp.Click(chromedp.ID("join")),
		chromedp.WaitVisible(chromedp.ID("chat")),
	)
	p.joinedAt()
	require.Contains(t, evalT[string](p, `document.getElementById('members').textContent`), "echobot")
	say := func(text, to string) {
		evalT[bool](p, fmt.Sprintf(`(() => {
			document.getElementById('to').value = %s;
			document.getElementById('text').value = %s;
			document.getElementById('send').requestSubmit();
			return true;
		})()`, js(to), js(text)))
	}
	say("hello, room", "")
	say("hi bot, just you", "echobot")
	// Both sends succeed, and the bot's answers come back.
	log := evalT[string](p, `new Promise((resolve) => {
		const f = () => {
			const log = document.getElementById('log');
			const t = log.innerText;
			log.querySelectorAll('.ok').length === 2 && t.includes('echo: hello, room') && t.includes('(to you): hi bot, just you')
				? resolve(t) : setTimeout(f, 5);
		};
		f();
	})`)
	require.NotContains(t, log, "✗")
	// A file dropped on the chat goes as binary: the page's own drop handler,
	// with a File built in the page.
	evalT[bool](p, `(() => {
		const dt = new DataTransfer();
		dt.items.add(new File([new Uint8Array(2048)], 'notes.bin'));
		document.querySelector('section').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
		return true;
	})()`)
	evalT[bool](p, `new Promise((resolve) => {
		const f = () => document.getElementById('log').querySelectorAll('.ok').length === 3 &&
			document.getElementById('log').innerText.includes('sent a file of 2048 bytes') ? resolve(true) : setTimeout(f, 5);
		f();
	})`)

	png, err := chromedp.Run(p.ctx, chromedp.CaptureScreenshot())
	require.NoError(t, err)
	require.True(t, bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")), "a PNG")
	out := filepath.Join(t.TempDir(), "web-demo.png")
	if os.Getenv("PARLEY_WRITE_SCREENSHOT") == "1" {
		out = filepath.Join("..", "..", "docs", "web-demo.png")
	}
	require.NoError(t, os.WriteFile(out, png, 0o644))
	t.Logf("screenshot: %s (%d bytes)", out, len(png))
}

// TestFigures measures what docs/web.md reports: page load to joined (the
// demo page, entering at once from its URL), and the round trip of a
// reliable user message from the page to a Go Engine that echoes it,
// through the server.
func TestFigures(t *testing.T) {
	h := newHarness(t, withDevApp())
	h.echoBot("figures", "echo", devapp.ID, devapp.Key)

	const loads = 5
	var joined, entered []float64
	for i := range loads {
		p := h.openDemo(fmt.Sprintf("?room=figures&user=web%d&join", i))
		joined = append(joined, p.joinedAt())
		entered = append(entered, evalT[float64](p, "+document.body.dataset.joinedMs"))
		p.do(chromedp.Navigate("about:blank")) // its engine goes with its page
	}
	sort.Float64s(joined)
	sort.Float64s(entered)
	t.Logf("page load to joined (demo page, %d loads): median %.1f ms, min %.1f ms, max %.1f ms; of which Enter to joined (token fetch, connect, join, ICE/DTLS/SCTP): median %.1f ms",
		loads, joined[loads/2], joined[0], joined[loads-1], entered[loads/2])

	p := h.newPage("")
	evalT[bool](p, "h.make("+js(devapp.ID)+")")
	tk := token.New(devapp.ID, devapp.Key, "figures", "rtt")
	raw, err := tk.Serialize()
	require.NoError(t, err)
	p.mustCall(fmt.Sprintf("joinRoom(%s, 'figures', {userId: 'rtt'})", js(raw)))
	const warm, n = 100, 2000
	// roundTrips sends n+warm messages to user, each once the previous one
	// came back, and returns the times of the last n, sorted, in ms.
	roundTrips := func(user string, mode int) []float64 {
		ctx, cancel := context.WithTimeout(p.ctx, 2*waitTimeout)
		defer cancel()
		rtt, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](fmt.Sprintf(`(async () => {
			const e = h.engine, out = [], sends = [];
			for (let i = 0; i < %d; i++) {
				const t0 = performance.now();
				const back = h.next('onUserMessageReceived');
				sends.push(h.settle(e.sendUserMessage(%s, 'ping ' + i, %d))); // resolves on the ack, batched 2 ms later
				await back;
				if (i >= %d) out.push(performance.now() - t0);
			}
			await Promise.all(sends);
			return out;
		})()`, warm+n, js(user), mode, warm), chromedp.EvalAwaitPromise))
		require.NoError(t, err)
		require.Len(t, rtt, n)
		sort.Float64s(rtt)
		return rtt
	}
	rtt := roundTrips("echo", 0)
	t.Logf("browser -> parleyd -> Go Engine -> parleyd -> browser, reliable, %d round trips: p50 %.3f ms, p99 %.3f ms (performance.now() has 0.1 ms steps)",
		n, rtt[n/2], rtt[n*99/100])
	for _, mode := range []int{0, 2} {
		rtt := roundTrips("rtt", mode) // to itself: the server relays it back
		t.Logf("browser -> parleyd -> the same browser, mode %d: p50 %.3f ms, p99 %.3f ms", mode, rtt[n/2], rtt[n*99/100])
	}

	// The same round trip from a Go Engine, for a ratio on this machine.
	g := &goPeer{rec: parleytest.NewRecorderSize(4 * n)}
	g.e, err = parley.NewEngine(parley.EngineConfig{AppID: devapp.ID, ServerURL: h.srv.URL}, g.rec, parley.WithLoopbackOnly())
	require.NoError(t, err)
	defer g.e.Close()
	g.room, err = g.e.CreateRoom("figures", g.rec)
	require.NoError(t, err)
	tk = token.New(devapp.ID, devapp.Key, "figures", "gortt")
	raw, err = tk.Serialize()
	require.NoError(t, err)
	require.NoError(t, g.room.JoinRoom(raw, parley.UserInfo{UserID: "gortt"}, parley.RoomConfig{}))
	require.Equal(t, 0, g.rec.NextRoomState(t).State)
	goRTT := make([]float64, 0, n)
	for i := range warm + n {
		t0 := time.Now()
		g.room.SendUserMessage("echo", "ping", parley.MessageConfigReliableOrdered)
		g.rec.NextWhere(t, "echo", func(e parleytest.Event) bool { m, ok := e.(parleytest.Message); return ok && m.From == "echo" })
		if i >= warm {
			goRTT = append(goRTT, float64(time.Since(t0).Microseconds())/1000)
		}
		g.rec.TakeAll(func(parleytest.Event) bool { return true }) // results and presence
	}
	sort.Float64s(goRTT)
	t.Logf("Go Engine -> parleyd -> Go Engine -> parleyd -> Go Engine, the same: p50 %.3f ms, p99 %.3f ms", goRTT[n/2], goRTT[n*99/100])
}
