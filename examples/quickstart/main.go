// Command quickstart starts a Parley server inside the process, then two
// Engines, alice and bob, that join one room and see each other. Every
// callback is printed. It exits 0 once both have seen each other and left.
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
	alice, aliceSaw, err := join(srv.URL(), "alice")
	if err != nil {
		return err
	}
	defer alice.Close()
	bob, bobSaw, err := join(srv.URL(), "bob")
	if err != nil {
		return err
	}
	defer bob.Close()

	timeout := time.After(20 * time.Second)
	for _, saw := range []chan struct{}{aliceSaw, bobSaw} {
		select {
		case <-saw:
		case <-timeout:
			return errors.New("the two Engines did not see each other within 20s")
		}
	}

	// 3. Close both: they leave the room (the other sees Quit) and stop.
	for _, e := range []*parley.Engine{bob, alice} {
		if err := e.Close(); err != nil {
			return err
		}
		<-e.Done()
	}
	fmt.Println("done: alice and bob joined the room and saw each other")
	return nil
}

// join creates an Engine for user and joins the room with a fresh token.
func join(url, user string) (*parley.Engine, chan struct{}, error) {
	e, err := parley.NewEngine(parley.EngineConfig{AppID: appID, ServerURL: url},
		engineHandler{user: user}, parley.WithLoopbackOnly())
	if err != nil {
		return nil, nil, err
	}
	h := &roomHandler{user: user, saw: make(chan struct{})}
	room, err := e.CreateRoom(roomID, h)
	if err != nil {
		return nil, nil, err
	}
	tok, err := mint(user)
	if err != nil {
		return nil, nil, err
	}
	if err := room.JoinRoom(tok, parley.UserInfo{UserID: user, ExtraInfo: "I am " + user}, parley.RoomConfig{}); err != nil {
		return nil, nil, err
	}
	return e, h.saw, nil
}

// mint signs a room token, as an application's token service would.
func mint(user string) (string, error) {
	t := token.New(appID, appKey, roomID, user)
	expire := time.Now().Add(time.Hour)
	t.ExpireTime(expire)
	t.AddPrivilege(token.PrivPublishStream, expire)
	t.AddPrivilege(token.PrivSubscribeStream, expire)
	return t.Serialize()
}

type engineHandler struct {
	user string
	parley.NopEngineEventHandler
}

func (h engineHandler) OnConnectionStateChanged(s parley.ConnectionState) {
	fmt.Printf("[%s] OnConnectionStateChanged(%v)\n", h.user, s)
}

// roomHandler runs on the Engine's callback goroutine, one call at a time,
// so it needs no lock of its own.
type roomHandler struct {
	parley.NopRoomEventHandler
	user string
	saw  chan struct{}
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
