package parley_test

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/server"
	"github.com/parleyhq/parley/token"
)

// The examples run against a relay server in the process, on loopback with
// ephemeral ports, as parleytest.NewServer starts one for a test: an
// Example has no testing.TB to give parleytest, so they use package server
// as parleytest does.
const (
	exampleAppID  = "exampleexampleexample001" // 24 characters, as tokens need
	exampleAppKey = "example-app-key"
)

// startExampleServer starts the server; the caller stops it.
func startExampleServer() (*server.Server, error) {
	srv, err := server.New(server.Config{
		Listen:       "127.0.0.1:0",
		LoopbackOnly: true,
		Apps:         map[string]string{exampleAppID: exampleAppKey},
	})
	if err != nil {
		return nil, err
	}
	return srv, srv.Start()
}

// stopExampleServer shuts srv down and waits for it.
func stopExampleServer(srv *server.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}

// exampleToken signs a room token for user, as an application's token
// service would.
func exampleToken(room, user string) string {
	t := token.New(exampleAppID, exampleAppKey, room, user)
	expire := time.Now().Add(time.Hour)
	t.ExpireTime(expire)
	t.AddPrivilege(token.PrivPublishStream, expire)
	t.AddPrivilege(token.PrivSubscribeStream, expire)
	s, err := t.Serialize()
	if err != nil {
		panic(err)
	}
	return s
}

// exampleNext returns the next value from c, or panics after 20 s: an example
// waits on events, never on time.
func exampleNext[T any](c <-chan T) T {
	select {
	case v := <-c:
		return v
	case <-time.After(20 * time.Second):
		panic("example: no event within 20s")
	}
}

// exampleHandler passes the room events the examples wait for to channels.
// It runs on its Engine's callback goroutine; channels, not prints, carry
// the events to the example, so that two Engines' events print in one
// order.
type exampleHandler struct {
	parley.NopRoomEventHandler
	states   chan int
	joined   chan string
	received chan string
	results  chan string
}

func newExampleHandler() *exampleHandler {
	return &exampleHandler{states: make(chan int, 4), joined: make(chan string, 4),
		received: make(chan string, 4), results: make(chan string, 4)}
}

func (h *exampleHandler) OnRoomStateChanged(_, _ string, state int, _ parley.RoomStateInfo) {
	h.states <- state
}

func (h *exampleHandler) OnUserJoined(u parley.UserInfo) { h.joined <- u.UserID }

func (h *exampleHandler) OnUserMessageReceived(from, m string) {
	h.received <- fmt.Sprintf("%s said %q", from, m)
}

func (h *exampleHandler) OnUserMessageSendResult(id int64, r parley.UserMessageSendResult) {
	h.results <- fmt.Sprintf("message %d: %v", id, r)
}

func (h *exampleHandler) OnRoomMessageReceived(from, m string) {
	h.received <- fmt.Sprintf("%s told the room %q", from, m)
}

func (h *exampleHandler) OnRoomMessageSendResult(id int64, r parley.RoomMessageSendResult) {
	h.results <- fmt.Sprintf("broadcast %d: %v (%d)", id, r, int(r))
}

// exampleJoin creates an Engine for user and joins room with h.
func exampleJoin(url, room, user string, h parley.RoomEventHandler) (*parley.Engine, *parley.Room, error) {
	e, err := parley.NewEngine(parley.EngineConfig{AppID: exampleAppID, ServerURL: url}, nil, parley.WithLoopbackOnly())
	if err != nil {
		return nil, nil, err
	}
	r, err := e.CreateRoom(room, h)
	if err == nil {
		err = r.JoinRoom(exampleToken(room, user), parley.UserInfo{UserID: user}, parley.RoomConfig{})
	}
	if err != nil {
		e.Close()
		return nil, nil, err
	}
	return e, r, nil
}

// An Engine joins a room: OnRoomStateChanged with state 0 says it is in,
// and OnUserJoined tells of each member, those already there and those
// that come later.
func ExampleEngine() {
	srv, err := startExampleServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stopExampleServer(srv)

	e, err := parley.NewEngine(parley.EngineConfig{AppID: exampleAppID, ServerURL: srv.URL()}, nil, parley.WithLoopbackOnly())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer e.Close()
	alice := newExampleHandler()
	room, err := e.CreateRoom("lobby", alice)
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := room.JoinRoom(exampleToken("lobby", "alice"), parley.UserInfo{UserID: "alice"}, parley.RoomConfig{}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("alice: state", exampleNext(alice.states))

	bobEngine, _, err := exampleJoin(srv.URL(), "lobby", "bob", newExampleHandler())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer bobEngine.Close()
	fmt.Println("alice sees", exampleNext(alice.joined), "join")
	// Output:
	// alice: state 0
	// alice sees bob join
}

// A message to one member of the room. It returns its ID at once; exactly
// one result follows, here Success: bob's SDK has the reliable message.
// A broadcast goes to every other member; its Success is 200.
func ExampleRoom_SendUserMessage() {
	srv, err := startExampleServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stopExampleServer(srv)

	alice, bob := newExampleHandler(), newExampleHandler()
	ae, aliceRoom, err := exampleJoin(srv.URL(), "lobby", "alice", alice)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ae.Close()
	be, _, err := exampleJoin(srv.URL(), "lobby", "bob", bob)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer be.Close()
	exampleNext(alice.states)
	exampleNext(bob.states)
	exampleNext(alice.joined) // alice has seen bob: he can be sent to

	id := aliceRoom.SendUserMessage("bob", "hi bob", parley.MessageConfigReliableOrdered)
	fmt.Println("alice sent message", id)
	fmt.Println("bob:", exampleNext(bob.received))
	fmt.Println("alice:", exampleNext(alice.results))

	aliceRoom.SendRoomMessage("hello all")
	fmt.Println("bob:", exampleNext(bob.received))
	fmt.Println("alice:", exampleNext(alice.results))
	// Output:
	// alice sent message 1
	// bob: alice said "hi bob"
	// alice: message 1: Success
	// bob: alice told the room "hello all"
	// alice: broadcast 2: Success (200)
}

// exampleRoomBot is one room's handler of a bot that sits in many rooms: one
// value per room, which knows its room and answers in it. Its methods run
// on the Engine's one callback goroutine, so it needs no lock.
type exampleRoomBot struct {
	parley.NopRoomEventHandler
	room  *parley.Room
	ready chan<- string // the room's ID once joined
}

func (b *exampleRoomBot) OnRoomStateChanged(roomID, _ string, state int, _ parley.RoomStateInfo) {
	if state == 0 {
		b.ready <- roomID
	}
}

func (b *exampleRoomBot) OnUserMessageReceived(from, m string) {
	b.room.SendUserMessage(from, m+" from "+b.room.RoomID(), parley.MessageConfigReliableOrdered)
}

// A bot in several rooms on one Engine, with one handler value per room:
// each handler answers in its own room. A user's Engine may be in many
// rooms too, under one user ID.
func Example_botInManyRooms() {
	srv, err := startExampleServer()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stopExampleServer(srv)

	rooms := []string{"room-1", "room-2", "room-3"}
	bot, err := parley.NewEngine(parley.EngineConfig{AppID: exampleAppID, ServerURL: srv.URL()}, nil, parley.WithLoopbackOnly())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer bot.Close()
	ready := make(chan string, len(rooms))
	for _, id := range rooms {
		h := &exampleRoomBot{ready: ready}
		room, err := bot.CreateRoom(id, h)
		if err != nil {
			fmt.Println(err)
			return
		}
		h.room = room // set before the join: no event comes before it
		if err := room.JoinRoom(exampleToken(id, "bot"), parley.UserInfo{UserID: "bot"}, parley.RoomConfig{}); err != nil {
			fmt.Println(err)
			return
		}
	}
	for range rooms {
		exampleNext(ready)
	}

	// carol is in the three rooms too, on one Engine, and says hello in
	// each; every answer comes on the handler of the room it was sent in.
	carol, err := parley.NewEngine(parley.EngineConfig{AppID: exampleAppID, ServerURL: srv.URL()}, nil, parley.WithLoopbackOnly())
	if err != nil {
		fmt.Println(err)
		return
	}
	defer carol.Close()
	answers := make(chan string, len(rooms))
	for _, id := range rooms {
		h := newExampleHandler()
		room, err := carol.CreateRoom(id, h)
		if err != nil {
			fmt.Println(err)
			return
		}
		if err := room.JoinRoom(exampleToken(id, "carol"), parley.UserInfo{UserID: "carol"}, parley.RoomConfig{}); err != nil {
			fmt.Println(err)
			return
		}
		go func() {
			exampleNext(h.joined) // the bot, already in the room
			room.SendUserMessage("bot", "hello", parley.MessageConfigReliableOrdered)
			answers <- id + ": " + exampleNext(h.received)
		}()
	}
	var got []string
	for range rooms {
		got = append(got, exampleNext(answers))
	}
	slices.Sort(got) // the rooms answer in any order
	for _, a := range got {
		fmt.Println(a)
	}
	// Output:
	// room-1: bot said "hello from room-1"
	// room-2: bot said "hello from room-2"
	// room-3: bot said "hello from room-3"
}
