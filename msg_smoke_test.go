package parley_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
)

type msgH struct {
	parley.NopRoomEventHandler
	ev chan string
}

func (h msgH) OnRoomStateChanged(_, u string, st int, _ parley.RoomStateInfo) { h.ev <- "state" }
func (h msgH) OnUserJoined(u parley.UserInfo)                                 { h.ev <- "joined " + u.UserID }
func (h msgH) OnUserMessageReceived(u, m string)                              { h.ev <- "msg " + u + " " + m }
func (h msgH) OnRoomMessageReceived(u, m string)                              { h.ev <- "bcast " + u + " " + m }
func (h msgH) OnUserMessageSendResult(id int64, r parley.UserMessageSendResult) {
	h.ev <- "result " + r.String()
}
func (h msgH) OnRoomMessageSendResult(id int64, r parley.RoomMessageSendResult) {
	h.ev <- "rresult " + r.String()
}

func TestMsgSmoke(t *testing.T) {
	srv := parleytest.NewServer(t)
	next := func(ev chan string) string {
		select {
		case s := <-ev:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("timeout")
			return ""
		}
	}
	mk := func(user string) (*parley.Engine, *parley.Room, chan string) {
		e, err := parley.NewEngine(parley.EngineConfig{AppID: srv.AppID, ServerURL: srv.URL}, nil, parley.WithLoopbackOnly())
		require.NoError(t, err)
		ev := make(chan string, 100)
		r, _ := e.CreateRoom("r", msgH{ev: ev})
		require.NoError(t, r.JoinRoom(srv.Token("r", user), parley.UserInfo{UserID: user}, parley.RoomConfig{}))
		require.Equal(t, "state", next(ev))
		return e, r, ev
	}
	ea, ra, eva := mk("alice")
	eb, _, evb := mk("bob")
	t.Log(next(eva), next(evb))
	t.Log(ra.SendUserMessage("bob", "hi", parley.MessageConfigReliableOrdered))
	t.Log(next(evb), next(eva))
	t.Log(ra.SendUserMessage("bob", "hi2", parley.MessageConfigUnreliableOrdered))
	t.Log(next(evb), next(eva))
	t.Log(ra.SendUserMessage("nobody", "x", parley.MessageConfigReliableOrdered))
	t.Log(next(eva))
	t.Log(ra.SendRoomMessage("all"))
	t.Log(next(evb), next(eva))
	ea.Close()
	eb.Close()
}
