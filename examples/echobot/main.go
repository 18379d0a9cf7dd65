// Command echobot logs in, joins one room, and answers every message it
// gets — in the room (to the sender alone, or to the room for a broadcast)
// or outside any room — with the same text or bytes, until SIGINT.
//
//	go build -o parleyd ./cmd/parleyd && ./parleyd serve &   # development server
//	go run ./examples/echobot -room lobby                    # its development credentials
//
// It signs its own tokens with the app key, as a backend service holding
// the key may; a client app would get them from its token service.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"time"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/token"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "echobot:", err)
		os.Exit(1)
	}
}

// config is what the flags set.
type config struct {
	server, appID, appKey, room, user string
	loopback                          bool
}

// run parses args, runs the bot until ctx is done, and says what it does
// on out.
func run(ctx context.Context, args []string, out io.Writer) error {
	var c config
	fs := flag.NewFlagSet("echobot", flag.ContinueOnError)
	fs.StringVar(&c.server, "server", "ws://127.0.0.1:7880/rtc", "signaling URL")
	fs.StringVar(&c.appID, "app-id", "parleydevparleydevparley", "AppID (default: parleyd's development app)")
	fs.StringVar(&c.appKey, "app-key", "parley-dev-key-not-secret", "AppKey the bot signs its tokens with")
	fs.StringVar(&c.room, "room", "", "room to join (required)")
	fs.StringVar(&c.user, "user", "echobot", "the bot's user ID")
	fs.BoolVar(&c.loopback, "loopback", true, "ICE on 127.0.0.1 only (a server on this host)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.room == "" {
		return errors.New("-room is required")
	}
	return serve(ctx, c, out)
}

func serve(ctx context.Context, c config, out io.Writer) error {
	var opts []parley.Option
	if c.loopback {
		opts = append(opts, parley.WithLoopbackOnly())
	}
	bot := &bot{out: out, ready: make(chan error, 2)}
	e, err := parley.NewEngine(parley.EngineConfig{AppID: c.appID, ServerURL: c.server}, bot, opts...)
	if err != nil {
		return err
	}
	defer e.Close()
	bot.engine = e
	room, err := e.CreateRoom(c.room, bot)
	if err != nil {
		return err
	}
	bot.room = room
	loginToken, err := mint(c, "")
	if err != nil {
		return err
	}
	roomToken, err := mint(c, c.room)
	if err != nil {
		return err
	}
	if err := e.Login(loginToken, c.user); err != nil {
		return err
	}
	if err := room.JoinRoom(roomToken, parley.UserInfo{UserID: c.user, ExtraInfo: "echo bot"}, parley.RoomConfig{}); err != nil {
		return err
	}
	for range 2 { // the login and the join
		select {
		case err := <-bot.ready:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return nil
		case <-time.After(30 * time.Second):
			return errors.New("no login or join result within 30s")
		}
	}
	fmt.Fprintf(out, "echobot: %s is logged in and in room %s; Ctrl-C to stop\n", c.user, c.room)
	<-ctx.Done()
	fmt.Fprintln(out, "echobot: stopping")
	return e.Close()
}

// mint signs a token for the bot, valid 24 hours; room "" is a login token.
func mint(c config, room string) (string, error) {
	t := token.New(c.appID, c.appKey, room, c.user)
	expire := time.Now().Add(24 * time.Hour)
	t.ExpireTime(expire)
	t.AddPrivilege(token.PrivPublishStream, expire)
	t.AddPrivilege(token.PrivSubscribeStream, expire)
	return t.Serialize()
}

// bot answers everything. Its methods run on the Engine's callback
// goroutine, one at a time; sends from a callback are fine.
type bot struct {
	parley.NopEngineEventHandler
	parley.NopRoomEventHandler
	out    io.Writer
	engine *parley.Engine
	room   *parley.Room
	ready  chan error // the login's and the join's outcome
}

func (b *bot) OnLoginResult(user string, code parley.LoginErrorCode, _ time.Duration) {
	if code != parley.LoginErrorCodeSuccess {
		b.ready <- fmt.Errorf("login as %s: %v", user, code)
		return
	}
	b.ready <- nil
}

func (b *bot) OnRoomStateChanged(roomID, _ string, state int, _ parley.RoomStateInfo) {
	if state != 0 {
		err := fmt.Errorf("room %s: state %v", roomID, parley.ErrorCode(state))
		select {
		case b.ready <- err:
		default:
			fmt.Fprintln(b.out, "echobot:", err)
		}
		return
	}
	b.ready <- nil
}

func (b *bot) OnUserMessageReceived(from, m string) {
	fmt.Fprintf(b.out, "echobot: %s said %q in the room\n", from, m)
	b.room.SendUserMessage(from, m, parley.MessageConfigReliableOrdered)
}

func (b *bot) OnUserBinaryMessageReceived(from string, m []byte) {
	b.room.SendUserBinaryMessage(from, m, parley.MessageConfigReliableOrdered)
}

func (b *bot) OnRoomMessageReceived(from, m string) {
	fmt.Fprintf(b.out, "echobot: %s said %q to the room\n", from, m)
	b.room.SendRoomMessage(m)
}

func (b *bot) OnRoomBinaryMessageReceived(_ string, m []byte) {
	b.room.SendRoomBinaryMessage(m)
}

func (b *bot) OnUserMessageReceivedOutsideRoom(from, m string) {
	fmt.Fprintf(b.out, "echobot: %s said %q outside the room\n", from, m)
	b.engine.SendUserMessageOutsideRoom(from, m, parley.MessageConfigReliableOrdered)
}

func (b *bot) OnUserBinaryMessageReceivedOutsideRoom(from string, m []byte) {
	b.engine.SendUserBinaryMessageOutsideRoom(from, m, parley.MessageConfigReliableOrdered)
}

func (b *bot) OnLogout(reason parley.LogoutReason) {
	fmt.Fprintln(b.out, "echobot: logged out:", reason)
}
