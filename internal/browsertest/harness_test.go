package browsertest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
)

// waitTimeout bounds every wait on the browser. It only guards against a
// hang: on a healthy run each wait ends on its event long before.
const waitTimeout = 30 * time.Second

// chromium finds the browser: $PARLEY_CHROMIUM, else the first of the
// usual names on PATH.
func chromium() (string, error) {
	if p := os.Getenv("PARLEY_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no chromium on PATH (Debian: apt-get install -y --no-install-recommends chromium)")
}

// harness is one test's world: a parleytest server and one headless
// Chromium, both stopped in t.Cleanup. Pages are tabs of that browser.
type harness struct {
	t       *testing.T
	srv     *parleytest.Server
	browser context.Context // chromedp's context of the browser
	origin  string          // the server's own origin, http://127.0.0.1:port
}

// newHarness starts the server and the browser, or skips the test when
// there is no browser (fails instead with PARLEY_REQUIRE_BROWSER=1).
func newHarness(t *testing.T, opts ...parleytest.ServerOption) *harness {
	t.Helper()
	exe, err := chromium()
	if err != nil {
		if os.Getenv("PARLEY_REQUIRE_BROWSER") == "1" {
			t.Fatalf("PARLEY_REQUIRE_BROWSER=1: %v", err)
		}
		t.Skipf("skipped: %v", err)
	}
	srv := parleytest.NewServer(t, opts...)
	flags := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // tests run as root
		chromedp.WindowSize(1100, 720),
		// WebRTC on loopback, with real host candidates instead of mDNS
		// names (the server discards .local candidates). chromedp keeps
		// one value per flag: this replaces its own disable-features.
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.Flag("disable-features", "Translate,BlinkGenPropertyTrees,WebRtcHideLocalIpsWithMdns"),
		// The machine's network is closed: nothing may reach for it.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-quic", true),
		chromedp.NoFirstRun,
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), flags...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancelBrowser()
		cancelAlloc()
	})
	// Start the browser now, so that a failure to start names itself. The
	// browser lives as long as the context of this first call: no timeout.
	require.NoError(t, chromedp.Do(bctx), "start %s", exe)
	return &harness{
		t:       t,
		srv:     srv,
		browser: bctx,
		origin:  "http://" + srv.Server().Addr().String(),
	}
}

// page is one tab, on a page of the server (or of base), with the SDK
// loaded and the helper below installed as window.h.
type page struct {
	t      *testing.T
	ctx    context.Context
	origin string
}

// helperJS loads the SDK and records every event of an engine, with a
// wait for the next one of a name (events queue until read, in order).
// Binary messages travel to Go as base64.
const helperJS = `(async () => {
  const sdk = await import('/sdk/parley.js');
  const b64 = (buf) => { let s = ''; const b = new Uint8Array(buf); for (let i = 0; i < b.length; i += 8192) s += String.fromCharCode(...b.subarray(i, i + 8192)); return btoa(s); };
  window.sdk = sdk;
  window.bytes = (n, seed) => { const b = new Uint8Array(n); for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 255; return b.buffer; };
  window.h = {
    engine: null, queues: {}, waiters: {},
    make(appId, serverUrl, config) {
      this.engine = sdk.createEngine(appId, { ...(serverUrl ? { serverUrl } : {}), ...config });
      for (const ev of Object.values(sdk.events)) this.engine.on(ev, (p) => this.push(ev, p));
      return true;
    },
    push(ev, p) {
      p = { ...p, at: performance.now() };
      if (p.message instanceof ArrayBuffer) p = { ...p, message: b64(p.message), binary: true };
      const w = this.waiters[ev];
      if (w && w.length) w.shift()(p); else (this.queues[ev] ||= []).push(p);
    },
    next(ev) {
      const q = this.queues[ev];
      if (q && q.length) return Promise.resolve(q.shift());
      return new Promise((r) => (this.waiters[ev] ||= []).push(r));
    },
    pending(ev) { return (this.queues[ev] || []).length; },
    // next, or null after ms: the wait is withdrawn, so it takes no later event.
    within(ev, ms) {
      const q = this.queues[ev];
      if (q && q.length) return Promise.resolve(q.shift());
      return new Promise((r) => {
        const ws = (this.waiters[ev] ||= []);
        const w = (p) => { clearTimeout(timer); r(p); };
        const timer = setTimeout(() => { ws.splice(ws.indexOf(w), 1); r(null); }, ms);
        ws.push(w);
      });
    },
    // Records every data-channel message the page sends from now on as a
    // 'sent' event: {stream, at, bytes (base64)}. RTCDataChannel.send is
    // where the SDK hands a message to Chromium, so each event is one SCTP
    // message on the wire.
    recordSends() {
      const h = this, send = RTCDataChannel.prototype.send;
      RTCDataChannel.prototype.send = function (data) {
        h.push('sent', { stream: this.id, bytes: b64(data) });
        return send.call(this, data);
      };
      return true;
    },
    // A call's outcome as data: {ok, value} or {ok: false, code, result}.
    settle(p) { return p.then((value) => ({ ok: true, value: value === undefined ? null : value }), (e) => ({ ok: false, code: e.code ?? String(e), result: e.result ?? 0 })); },
  };
  return true;
})()`

// newPage opens a tab at base + "/sdk/" (base "" is the server itself)
// and installs the helper.
func (h *harness) newPage(base string) *page {
	h.t.Helper()
	if base == "" {
		base = h.origin
	}
	p := h.blankPage(base)
	p.do(chromedp.Navigate(base + "/sdk/"))
	require.True(h.t, evalT[bool](p, helperJS))
	return p
}

// blankPage opens a tab and grants origin the microphone and camera, so
// that Chromium offers real host candidates to its pages.
func (h *harness) blankPage(origin string) *page {
	t := h.t
	t.Helper()
	ctx, cancel := chromedp.NewContext(h.browser)
	t.Cleanup(cancel)
	// The tab lives as long as the context of its first call: no timeout.
	require.NoError(t, chromedp.Do(ctx))
	for _, name := range []string{"microphone", "camera"} {
		_, err := chromedp.CallBrowser(ctx, browser.SetPermission, browser.SetPermissionParams{
			Permission: &browser.PermissionDescriptor{Name: name},
			Setting:    browser.PermissionSettingGranted,
			Origin:     origin,
		})
		require.NoError(t, err, "grant %s", name)
	}
	return &page{t: t, ctx: ctx, origin: origin}
}

// in is the page for a subtest: its failures go to t.
func (p *page) in(t *testing.T) *page { return &page{t: t, ctx: p.ctx, origin: p.origin} }

// do runs actions on the page within waitTimeout.
func (p *page) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	require.NoError(p.t, chromedp.Do(ctx, actions...))
}

// evalT evaluates js on the page, awaiting a Promise, and returns its
// value decoded as T.
func evalT[T any](p *page, js string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitTimeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	require.NoError(p.t, err, "evaluate %s", short(js))
	return v
}

func short(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

// js quotes a Go value as a JavaScript literal.
func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// outcome is h.settle's result: a call that resolved, or its RtcError.
type outcome struct {
	OK     bool            `json:"ok"`
	Value  json.RawMessage `json:"value"`
	Code   string          `json:"code"`
	Result int             `json:"result"`
}

// call runs engine.<expr> on the page and returns how it ended.
func (p *page) call(expr string) outcome {
	p.t.Helper()
	return evalT[outcome](p, "h.settle(h.engine."+expr+")")
}

// mustCall is call for a call that must succeed.
func (p *page) mustCall(expr string) outcome {
	p.t.Helper()
	o := p.call(expr)
	require.True(p.t, o.OK, "%s: %s (%d)", expr, o.Code, o.Result)
	return o
}

// event is a recorded event's payload, with the fields the tests read.
type event struct {
	UserID   string `json:"userId"`
	Message  string `json:"message"` // text, or base64 when Binary
	Binary   bool   `json:"binary"`
	UserInfo struct {
		UserID    string `json:"userId"`
		ExtraInfo string `json:"extraInfo"`
	} `json:"userInfo"`
	Reason    int   `json:"reason"`
	State     int   `json:"state"`
	ErrorCode any   `json:"errorCode"`
	Status    int   `json:"status"`
	MsgID     int64 `json:"msgid"`
	Error     int   `json:"error"`
	// At is when the page heard of the event: performance.now(), in ms.
	At float64 `json:"at"`
}

// payload is a message event's bytes: the text, or the decoded binary.
func (e event) payload(t *testing.T) []byte {
	if !e.Binary {
		return []byte(e.Message)
	}
	b, err := base64.StdEncoding.DecodeString(e.Message)
	require.NoError(t, err)
	return b
}

// next waits for the page's next event of a name.
func (p *page) next(name string) event {
	p.t.Helper()
	return evalT[event](p, "h.next("+js(name)+")")
}

// join makes the page's engine (if it has none) and joins room as user; it returns the
// time from the page's navigation start to the join's end, in ms.
func (p *page) join(srv *parleytest.Server, room, user string) float64 {
	p.t.Helper()
	evalT[bool](p, "h.engine !== null || h.make("+js(srv.AppID)+")")
	o := evalT[outcome](p, fmt.Sprintf("h.settle(h.engine.joinRoom(%s, %s, {userId: %s, extraInfo: 'from chromium'}, {}).then(() => performance.now()))",
		js(srv.Token(room, user)), js(room), js(user)))
	require.True(p.t, o.OK, "joinRoom: %s (%d)", o.Code, o.Result)
	var ms float64
	require.NoError(p.t, json.Unmarshal(o.Value, &ms))
	return ms
}

// goPeer is a Go Engine with one room and one recorder for both.
type goPeer struct {
	e    *parley.Engine
	room *parley.Room
	rec  *parleytest.Recorder
}

// goEngine makes a Go Engine on the harness's server, closed in t.Cleanup.
func (h *harness) goEngine() *goPeer {
	h.t.Helper()
	rec := parleytest.NewRecorder()
	e, err := parley.NewEngine(parley.EngineConfig{AppID: h.srv.AppID, ServerURL: h.srv.URL}, rec, parley.WithLoopbackOnly())
	require.NoError(h.t, err)
	h.t.Cleanup(func() { _ = e.Close() })
	return &goPeer{e: e, rec: rec}
}

// join makes the peer's room and joins it as user, waiting for state 0.
func (g *goPeer) join(t *testing.T, srv *parleytest.Server, room, user string) {
	t.Helper()
	r, err := g.e.CreateRoom(room, g.rec)
	require.NoError(t, err)
	g.room = r
	require.NoError(t, r.JoinRoom(srv.Token(room, user), parley.UserInfo{UserID: user, ExtraInfo: "from go"}, parley.RoomConfig{}))
	st := g.rec.NextRoomState(t)
	require.Equal(t, 0, st.State, "join: %v", parley.ErrorCode(st.State))
}

// login logs the peer in as user and waits for the result.
func (g *goPeer) login(t *testing.T, srv *parleytest.Server, user string) {
	t.Helper()
	require.NoError(t, g.e.Login(srv.LoginToken(user), user))
	ev := g.rec.NextWhere(t, "LoginResult", func(e parleytest.Event) bool { _, ok := e.(parleytest.LoginResult); return ok })
	require.Equal(t, parley.LoginErrorCodeSuccess, ev.(parleytest.LoginResult).Code)
}

// isMessage matches a received message.
func isMessage(e parleytest.Event) bool { _, ok := e.(parleytest.Message); return ok }

// messageFrom waits for the peer's next received message.
func (g *goPeer) message(t *testing.T) parleytest.Message {
	t.Helper()
	return g.rec.NextWhere(t, "message", isMessage).(parleytest.Message)
}

// pattern is n bytes of a pattern that differs by seed, as window.bytes makes.
func pattern(n, seed int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*31 + seed)
	}
	return b
}
