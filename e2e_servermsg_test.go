package parley_test

// End-to-end tests of server messages: SetServerParams,
// SendServerMessage and its binary twin, against a real parleytest server,
// real Engines over loopback and a real net/http/httptest application
// server.

import (
	"bytes"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
	"github.com/parleyhq/parley/server"
)

// --- Server messages -----------------------------------------------------

// TestServerMessage: text and binary server messages reach the application
// server with the signature, app and user headers, and its 2xx answer comes
// back as the ack.
func TestServerMessage(t *testing.T) {
	hook := newHook(t)
	srv := serverFor(t, []string{hook.ts.URL}, nil)
	a := loggedIn(t, srv, "alice")
	require.Equal(t, 200, a.setParams(t, "the-signature", hook.ts.URL+"/ok"))

	requireReq := func(id int64, body []byte, contentType string) {
		t.Helper()
		r := hook.req(t)
		require.Equal(t, http.MethodPost, r.Method)
		require.Equal(t, "/ok", r.Path)
		require.True(t, bytes.Equal(body, r.Body), "body: want %s, got %s", clip(body), clip(r.Body))
		require.Equal(t, "the-signature", r.Header.Get("X-Parley-Signature"))
		require.Equal(t, srv.AppID, r.Header.Get("X-Parley-App-Id"))
		require.Equal(t, "alice", r.Header.Get("X-Parley-User-Id"))
		require.Equal(t, strconv.FormatInt(id, 10), r.Header.Get("X-Parley-Message-Id"))
		require.Equal(t, contentType, r.Header.Get("Content-Type"))
	}

	text := "hello, app server ✓"
	id := a.e.SendServerMessage(text)
	require.Positive(t, id)
	r := a.serverSent(t, id)
	require.Equal(t, parley.UserMessageSendResultSuccess, r.Result)
	require.Equal(t, "ack:"+text, string(r.Ack))
	requireReq(id, []byte(text), "text/plain; charset=utf-8")

	bin := payloadOf(4096, 3)
	sent := bytes.Clone(bin)
	id = a.e.SendServerBinaryMessage(bin)
	for i := range bin { // not retained after the call returns
		bin[i] = 0xEE
	}
	r = a.serverSent(t, id)
	require.Equal(t, parley.UserMessageSendResultSuccess, r.Result)
	require.Equal(t, append([]byte("ack:"), sent...), r.Ack)
	requireReq(id, sent, "application/octet-stream")

	// Any 2xx is Success.
	require.Equal(t, 200, a.setParams(t, "sig2", hook.ts.URL+"/accepted"))
	id = a.e.SendServerMessage("to 202")
	r = a.serverSent(t, id)
	require.Equal(t, parley.UserMessageSendResultSuccess, r.Result)
	require.Equal(t, "accepted", string(r.Ack))
	req := hook.req(t)
	require.Equal(t, "/accepted", req.Path)
	require.Equal(t, "sig2", req.Header.Get("X-Parley-Signature"))
	require.Equal(t, []byte("to 202"), req.Body)

	// 65,536 bytes are accepted (/accepted: the ack stays short) ...
	big := payloadOf(65536, 9)
	id = a.e.SendServerBinaryMessage(big)
	r = a.serverSent(t, id)
	require.Equal(t, parley.UserMessageSendResultSuccess, r.Result)
	require.Equal(t, "accepted", string(r.Ack))
	req = hook.req(t)
	require.Len(t, req.Body, 65536)
	require.True(t, bytes.Equal(big, req.Body), "a 65,536-byte server message differs")
	// ... 65,537 are not, and nothing is posted.
	id = a.e.SendServerMessage(textOf(65537, 0))
	require.Equal(t, parley.UserMessageSendResultExceedMaxLength, a.serverSent(t, id).Result)
	id = a.e.SendServerBinaryMessage(payloadOf(65537, 0))
	require.Equal(t, parley.UserMessageSendResultExceedMaxLength, a.serverSent(t, id).Result)

	a.quiet(t)
	hook.requireNoReq(t)
}

func TestServerMessageFailures(t *testing.T) {
	hook := newHook(t)
	deadURL := hangUpURL(t) // under an allowed prefix, but no HTTP answers there
	srv := serverFor(t, []string{hook.ts.URL, deadURL}, nil)

	t.Run("500 is E2BSReturnFailed with the body", func(t *testing.T) {
		a := loggedIn(t, srv, "u-500")
		require.Equal(t, 200, a.setParams(t, "sig", hook.ts.URL+"/fail"))
		id := a.e.SendServerMessage("doomed")
		r := a.serverSent(t, id)
		require.Equal(t, parley.UserMessageSendResultE2BSReturnFailed, r.Result)
		require.Equal(t, "boom", string(r.Ack))
		require.Equal(t, []byte("doomed"), hook.req(t).Body)
		id = a.e.SendServerBinaryMessage([]byte{0, 1, 2})
		r = a.serverSent(t, id)
		require.Equal(t, parley.UserMessageSendResultE2BSReturnFailed, r.Result)
		require.Equal(t, "boom", string(r.Ack))
		require.Equal(t, []byte{0, 1, 2}, hook.req(t).Body)
	})

	t.Run("unreachable is E2BSSendFailed", func(t *testing.T) {
		a := loggedIn(t, srv, "u-dead")
		require.Equal(t, 200, a.setParams(t, "sig", deadURL+"/hook"))
		id := a.e.SendServerMessage("into the void")
		r := a.serverSent(t, id)
		require.Equal(t, parley.UserMessageSendResultE2BSSendFailed, r.Result)
		require.Empty(t, r.Ack)
	})

	t.Run("URL not allowed", func(t *testing.T) {
		a := loggedIn(t, srv, "u-denied")
		require.Equal(t, int(parley.UserMessageSendResultE2BSSendFailed), a.setParams(t, "sig", "http://127.0.0.1:1/not-allowed"))
		id := a.e.SendServerMessage("hi")
		require.Equal(t, parley.UserMessageSendResultServerParamsNotSet, a.serverSent(t, id).Result)
	})

	t.Run("before SetServerParams", func(t *testing.T) {
		a := loggedIn(t, srv, "u-noparams")
		id := a.e.SendServerMessage("hi")
		require.Equal(t, parley.UserMessageSendResultServerParamsNotSet, a.serverSent(t, id).Result)
		id = a.e.SendServerBinaryMessage([]byte("hi"))
		require.Equal(t, parley.UserMessageSendResultServerParamsNotSet, a.serverSent(t, id).Result)
	})

	t.Run("before login", func(t *testing.T) {
		a := newLoginPeer(t, srv, "u-nologin")
		id := a.e.SendServerMessage("hi")
		require.Equal(t, parley.UserMessageSendResultNotLogin, a.serverSent(t, id).Result)
		id = a.e.SendServerBinaryMessage([]byte("hi"))
		require.Equal(t, parley.UserMessageSendResultNotLogin, a.serverSent(t, id).Result)
		require.Equal(t, int(parley.UserMessageSendResultNotLogin), a.setParams(t, "sig", hook.ts.URL+"/ok"))
		// Setting them before the login does not count.
		a.login(t)
		id = a.e.SendServerMessage("hi")
		require.Equal(t, parley.UserMessageSendResultServerParamsNotSet, a.serverSent(t, id).Result)
	})

	t.Run("Logout clears the params", func(t *testing.T) {
		a := loggedIn(t, srv, "u-logout")
		require.Equal(t, 200, a.setParams(t, "sig", hook.ts.URL+"/ok"))
		id := a.e.SendServerMessage("one")
		require.Equal(t, parley.UserMessageSendResultSuccess, a.serverSent(t, id).Result)
		require.Equal(t, []byte("one"), hook.req(t).Body)
		a.logout(t)
		id = a.e.SendServerMessage("two")
		require.Equal(t, parley.UserMessageSendResultNotLogin, a.serverSent(t, id).Result)
		a.login(t)
		id = a.e.SendServerMessage("three")
		require.Equal(t, parley.UserMessageSendResultServerParamsNotSet, a.serverSent(t, id).Result)
	})

	hook.requireNoReq(t)
}

// TestServerMessageTimeout: an application server that does not answer
// within Config.ServerMessageTimeout gives E2BSSendFailed.
func TestServerMessageTimeout(t *testing.T) {
	hook := newHook(t)
	srv := serverFor(t, []string{hook.ts.URL}, func(c *server.Config) {
		c.ServerMessageTimeout = 300 * time.Millisecond
	})
	a := loggedIn(t, srv, "alice")
	require.Equal(t, 200, a.setParams(t, "sig", hook.ts.URL+"/block"))
	id := a.e.SendServerMessage("wait for it")
	r := a.serverSent(t, id)
	require.Equal(t, parley.UserMessageSendResultE2BSSendFailed, r.Result)
	require.Empty(t, r.Ack)
	require.Equal(t, []byte("wait for it"), hook.req(t).Body, "the request did reach the blocking handler")
}

// TestServerMessageExceedQPS: over the server-message quota a message gets
// ExceedQPS and is not posted.
func TestServerMessageExceedQPS(t *testing.T) {
	const quota, n = 2, 8
	hook := newHook(t)
	srv := parleytest.NewServer(t,
		parleytest.WithQuotas(server.Quotas{ServerMessagesPerSecond: quota}),
		parleytest.WithConfig(func(c *server.Config) { c.ServerMessageURLPrefixes = []string{hook.ts.URL} }))
	a := loggedIn(t, srv, "alice")
	require.Equal(t, 200, a.setParams(t, "sig", hook.ts.URL+"/ok"))

	ids := make([]int64, n)
	for i := range ids {
		ids[i] = a.e.SendServerMessage("s" + strconv.Itoa(i))
	}
	got := map[int64]parley.UserMessageSendResult{}
	for range ids {
		r := a.nextServerSent(t)
		_, dup := got[r.ID]
		require.Falsef(t, dup, "second result for message ID %d", r.ID)
		got[r.ID] = r.Result
	}
	passed, exceeded := map[string]bool{}, 0
	for i, id := range ids {
		r, ok := got[id]
		require.Truef(t, ok, "no result for message %d (ID %d)", i, id)
		switch {
		case i < quota:
			require.Equalf(t, parley.UserMessageSendResultSuccess, r, "message %d of the burst", i)
			passed["s"+strconv.Itoa(i)] = true
		case r == parley.UserMessageSendResultSuccess:
			passed["s"+strconv.Itoa(i)] = true
		default:
			require.Equalf(t, parley.UserMessageSendResultExceedQPS, r, "message %d of the burst", i)
			exceeded++
		}
	}
	require.Positive(t, exceeded, "no ExceedQPS in a burst of %d with a quota of %d/s", n, quota)
	// Exactly the messages that passed were posted (each post ends before
	// its result is sent).
	posted := map[string]bool{}
	for range passed {
		posted[string(hook.req(t).Body)] = true
	}
	require.Equal(t, passed, posted)
	hook.requireNoReq(t)
}

// TestServerParamsLastCallWins calls SetServerParams twice at once: each
// call gets its result, and the server messages then go where the last
// call said, with its signature.
func TestServerParamsLastCallWins(t *testing.T) {
	hook := newHook(t)
	srv := serverFor(t, []string{hook.ts.URL}, nil)
	a := loggedIn(t, srv, "alice")
	paths := [2]string{"/ok", "/accepted"}
	for i := range 10 {
		first, last := paths[i%2], paths[(i+1)%2]
		require.NoError(t, a.e.SetServerParams("first", hook.ts.URL+first))
		require.NoError(t, a.e.SetServerParams("last", hook.ts.URL+last))
		require.Equal(t, parleytest.ServerParamsSetResult{Code: 200}, expect[parleytest.ServerParamsSetResult](t, a.eng))
		require.Equal(t, parleytest.ServerParamsSetResult{Code: 200}, expect[parleytest.ServerParamsSetResult](t, a.eng))
		id := a.e.SendServerMessage("round " + strconv.Itoa(i))
		require.Equal(t, parley.UserMessageSendResultSuccess, a.serverSent(t, id).Result)
		r := hook.req(t)
		require.Equalf(t, last, r.Path, "round %d: posted to the URL of the first SetServerParams", i)
		require.Equalf(t, "last", r.Header.Get("X-Parley-Signature"), "round %d", i)
	}
	hook.requireNoReq(t)
}

// TestServerParamsRejectsPrefixBypass: with the allowed prefix
// "http://host:port" (ts.URL, as an operator would write it), the URL
// "http://host:port@elsewhere/..." starts with that string but goes to
// elsewhere: the allowed host becomes user info. The relay must not post
// anywhere its operator did not allow (server.Config.ServerMessageURLPrefixes).
// A plain string-prefix check let it through; this is its regression test.
func TestServerParamsRejectsPrefixBypass(t *testing.T) {
	allowed, elsewhere := newHook(t), newHook(t)
	srv := serverFor(t, []string{allowed.ts.URL}, nil)
	a := loggedIn(t, srv, "alice")

	host := strings.TrimPrefix(elsewhere.ts.URL, "http://")
	sneaky := allowed.ts.URL + "@" + host + "/ok"
	code := a.setParams(t, "sig", sneaky)
	if code == 200 {
		id := a.e.SendServerMessage("where does this go?")
		r := a.serverSent(t, id)
		select {
		case req := <-elsewhere.reqs:
			t.Errorf("SetServerParams(%q) was accepted and the message (result %v) was posted to %s%s, which is not allowed",
				sneaky, r.Result, elsewhere.ts.URL, req.Path)
		default:
		}
	}
	assert.Equal(t, int(parley.UserMessageSendResultE2BSSendFailed), code, "SetServerParams(%q) with allowed prefix %q", sneaky, allowed.ts.URL)
}

// hangUpURL is the URL of a loopback listener that closes every
// connection at once: a request there fails in transport. The listener
// stays open for the test, so no other server can take its port.
func hangUpURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
	return "http://" + ln.Addr().String()
}
