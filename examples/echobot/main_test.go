package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// lineWriter passes each write to a channel: the bot's output, to wait on.
type lineWriter struct {
	mu    sync.Mutex
	lines chan string
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	select {
	case w.lines <- string(p):
	default:
	}
	return len(p), nil
}

// client records what a user sees.
type client struct {
	parley.NopEngineEventHandler
	parley.NopRoomEventHandler
	ev chan string
}

func (c *client) OnLoginResult(_ string, code parley.LoginErrorCode, _ time.Duration) {
	c.ev <- "login " + code.String()
}
func (c *client) OnRoomStateChanged(_, _ string, state int, _ parley.RoomStateInfo) {
	c.ev <- "state " + parley.ErrorCode(state).String()
}
func (c *client) OnUserJoined(u parley.UserInfo)       { c.ev <- "joined " + u.UserID }
func (c *client) OnUserMessageReceived(from, m string) { c.ev <- "user " + from + " " + m }
func (c *client) OnRoomMessageReceived(from, m string) { c.ev <- "room " + from + " " + m }
func (c *client) OnUserMessageReceivedOutsideRoom(from, m string) {
	c.ev <- "outside " + from + " " + m
}

func (c *client) want(t *testing.T, prefix string) string {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case e := <-c.ev:
			if strings.HasPrefix(e, prefix) {
				return e
			}
		case <-timeout:
			t.Fatalf("no %q event within 15s", prefix)
		}
	}
}

func TestEchoBotAnswersEverywhere(t *testing.T) {
	srv := parleytest.NewServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := &lineWriter{lines: make(chan string, 64)}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-server", srv.URL, "-app-id", srv.AppID, "-app-key", srv.AppKey, "-room", "lobby"}, out)
	}()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	for ready := false; !ready; {
		select {
		case l := <-out.lines:
			ready = strings.Contains(l, "is logged in")
		case err := <-done:
			t.Fatalf("echobot stopped: %v", err)
		case <-time.After(15 * time.Second):
			t.Fatal("echobot not ready within 15s")
		}
	}

	c := &client{ev: make(chan string, 64)}
	e, err := parley.NewEngine(parley.EngineConfig{AppID: srv.AppID, ServerURL: srv.URL}, c, parley.WithLoopbackOnly())
	require.NoError(t, err)
	defer e.Close()
	require.NoError(t, e.Login(srv.LoginToken("alice"), "alice"))
	require.Equal(t, "login Success", c.want(t, "login"))
	room, err := e.CreateRoom("lobby", c)
	require.NoError(t, err)
	require.NoError(t, room.JoinRoom(srv.Token("lobby", "alice"), parley.UserInfo{UserID: "alice"}, parley.RoomConfig{}))
	require.Equal(t, "state "+parley.ErrorCode(0).String(), c.want(t, "state")) // state 0: joined, whatever ErrorCode calls 0
	require.Equal(t, "joined echobot", c.want(t, "joined"))

	room.SendUserMessage("echobot", "ping in room", parley.MessageConfigReliableOrdered)
	require.Equal(t, "user echobot ping in room", c.want(t, "user"))
	room.SendRoomMessage("ping all")
	require.Equal(t, "room echobot ping all", c.want(t, "room"))
	e.SendUserMessageOutsideRoom("echobot", "ping outside", parley.MessageConfigReliableOrdered)
	require.Equal(t, "outside echobot ping outside", c.want(t, "outside"))
}
