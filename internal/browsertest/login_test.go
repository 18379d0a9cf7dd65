package browsertest

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
	"github.com/parleyhq/parley/server"
)

// login makes the page's engine (if it has none) and logs it in as user.
func (p *page) login(srv *parleytest.Server, user string) {
	p.t.Helper()
	evalT[bool](p, "h.engine !== null || h.make("+js(srv.AppID)+")")
	p.mustCall(fmt.Sprintf("login(%s, %s)", js(srv.LoginToken(user)), js(user)))
	ev := p.next("onLoginResult")
	require.Equal(p.t, user, ev.UserID)
}

func isLogout(e parleytest.Event) bool { _, ok := e.(parleytest.Logout); return ok }

func TestOutsideRoomBothWays(t *testing.T) {
	h := newHarness(t)
	p := h.newPage("")
	// Online status before and after logins, both ways.
	p.login(h.srv, "web")
	o := p.mustCall("getPeerOnlineStatus('gopher')")
	require.Equal(t, "0", string(o.Value), "offline")
	g := h.goEngine()
	g.login(t, h.srv, "gopher")
	o = p.mustCall("getPeerOnlineStatus('gopher')")
	require.Equal(t, "1", string(o.Value), "online")
	// The events too, in order.
	require.Equal(t, 0, p.next("onGetPeerOnlineStatus").Status)
	require.Equal(t, 1, p.next("onGetPeerOnlineStatus").Status)
	require.NoError(t, g.e.GetPeerOnlineStatus("web"))
	st := g.rec.NextWhere(t, "PeerOnlineStatus", func(e parleytest.Event) bool { _, ok := e.(parleytest.PeerOnlineStatus); return ok })
	require.Equal(t, parleytest.PeerOnlineStatus{PeerUserID: "web", Status: parley.UserOnlineStatusOnline}, st)

	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			p := p.in(t)
			// Browser to Go.
			p.mustCall(fmt.Sprintf("sendUserMessageOutsideRoom('gopher', 'out of room', sdk.MessageConfig.%s)", m.name))
			require.Equal(t, parleytest.Message{From: "web", OutsideRoom: true, Payload: []byte("out of room")}, g.message(t))
			p.mustCall(fmt.Sprintf("sendUserBinaryMessageOutsideRoom('gopher', bytes(65536, 1), sdk.MessageConfig.%s)", m.name))
			got := g.message(t)
			require.True(t, got.OutsideRoom && got.Binary)
			require.Equal(t, pattern(65536, 1), got.Payload)
			// Go to browser.
			id := g.e.SendUserMessageOutsideRoom("web", "from go, outside", m.cfg)
			ev := p.next("onUserMessageReceivedOutsideRoom")
			require.Equal(t, "gopher", ev.UserID)
			require.Equal(t, "from go, outside", ev.Message)
			require.Equal(t, 0, g.rec.WaitResult(t, id).Code)
			id = g.e.SendUserBinaryMessageOutsideRoom("web", pattern(65536, 2), m.cfg)
			ev = p.next("onUserBinaryMessageReceivedOutsideRoom")
			require.Equal(t, pattern(65536, 2), ev.payload(t))
			require.Equal(t, 0, g.rec.WaitResult(t, id).Code)
		})
	}
	// Results the server gives.
	for _, c := range []struct {
		call, code string
		result     int
	}{
		{"sendUserMessageOutsideRoom('nobody', 'x')", "USER_MESSAGE_NO_RECEIVER", 3},
		{"sendUserMessageOutsideRoom('nobody', 'x', sdk.MessageConfig.UNRELIABLE_ORDERED)", "USER_MESSAGE_NO_RECEIVER", 3},
		{"sendUserBinaryMessageOutsideRoom('gopher', bytes(65537, 0))", "USER_MESSAGE_EXCEED_MAX_LENGTH", 103},
		{"sendUserMessageOutsideRoom('', 'x')", "USER_MESSAGE_EMPTY_USER", 104},
		{"sendServerMessage('x')", "USER_MESSAGE_SERVER_PARAMS_NOT_SET", 106},
	} {
		o := p.call(c.call)
		require.Equal(t, outcome{Code: c.code, Result: c.result}, outcome{Code: o.Code, Result: o.Result}, c.call)
	}
	// After logout: the peer is offline for Go, and sends are NotLogin.
	p.mustCall("logout()")
	require.Equal(t, 0, p.next("onLogout").Reason)
	require.NoError(t, g.e.GetPeerOnlineStatus("web"))
	st = g.rec.NextWhere(t, "PeerOnlineStatus", func(e parleytest.Event) bool { _, ok := e.(parleytest.PeerOnlineStatus); return ok })
	require.Equal(t, parley.UserOnlineStatusOffline, st.(parleytest.PeerOnlineStatus).Status)
	o = p.call("sendUserMessageOutsideRoom('gopher', 'x')")
	require.Equal(t, "USER_MESSAGE_NOT_LOGIN", o.Code)
	id := g.e.SendUserMessageOutsideRoom("web", "x", parley.MessageConfigReliableOrdered)
	require.Equal(t, int(parley.UserMessageSendResultNoReceiver), g.rec.WaitResult(t, id).Code)
	// A refused login rejects with the login code.
	o = p.call("login('garbage', 'web')")
	require.Equal(t, outcome{Code: "LOGIN_INVALID_TOKEN", Result: -1000}, outcome{Code: o.Code, Result: o.Result})
}

func TestDuplicateLoginAcrossGoAndBrowser(t *testing.T) {
	h := newHarness(t)
	// The page logs in as "dup", then a Go Engine does: the page is logged out.
	p := h.newPage("")
	p.login(h.srv, "dup")
	g := h.goEngine()
	g.login(t, h.srv, "dup")
	require.Equal(t, 1, p.next("onLogout").Reason, "DuplicateLogin")
	o := p.call("sendUserMessageOutsideRoom('x', 'y')")
	require.Equal(t, "USER_MESSAGE_NOT_LOGIN", o.Code)
	// The page logs in as "dup" again: now the Go Engine is logged out.
	p.login(h.srv, "dup")
	ev := g.rec.NextWhere(t, "Logout", isLogout)
	require.Equal(t, parley.LogoutReasonDuplicateLogin, ev.(parleytest.Logout).Reason)
	// Messages to "dup" reach the page.
	g2 := h.goEngine()
	g2.login(t, h.srv, "sender")
	id := g2.e.SendUserMessageOutsideRoom("dup", "to the page", parley.MessageConfigReliableOrdered)
	require.Equal(t, "to the page", p.next("onUserMessageReceivedOutsideRoom").Message)
	require.Equal(t, 0, g2.rec.WaitResult(t, id).Code)
	// And in a room: the same user joining from Go removes the page's member.
	p2 := h.newPage("")
	p2.join(h.srv, "room1", "twin")
	g3 := h.goEngine()
	g3.join(t, h.srv, "room1", "twin")
	ev2 := p2.next("onError")
	require.Equal(t, "DUPLICATE_LOGIN", ev2.ErrorCode)
	o = p2.call("sendRoomMessage('x')")
	require.Equal(t, "USER_MESSAGE_NOT_JOIN", o.Code)
}

func TestServerMessagesAndTokens(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		_, _ = w.Write(append([]byte("ack:"), b...))
	}))
	defer app.Close()
	h := newHarness(t, parleytest.WithConfig(func(c *server.Config) {
		c.ServerMessageURLPrefixes = []string{app.URL + "/"}
	}))
	p := h.newPage("")
	p.login(h.srv, "web")
	o := p.call("setServerParams('sig', 'http://10.0.0.1/x')")
	require.Equal(t, outcome{Code: "USER_MESSAGE_E2BS_SEND_FAILED", Result: 17}, outcome{Code: o.Code, Result: o.Result})
	p.mustCall(fmt.Sprintf("setServerParams('sig', %s)", js(app.URL+"/parley")))
	o = evalT[outcome](p, "h.settle(h.engine.sendServerMessage('hello app').then((r) => new TextDecoder().decode(r.message)))")
	require.True(t, o.OK, o.Code)
	require.Equal(t, `"ack:hello app"`, string(o.Value))

	// updateToken: a good one is taken, a bad one refused with -1010.
	p.join(h.srv, "room1", "web")
	p.mustCall(fmt.Sprintf("updateToken(%s)", js(h.srv.Token("room1", "web"))))
	o = p.call("updateToken('garbage')")
	require.Equal(t, outcome{Code: "UPDATE_TOKEN_WITH_INVALID_TOKEN", Result: -1010}, outcome{Code: o.Code, Result: o.Result})
}
