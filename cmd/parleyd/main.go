// Command parleyd is the Parley relay server; run "parleyd help" for its
// usage. The logic is in internal/parleyd.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/parleyhq/parley/internal/parleyd"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first signal, a second one kills the process at once.
	context.AfterFunc(ctx, stop)
	err := parleyd.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "parleyd:", err)
		if errors.Is(err, parleyd.ErrUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
