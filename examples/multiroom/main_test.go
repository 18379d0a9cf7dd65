package main

import (
	"bytes"
	"context"
	"fmt"
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

// TestMultiroomEmbedded: the default run starts its own server, and the
// visitor gets one answer from each room, from that room's handler.
func TestMultiroomEmbedded(t *testing.T) {
	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"-rooms", "3"}, &out))
	require.Equal(t, `multiroom: bot is in 3 rooms on one Engine
room-1: bot answered "hello (answer 1 in room-1)"
room-2: bot answered "hello (answer 1 in room-2)"
room-3: bot answered "hello (answer 1 in room-3)"
`, out.String())
}

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

// member records what a user sees in one room.
type member struct {
	parley.NopRoomEventHandler
	joined chan string
	got    chan string
}

func (m *member) OnUserJoined(u parley.UserInfo)       { m.joined <- u.UserID }
func (m *member) OnUserMessageReceived(from, s string) { m.got <- "user " + from + ": " + s }
func (m *member) OnRoomMessageReceived(from, s string) { m.got <- "room " + from + ": " + s }

func next(t *testing.T, c chan string, what string) string {
	t.Helper()
	select {
	case s := <-c:
		return s
	case <-time.After(15 * time.Second):
		t.Fatalf("no %s within 15s", what)
		return ""
	}
}

// TestMultiroomAnswersInEachRoom: against a server of its own, the bot
// answers in the room a message came from, with that room's count, a user
// message to its sender and a broadcast to the room, until stopped.
func TestMultiroomAnswersInEachRoom(t *testing.T) {
	srv := parleytest.NewServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := &lineWriter{lines: make(chan string, 64)}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-server", srv.URL, "-app-id", srv.AppID, "-app-key", srv.AppKey, "-rooms", "3", "-prefix", "r"}, out)
	}()
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()
	for ready := false; !ready; {
		select {
		case l := <-out.lines:
			ready = strings.Contains(l, "bot is in 3 rooms")
		case err := <-done:
			t.Fatalf("multiroom stopped: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("multiroom not in its rooms within 30s")
		}
	}

	e, err := parley.NewEngine(parley.EngineConfig{AppID: srv.AppID, ServerURL: srv.URL}, nil, parley.WithLoopbackOnly())
	require.NoError(t, err)
	defer e.Close()
	rooms := make([]*parley.Room, 3)
	seen := make([]*member, 3)
	for i := range rooms {
		id := fmt.Sprintf("r%d", i+1)
		seen[i] = &member{joined: make(chan string, 8), got: make(chan string, 8)}
		rooms[i], err = e.CreateRoom(id, seen[i])
		require.NoError(t, err)
		require.NoError(t, rooms[i].JoinRoom(srv.Token(id, "alice"), parley.UserInfo{UserID: "alice"}, parley.RoomConfig{}))
	}
	for i := range rooms {
		require.Equal(t, "bot", next(t, seen[i].joined, "the bot in the room"))
	}

	// Two messages in r1, one in r3, a broadcast in r2: each room answers
	// in itself and counts its own.
	rooms[0].SendUserMessage("bot", "a", parley.MessageConfigReliableOrdered)
	rooms[2].SendUserMessage("bot", "b", parley.MessageConfigReliableOrdered)
	rooms[0].SendUserMessage("bot", "c", parley.MessageConfigReliableOrdered)
	rooms[1].SendRoomMessage("d")
	require.Equal(t, "user bot: a (answer 1 in r1)", next(t, seen[0].got, "r1's first answer"))
	require.Equal(t, "user bot: c (answer 2 in r1)", next(t, seen[0].got, "r1's second answer"))
	require.Equal(t, "room bot: d (answer 1 in r2)", next(t, seen[1].got, "r2's answer"))
	require.Equal(t, "user bot: b (answer 1 in r3)", next(t, seen[2].got, "r3's answer"))
	for i := range seen {
		select {
		case s := <-seen[i].got:
			t.Fatalf("r%d: unexpected %q", i+1, s)
		default:
		}
	}
}
