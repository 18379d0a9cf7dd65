// Command multiroom is a bot that sits in many rooms on one Engine, with
// one handler value per room: each handler knows its room and answers
// there. A message to the bot gets an answer from the same room; a
// message to the whole room gets an answer to the whole room.
//
//	go run ./examples/multiroom              # embedded server, 5 rooms, a visitor says hello in each
//	go run ./examples/multiroom -rooms 100   # the same with 100 rooms
//
// With -server it joins the rooms of that server instead and answers until
// Ctrl-C:
//
//	go build -o parleyd ./cmd/parleyd && ./parleyd serve &
//	go run ./examples/multiroom -server ws://127.0.0.1:7880/rtc -rooms 1000
//
// It signs its own tokens with the app key, as a backend service holding
// the key may; a client app would get them from its token service.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"time"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/server"
	"github.com/parleyhq/parley/token"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "multiroom:", err)
		os.Exit(1)
	}
}

// config is what the flags set.
type config struct {
	server, appID, appKey, user, prefix string
	rooms                               int
	loopback                            bool
}

// The embedded server's app.
const (
	localAppID  = "multiroommultiroommulti1" // 24 characters, as tokens need
	localAppKey = "multiroom-key"
)

// waitFor bounds every wait for the server: joins, answers.
const waitFor = 60 * time.Second

// run parses args and runs the bot: against an embedded server with a
// visitor that says hello in every room, then exits; or, with -server,
// until ctx is done. It says what happens on out.
func run(ctx context.Context, args []string, out io.Writer) error {
	var c config
	fs := flag.NewFlagSet("multiroom", flag.ContinueOnError)
	fs.StringVar(&c.server, "server", "", "signaling URL (default: start a server in the process, visit every room, exit)")
	fs.StringVar(&c.appID, "app-id", "parleydevparleydevparley", "AppID with -server (default: parleyd's development app)")
	fs.StringVar(&c.appKey, "app-key", "parley-dev-key-not-secret", "AppKey the bot signs its tokens with, with -server")
	fs.IntVar(&c.rooms, "rooms", 5, "how many rooms to join")
	fs.StringVar(&c.prefix, "prefix", "room-", "room IDs are the prefix and 1, 2, …")
	fs.StringVar(&c.user, "user", "bot", "the bot's user ID")
	fs.BoolVar(&c.loopback, "loopback", true, "ICE on 127.0.0.1 only (a server on this host)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.rooms < 1 {
		return errors.New("-rooms must be at least 1")
	}
	demo := c.server == ""
	if demo {
		srv, err := server.New(server.Config{Listen: "127.0.0.1:0", Apps: map[string]string{localAppID: localAppKey}})
		if err != nil {
			return err
		}
		if err := srv.Start(); err != nil {
			return err
		}
		defer srv.Shutdown(context.Background())
		c.server, c.appID, c.appKey, c.loopback = srv.URL(), localAppID, localAppKey, true
	}

	bot, err := startBot(ctx, c)
	if err != nil {
		return err
	}
	defer bot.Close()
	fmt.Fprintf(out, "multiroom: %s is in %d rooms on one Engine\n", c.user, c.rooms)
	if demo {
		if err := visit(c, out); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(out, "multiroom: Ctrl-C to stop")
		<-ctx.Done()
		fmt.Fprintln(out, "multiroom: stopping")
	}
	if err := bot.Close(); err != nil {
		return err
	}
	<-bot.Done()
	return nil
}

// roomIDs are the rooms of c.
func roomIDs(c config) []string {
	ids := make([]string, c.rooms)
	for i := range ids {
		ids[i] = fmt.Sprintf("%s%d", c.prefix, i+1)
	}
	return ids
}

// startBot creates the bot's Engine, joins every room with a handler of
// its own, and returns once all are joined.
func startBot(ctx context.Context, c config) (*parley.Engine, error) {
	var opts []parley.Option
	if c.loopback {
		opts = append(opts, parley.WithLoopbackOnly())
	}
	e, err := parley.NewEngine(parley.EngineConfig{AppID: c.appID, ServerURL: c.server}, nil, opts...)
	if err != nil {
		return nil, err
	}
	joined := make(chan error, c.rooms)
	for _, id := range roomIDs(c) {
		h := &roomBot{joined: joined}
		tok, err := mint(c, id, c.user)
		var room *parley.Room
		if err == nil {
			room, err = e.CreateRoom(id, h)
		}
		if err == nil {
			h.room = room // before the join: no event of the room comes before it
			err = room.JoinRoom(tok, parley.UserInfo{UserID: c.user, ExtraInfo: "multiroom bot"}, parley.RoomConfig{})
		}
		if err != nil {
			e.Close()
			return nil, err
		}
	}
	timeout := time.After(waitFor)
	for range c.rooms {
		select {
		case err := <-joined:
			if err != nil {
				e.Close()
				return nil, err
			}
		case <-ctx.Done():
			e.Close()
			return nil, ctx.Err()
		case <-timeout:
			e.Close()
			return nil, fmt.Errorf("not in all %d rooms within %v", c.rooms, waitFor)
		}
	}
	return e, nil
}

// roomBot is the handler of one room: it knows its room and answers
// there. Every room's handler runs on the Engine's one callback goroutine,
// one call at a time, so its fields need no lock; a send from a callback
// is fine.
type roomBot struct {
	parley.NopRoomEventHandler
	room     *parley.Room
	joined   chan<- error // the join's outcome, once
	answered int          // messages answered in this room
	reported bool         // joined has had its value
}

func (b *roomBot) OnRoomStateChanged(roomID, _ string, state int, _ parley.RoomStateInfo) {
	var err error
	if state != 0 {
		err = fmt.Errorf("room %s: %v", roomID, parley.ErrorCode(state))
	}
	if !b.reported {
		b.reported = true
		b.joined <- err
	}
	// Later states (a rejoin after a reconnect, a removal) need nothing
	// here: the SDK rejoins by itself; a room lost stays out.
}

func (b *roomBot) OnUserMessageReceived(from, m string) {
	b.answered++
	b.room.SendUserMessage(from, b.answer(m), parley.MessageConfigReliableOrdered)
}

func (b *roomBot) OnRoomMessageReceived(_, m string) {
	b.answered++
	b.room.SendRoomMessage(b.answer(m))
}

// answer is the bot's reply to m: which room, and how many it answered
// there.
func (b *roomBot) answer(m string) string {
	return fmt.Sprintf("%s (answer %d in %s)", m, b.answered, b.room.RoomID())
}

// visit joins every room as "visitor" on one Engine, says hello to the bot
// in each, and prints the answers, in room order.
func visit(c config, out io.Writer) error {
	e, err := parley.NewEngine(parley.EngineConfig{AppID: c.appID, ServerURL: c.server}, nil, parley.WithLoopbackOnly())
	if err != nil {
		return err
	}
	defer e.Close()
	answers := make(chan string, c.rooms)
	for _, id := range roomIDs(c) {
		v := &visitor{bot: c.user, answers: answers}
		tok, err := mint(c, id, "visitor")
		var room *parley.Room
		if err == nil {
			room, err = e.CreateRoom(id, v)
		}
		if err == nil {
			v.room = room
			err = room.JoinRoom(tok, parley.UserInfo{UserID: "visitor"}, parley.RoomConfig{})
		}
		if err != nil {
			return err
		}
	}
	var got []string
	timeout := time.After(waitFor)
	for range c.rooms {
		select {
		case a := <-answers:
			got = append(got, a)
		case <-timeout:
			return fmt.Errorf("%d of %d answers within %v", len(got), c.rooms, waitFor)
		}
	}
	slices.SortFunc(got, func(a, b string) int { // room-2 before room-10
		return cmp.Or(cmp.Compare(len(a), len(b)), strings.Compare(a, b))
	})
	for _, a := range got {
		fmt.Fprintln(out, a)
	}
	if err := e.Close(); err != nil {
		return err
	}
	<-e.Done()
	return nil
}

// visitor is the visitor's handler of one room: once the bot is seen
// there, it says hello to it, and passes the answer on.
type visitor struct {
	parley.NopRoomEventHandler
	room    *parley.Room
	bot     string
	answers chan<- string
}

func (v *visitor) OnUserJoined(u parley.UserInfo) {
	if u.UserID == v.bot {
		v.room.SendUserMessage(v.bot, "hello", parley.MessageConfigReliableOrdered)
	}
}

func (v *visitor) OnUserMessageReceived(from, m string) {
	v.answers <- fmt.Sprintf("%s: %s answered %q", v.room.RoomID(), from, m)
}

// mint signs a token for user in room, valid 24 hours.
func mint(c config, room, user string) (string, error) {
	t := token.New(c.appID, c.appKey, room, user)
	expire := time.Now().Add(24 * time.Hour)
	t.ExpireTime(expire)
	t.AddPrivilege(token.PrivPublishStream, expire)
	t.AddPrivilege(token.PrivSubscribeStream, expire)
	return t.Serialize()
}
