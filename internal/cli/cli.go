// Package cli is the parley command: "parley bench" runs a load test
// against a parleyd (package bench does the work). cmd/parley only wires
// Main to the process: arguments, standard streams, signals and the exit
// code.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/parleyhq/parley/internal/bench"
	"github.com/parleyhq/parley/internal/flagusage"
)

// ErrUsage is wrapped by the errors of a command line that cannot run: an
// unknown command, a bad flag, a bad value. cmd/parley exits 2 for them,
// 1 for any other error.
var ErrUsage = errors.New("usage")

// ErrInterrupted reports a bench that a signal ended early: its summary
// of what ran was written, and cmd/parley exits 130, as a shell reports an
// interrupted command, so that scripts do not take it for a full run.
var ErrInterrupted = errors.New("interrupted")

// Main runs the parley command line args (without the program name),
// writing results to stdout and progress and diagnostics to stderr.
// "bench" runs until it is done or ctx is done; then it prints what ran.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	err := run(ctx, args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) { // -h: the flag set has printed its usage
		return nil
	}
	return err
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		printUsage(stderr)
		return fmt.Errorf("%w: no command", ErrUsage)
	}
	cmd, args := args[0], args[1:]
	switch cmd {
	case "bench":
		return runBench(ctx, args, stdout, stderr)
	case "version":
		if len(args) > 0 {
			return fmt.Errorf("%w: version takes no arguments", ErrUsage)
		}
		_, err := fmt.Fprintln(stdout, "parley", version(), runtime.Version())
		return err
	case "help", "-h", "-help", "--help":
		switch {
		case len(args) == 0:
			printUsage(stdout)
			return nil
		case len(args) > 1:
			return fmt.Errorf("%w: help takes at most one command", ErrUsage)
		case args[0] == "bench":
			benchFlags(new(bench.Config), stdout).Usage()
			return nil
		case args[0] == "help" || args[0] == "version":
			printUsage(stdout)
			return nil
		}
		return fmt.Errorf("%w: unknown command %q (run \"parley help\")", ErrUsage, args[0])
	default:
		return fmt.Errorf("%w: unknown command %q (run \"parley help\")", ErrUsage, cmd)
	}
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `parley is Parley's client tool.

Usage:
  parley bench [flags]    load-test a parleyd: many members in rooms, or a bot in many rooms
  parley version          print the version
  parley help [command]   print this help, or a command's

Run "parley help bench" for the flags of bench.
`)
}

const benchDoc = `Drives a parleyd with Engines of the Go SDK and reports what it measured.

--mode rooms: --members Engines, one member each, join rooms of --room-size
(the last room may be smaller), --join-concurrency joins at a time. Once
all have joined, each room broadcasts --rate messages of --payload bytes a
second (binary room messages), its members taking turns to send. Every
member counts what it receives.

--mode bot: one Engine (the bot) joins --rooms rooms, after a peer has
joined each (--peer-rooms rooms per peer Engine, 1 by default). In each
room the bot sends --rate reliable user messages a second to the peer,
which echoes each back: the bot's join time per room, the one-way
latencies and the round trips are measured.

Sending starts when the joins are done; the first --warmup is not
measured, then --duration is. A message is measured when it is sent in
that window, wherever it arrives; its delivery latency is from the Send
call to the receiver's callback (timestamp in the payload, one process,
one monotonic clock). After the window the tool waits up to --drain for
results and messages in flight, closes every Engine and prints a summary
(text, or JSON with --json): joins, latency p50/p90/p99/p99.9/max (HDR
histograms), messages sent/expected/delivered/lost, send results by code,
and with --metrics the server's CPU (percent of one core), RSS, goroutines
and heap, in total and per member. The load process's own CPU is in it
too: on as many cores as the server, it may saturate first. So are its
garbage collections while measuring: thousands of Engines in one process
make a heap of gigabytes, and its collections delay the receipt of
deliveries as if the server had been slow (the summary warns when there
were any). --gc-budget keeps them out, at the price of the tool's RSS.
With it the tool maps 90% of the budget before the joins (--pretouch), so
that its heap's growth does not page-fault during the run: on a VM with
costly page faults that halved the joins of a room of 2,000. It takes
at most three quarters of the memory available (or of its cgroup's limit).

On a terminal a progress line (phase, joins, messages/s, the last
second's p50/p99, CPU) is updated every second; otherwise a plain line
goes to stderr every 5 s (--quiet: none). SIGINT or SIGTERM stops the run
and prints a summary of what ran, then exits 130; a second signal kills
it. With a loopback --url, ICE stays on loopback. The tool raises its descriptor
limit (RLIMIT_NOFILE) to the hard limit when it needs more, and says so if
it cannot.`

func benchFlags(cfg *bench.Config, output io.Writer) *flag.FlagSet {
	*cfg = bench.DefaultConfig()
	fs := bench.Flags(cfg, output)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: parley bench [flags]\n\n%s\n\nFlags:\n", benchDoc)
		flagusage.Print(fs.Output(), fs, 28)
	}
	return fs
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var cfg bench.Config
	fs := benchFlags(&cfg, stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: bench: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	progress := bench.Progress{}
	switch {
	case bench.IsTerminal(stdout):
		progress = bench.Progress{W: stdout, Terminal: true}
	case !cfg.Quiet:
		progress = bench.Progress{W: stderr}
	}
	s, err := bench.Run(ctx, cfg, progress)
	if errors.Is(err, bench.ErrConfig) {
		return fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if err != nil {
		return err
	}
	if cfg.JSON {
		err = s.WriteJSON(stdout)
	} else {
		err = s.WriteText(stdout)
	}
	if err == nil && s.Interrupted {
		err = fmt.Errorf("bench %w in the %s phase", ErrInterrupted, s.Phase)
	}
	return err
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
