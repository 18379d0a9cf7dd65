// Command quickstart starts a Parley server inside the process, then two
// Engines, alice and bob, that join one room and see each other. Alice
// sends bob one message of each kind: text and binary to him, text and
// binary to the whole room. Then both log in, and alice asks whether bob is
// online and sends him a message outside the room. Every callback is
// printed. It exits 0 once every message has arrived and every send has
// its result.
//
//	go run ./examples/quickstart
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/server"
	"github.com/parleyhq/parley/token"
)

const (
	appID  = "quickstartquickstartqs01" // 24 characters, as tokens require
	appKey = "quickstart-key"
	roomID = "lobby"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "quickstart:", err)
		os.Exit(1)
	}
}

func run() error {
	// 1. An embedded server on loopback, ephemeral ports.
	srv, err := server.New(server.Config{Listen: "127.0.0.1:0", Apps: map[string]string{appID: appKey}})
	if err != nil {
		return err
	}
	if err := srv.Start(); err != nil {
		return err
	}
	defer srv.Shutdown(context.Background())
	fmt.Println("server listening at", srv.URL())

	// 2. Two Engines join the room. Each prints its callbacks and reports on
	// a channel once it has seen the other.
	alice, aliceRoom, aliceE, aliceH, err := join(srv.URL(), "alice")
	if err != nil {
		return err
	}
	defer alice.Close()
	bob, _, bobE, bobH, err := join(srv.URL(), "bob")
	if err != nil {
		return err
	}
	defer bob.Close()

	timeout := time.After(20 * time.Second)
	aliceResults, bobReceived := aliceH.results, bobH.received
	for _, saw := range []chan struct{}{aliceH.saw, bobH.saw} {
		select {
		case <-saw:
		case <-timeout:
			return errors.New("the two Engines did not see each other within 20s")
		}
	}

	// 3. Alice sends one message of each kind. Each send returns its ID at
	// once; its result comes in a callback.
	room := aliceRoom // alice's Room: sends go through the room they are for
	fmt.Println("alice sends: reliable text, unreliable binary, room text, room binary")
	room.SendUserMessage("bob", "hello bob", parley.MessageConfigReliableOrdered)
	room.SendUserBinaryMessage("bob", []byte{0xca, 0xfe}, parley.MessageConfigUnreliableOrdered)
	room.SendRoomMessage("hello room")
	room.SendRoomBinaryMessage([]byte{0xbe, 0xef})
	for _, done := range []chan struct{}{aliceResults, bobReceived} {
		select {
		case <-done:
		case <-timeout:
			return errors.New("messages or results missing after 20s")
		}
	}

	// 4. Both log in: a login reaches a user wherever they are, in a room
	// or not. Alice asks about bob and writes to him outside the room.
	for _, x := range []struct {
		e    *parley.Engine
		user string
		h    *engineHandler
	}{{alice, "alice", aliceE}, {bob, "bob", bobE}} {
		tok, err := mint("", x.user) // room "": a login token
		if err != nil {
			return err
		}
		if err := x.e.Login(tok, x.user); err != nil {
			return err
		}
		if err := wait(x.h.loggedIn, timeout); err != nil {
			return err
		}
	}
	if err := alice.GetPeerOnlineStatus("bob"); err != nil {
		return err
	}
	alice.SendUserMessageOutsideRoom("bob", "hello outside", parley.MessageConfigReliableOrdered)
	for _, done := range []chan struct{}{aliceE.status, aliceE.sent, bobE.received} {
		if err := wait(done, timeout); err != nil {
			return err
		}
	}

	// 5. Close both: they leave the room (the other sees Quit), log out and
	// stop.
	for _, e := range []*parley.Engine{bob, alice} {
		if err := e.Close(); err != nil {
			return err
		}
		<-e.Done()
	}
	fmt.Println("done: alice and bob joined the room, saw each other and exchanged messages in it and outside it")
	return nil
}

// join creates an Engine for user and joins the room with a fresh token.
func join(url, user string) (*parley.Engine, *parley.Room, *engineHandler, *roomHandler, error) {
	eh := &engineHandler{user: user, loggedIn: make(chan struct{}), status: make(chan struct{}),
		sent: make(chan struct{}), received: make(chan struct{})}
	e, err := parley.NewEngine(parley.EngineConfig{AppID: appID, ServerURL: url}, eh, parley.WithLoopbackOnly())
	if err != nil {
		return nil, nil, nil, nil, err
	}
	h := &roomHandler{user: user, saw: make(chan struct{}), results: make(chan struct{}), received: make(chan struct{})}
	room, err := e.CreateRoom(roomID, h)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	tok, err := mint(roomID, user)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	if err := room.JoinRoom(tok, parley.UserInfo{UserID: user, ExtraInfo: "I am " + user}, parley.RoomConfig{}); err != nil {
		return nil, nil, nil, nil, err
	}
	return e, room, eh, h, nil
}

// wait waits for done until timeout fires.
func wait(done chan struct{}, timeout <-chan time.Time) error {
	select {
	case <-done:
		return nil
	case <-timeout:
		return errors.New("an expected callback did not come within 20s")
	}
}

// mint signs a token for user in room ("" for a login token), as an
// application's token service would.
func mint(room, user string) (string, error) {
	t := token.New(appID, appKey, room, user)
	expire := time.Now().Add(time.Hour)
	t.ExpireTime(expire)
	t.AddPrivilege(token.PrivPublishStream, expire)
	t.AddPrivilege(token.PrivSubscribeStream, expire)
	return t.Serialize()
}

// engineHandler prints the Engine's callbacks and closes a channel at each
// step the quickstart waits for.
type engineHandler struct {
	parley.NopEngineEventHandler
	user     string
	loggedIn chan struct{}
	status   chan struct{}
	sent     chan struct{}
	received chan struct{}
}

func (h *engineHandler) OnConnectionStateChanged(s parley.ConnectionState) {
	fmt.Printf("[%s] OnConnectionStateChanged(%v)\n", h.user, s)
}

func (h *engineHandler) OnLoginResult(user string, code parley.LoginErrorCode, elapsed time.Duration) {
	fmt.Printf("[%s] OnLoginResult(%s, %v, %v)\n", h.user, user, code, elapsed.Round(time.Millisecond))
	if code == parley.LoginErrorCodeSuccess {
		close(h.loggedIn)
	}
}

func (h *engineHandler) OnGetPeerOnlineStatus(peer string, s parley.UserOnlineStatus) {
	fmt.Printf("[%s] OnGetPeerOnlineStatus(%s, %v)\n", h.user, peer, s)
	close(h.status)
}

func (h *engineHandler) OnUserMessageReceivedOutsideRoom(from, m string) {
	fmt.Printf("[%s] OnUserMessageReceivedOutsideRoom(%s, %q)\n", h.user, from, m)
	close(h.received)
}

func (h *engineHandler) OnUserMessageSendResultOutsideRoom(id int64, r parley.UserMessageSendResult) {
	fmt.Printf("[%s] OnUserMessageSendResultOutsideRoom(%d, %v)\n", h.user, id, r)
	close(h.sent)
}

func (h *engineHandler) OnLogout(r parley.LogoutReason) {
	fmt.Printf("[%s] OnLogout(%v)\n", h.user, r)
}

// roomHandler runs on the Engine's callback goroutine, one call at a time,
// so it needs no lock of its own.
type roomHandler struct {
	parley.NopRoomEventHandler
	user     string
	saw      chan struct{} // closed when the other user is seen
	results  chan struct{} // closed after the 4th send result
	received chan struct{} // closed after the 4th message received
	nResults int
	nRecv    int
}

// The four messages alice sends: 2 user messages, 2 broadcasts.
const kinds = 4

func (h *roomHandler) gotResult() {
	if h.nResults++; h.nResults == kinds {
		close(h.results)
	}
}

func (h *roomHandler) gotMessage() {
	if h.nRecv++; h.nRecv == kinds {
		close(h.received)
	}
}

func (h *roomHandler) OnUserMessageReceived(from, m string) {
	fmt.Printf("[%s] OnUserMessageReceived(%s, %q)\n", h.user, from, m)
	h.gotMessage()
}

func (h *roomHandler) OnUserBinaryMessageReceived(from string, m []byte) {
	fmt.Printf("[%s] OnUserBinaryMessageReceived(%s, %x)\n", h.user, from, m)
	h.gotMessage()
}

func (h *roomHandler) OnRoomMessageReceived(from, m string) {
	fmt.Printf("[%s] OnRoomMessageReceived(%s, %q)\n", h.user, from, m)
	h.gotMessage()
}

func (h *roomHandler) OnRoomBinaryMessageReceived(from string, m []byte) {
	fmt.Printf("[%s] OnRoomBinaryMessageReceived(%s, %x)\n", h.user, from, m)
	h.gotMessage()
}

func (h *roomHandler) OnUserMessageSendResult(id int64, r parley.UserMessageSendResult) {
	fmt.Printf("[%s] OnUserMessageSendResult(%d, %v)\n", h.user, id, r)
	h.gotResult()
}

func (h *roomHandler) OnRoomMessageSendResult(id int64, r parley.RoomMessageSendResult) {
	fmt.Printf("[%s] OnRoomMessageSendResult(%d, %v)\n", h.user, id, r)
	h.gotResult()
}

func (h *roomHandler) OnRoomStateChanged(roomID, userID string, state int, info parley.RoomStateInfo) {
	fmt.Printf("[%s] OnRoomStateChanged(%s, %s, %d, %s)\n", h.user, roomID, userID, state, info)
}

func (h *roomHandler) OnUserJoined(u parley.UserInfo) {
	fmt.Printf("[%s] OnUserJoined(%s, %q)\n", h.user, u.UserID, u.ExtraInfo)
	close(h.saw)
}

func (h *roomHandler) OnUserLeave(userID string, reason parley.UserOfflineReason) {
	fmt.Printf("[%s] OnUserLeave(%s, %v)\n", h.user, userID, reason)
}
