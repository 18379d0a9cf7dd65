package parley_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
	"github.com/parleyhq/parley/server"
)

type lh struct {
	parley.NopEngineEventHandler
	ev chan string
}

func (h lh) OnLoginResult(u string, c parley.LoginErrorCode, _ time.Duration) {
	h.ev <- "login " + c.String()
}
func (h lh) OnLogout(r parley.LogoutReason) { h.ev <- "logout " + r.String() }
func (h lh) OnGetPeerOnlineStatus(p string, s parley.UserOnlineStatus) {
	h.ev <- "status " + p + " " + s.String()
}
func (h lh) OnUserMessageReceivedOutsideRoom(u, m string) { h.ev <- "msg " + u + " " + m }
func (h lh) OnUserMessageSendResultOutsideRoom(id int64, r parley.UserMessageSendResult) {
	h.ev <- "result " + r.String()
}
func (h lh) OnServerParamsSetResult(c int) { h.ev <- "params " + string(rune('0'+c/100)) }
func (h lh) OnServerMessageSendResult(id int64, r parley.UserMessageSendResult, ack []byte) {
	h.ev <- "sresult " + r.String() + " " + string(ack)
}

func TestLoginSmoke(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write([]byte("ack:" + string(b) + ":" + r.Header.Get("X-Parley-User-Id")))
	}))
	defer app.Close()
	srv := parleytest.NewServer(t, parleytest.WithConfig(func(c *server.Config) {
		c.ServerMessageURLPrefixes = []string{app.URL}
	}))
	next := func(ev chan string) string {
		select {
		case s := <-ev:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("timeout")
			return ""
		}
	}
	mk := func(user string) (*parley.Engine, chan string) {
		ev := make(chan string, 100)
		e, err := parley.NewEngine(parley.EngineConfig{AppID: srv.AppID, ServerURL: srv.URL}, lh{ev: ev}, parley.WithLoopbackOnly())
		require.NoError(t, err)
		t.Cleanup(func() { e.Close() })
		require.NoError(t, e.Login(srv.LoginToken(user), user))
		require.Equal(t, "login Success", next(ev))
		return e, ev
	}
	ea, eva := mk("alice")
	_, evb := mk("bob")
	require.NoError(t, ea.GetPeerOnlineStatus("bob"))
	t.Log(next(eva))
	t.Log(ea.SendUserMessageOutsideRoom("bob", "hi", parley.MessageConfigReliableOrdered))
	t.Log(next(evb), next(eva))
	t.Log(ea.SendUserMessageOutsideRoom("carol", "hi", parley.MessageConfigReliableOrdered))
	t.Log(next(eva))
	require.NoError(t, ea.SetServerParams("sig", app.URL+"/x"))
	t.Log(next(eva))
	t.Log(ea.SendServerMessage("hello"))
	t.Log(next(eva))
}
