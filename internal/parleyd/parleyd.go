// Package parleyd is the parleyd command: `parleyd serve` runs the relay
// server of package server, `parleyd token` mints access tokens. The
// cmd/parleyd binary only wires Main to the process: arguments, standard
// streams, signals and the exit code.
package parleyd

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/parleyhq/parley/internal/flagusage"
)

// ErrUsage is wrapped by the errors of a command line that cannot run: an
// unknown command, a bad flag, a missing argument. cmd/parleyd exits 2 for
// them, 1 for any other error.
var ErrUsage = errors.New("usage")

// Version is parleyd's version. Empty means the module version the binary
// was built from, if any; set it at link time with
// -ldflags "-X github.com/parleyhq/parley/internal/parleyd.Version=v1.2.3".
var Version string

// Main runs the parleyd command line args (without the program name),
// writing results to stdout and logs and diagnostics to stderr. serve runs
// until ctx is done, then shuts the server down and returns nil.
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
	case "serve":
		return serve(ctx, args, stdout, stderr)
	case "token":
		return mintToken(args, stdout, stderr)
	case "version":
		if len(args) > 0 {
			return fmt.Errorf("%w: version takes no arguments", ErrUsage)
		}
		_, err := fmt.Fprintln(stdout, "parleyd", version(), runtime.Version())
		return err
	case "help", "-h", "-help", "--help":
		return help(args, stdout, stderr)
	default:
		return fmt.Errorf("%w: unknown command %q (run \"parleyd help\")", ErrUsage, cmd)
	}
}

func help(args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) == 0:
		printUsage(stdout)
		return nil
	case len(args) > 1:
		return fmt.Errorf("%w: help takes at most one command", ErrUsage)
	}
	switch args[0] {
	case "serve":
		fs, _ := serveFlags(stdout)
		fs.Usage()
	case "token":
		fs, _ := tokenFlags(stdout)
		fs.Usage()
	case "version", "help":
		printUsage(stdout)
	default:
		return fmt.Errorf("%w: unknown command %q (run \"parleyd help\")", ErrUsage, args[0])
	}
	return nil
}

func printUsage(w io.Writer) {
	fmt.Fprint(w, `parleyd is the Parley relay server.

Usage:
  parleyd serve [flags]    serve signaling, /healthz, /metrics and WebRTC
  parleyd token [flags]    print an access token
  parleyd version          print the version
  parleyd help [command]   print this help, or a command's

With no flags, "parleyd serve" runs a development server on 127.0.0.1
with fixed, printed credentials, which "parleyd token" uses by default.

`)
	fs, _ := serveFlags(w)
	fmt.Fprintln(w, "Flags of serve:")
	flagusage.Print(w, fs, 24)
	fs, _ = tokenFlags(w)
	fmt.Fprintln(w, "\nFlags of token:")
	flagusage.Print(w, fs, 24)
}

// usageFunc is a flag set's Usage: a synopsis, then its flags.
func usageFunc(fs *flag.FlagSet, synopsis, doc string) func() {
	return func() {
		fmt.Fprintf(fs.Output(), "Usage: %s\n\n%s\n\nFlags:\n", synopsis, doc)
		flagusage.Print(fs.Output(), fs, 24)
	}
}

// parse parses args with fs; a bad flag or a positional argument is a
// usage error, and -h returns flag.ErrHelp.
func parse(fs *flag.FlagSet, args []string) (set map[string]bool, err error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", ErrUsage, err)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("%w: %s: unexpected argument %q", ErrUsage, fs.Name(), fs.Arg(0))
	}
	set = make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set, nil
}

func version() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
