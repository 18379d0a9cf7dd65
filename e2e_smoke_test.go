package parley_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
)

type smokeRoom struct {
	parley.NopRoomEventHandler
	ev chan string
}

func (h smokeRoom) OnRoomStateChanged(roomID, userID string, state int, info parley.RoomStateInfo) {
	h.ev <- "state " + userID + " " + parley.ErrorCode(state).String() + " " + info.String()
}
func (h smokeRoom) OnUserJoined(u parley.UserInfo) { h.ev <- "joined " + u.UserID + " " + u.ExtraInfo }
func (h smokeRoom) OnUserLeave(id string, r parley.UserOfflineReason) {
	h.ev <- "leave " + id + " " + r.String()
}
func (h smokeRoom) OnLeaveRoom(s parley.RoomStats) { h.ev <- "left" }

func TestSmoke(t *testing.T) {
	srv := parleytest.NewServer(t)
	mk := func(user string) (*parley.Engine, *parley.Room, chan string) {
		e, err := parley.NewEngine(parley.EngineConfig{AppID: srv.AppID, ServerURL: srv.URL}, nil, parley.WithLoopbackOnly())
		require.NoError(t, err)
		ev := make(chan string, 100)
		r, err := e.CreateRoom("room1", smokeRoom{ev: ev})
		require.NoError(t, err)
		require.NoError(t, r.JoinRoom(srv.Token("room1", user), parley.UserInfo{UserID: user, ExtraInfo: "x-" + user}, parley.RoomConfig{}))
		return e, r, ev
	}
	next := func(ev chan string) string {
		select {
		case s := <-ev:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("timeout")
			return ""
		}
	}
	ea, ra, eva := mk("alice")
	t.Log(next(eva))
	eb, _, evb := mk("bob")
	t.Log(next(evb))
	t.Log(next(evb))
	t.Log(next(eva))
	require.NoError(t, ra.LeaveRoom())
	t.Log(next(eva))
	t.Log(next(evb))
	require.NoError(t, ea.Close())
	require.NoError(t, eb.Close())
	<-ea.Done()
	<-eb.Done()
}
