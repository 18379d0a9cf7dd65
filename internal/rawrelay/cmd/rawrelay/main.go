// Command rawrelay runs the raw pion relay of package rawrelay, the floor
// of the server-capacity rows in docs/performance.md:
//
//	taskset -c 0 go run ./internal/rawrelay/cmd/rawrelay serve
//	taskset -c 1 go run ./internal/rawrelay/cmd/rawrelay load --members 1000 --room-size 5 --rate 10
//
// Build it first (go build -o rawrelay ./internal/rawrelay/cmd/rawrelay)
// so that taskset pins the relay, not the go command.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"time"

	"github.com/parleyhq/parley/internal/rawrelay"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: rawrelay serve|load [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	switch os.Args[1] {
	case "serve":
		err = serve(ctx, os.Args[2:])
	case "load":
		err = load(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: serve or load", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "rawrelay:", err)
		os.Exit(1)
	}
}

func serve(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	httpAddr := fs.String("http", "127.0.0.1:7890", "HTTP endpoint's address (offers, /cpu)")
	udpAddr := fs.String("udp", "127.0.0.1:7892", "ICE socket's address, a loopback one")
	fs.Parse(args)
	s, err := rawrelay.Listen(*httpAddr, *udpAddr)
	if err != nil {
		return err
	}
	fmt.Fprintln(os.Stderr, "rawrelay: serving on", s.URL())
	<-ctx.Done()
	return s.Close()
}

func load(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("load", flag.ExitOnError)
	var cfg rawrelay.LoadConfig
	fs.StringVar(&cfg.URL, "url", "http://127.0.0.1:7890", "the relay's HTTP endpoint")
	fs.IntVar(&cfg.Members, "members", 100, "members, one PeerConnection each")
	fs.IntVar(&cfg.RoomSize, "room-size", 5, "members per room")
	fs.Float64Var(&cfg.Rate, "rate", 10, "messages per second per room")
	fs.IntVar(&cfg.Payload, "payload", 64, "message size in bytes (8 or more)")
	fs.DurationVar(&cfg.Warmup, "warmup", 5*time.Second, "sending before the measurement")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "length of the measurement")
	fs.IntVar(&cfg.JoinConcurrency, "join-concurrency", 32, "offers in flight at once")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	fs.Parse(args)
	res, err := rawrelay.Load(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	fmt.Println(res)
	return nil
}
