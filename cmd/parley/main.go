// Command parley is Parley's client tool; run "parley help" for its usage.
// "parley bench" is a load generator for any parleyd. The logic is in
// internal/cli and internal/bench.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/parleyhq/parley/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one kills the process at once.
	context.AfterFunc(ctx, stop)
	err := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "parley:", err)
		switch {
		case errors.Is(err, cli.ErrUsage):
			os.Exit(2)
		case errors.Is(err, cli.ErrInterrupted):
			os.Exit(130)
		}
		os.Exit(1)
	}
}
