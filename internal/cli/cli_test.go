package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/parleyhq/parley/internal/bench"
	"github.com/parleyhq/parley/parleytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func runMain(args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	err = Main(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestHelp(t *testing.T) {
	out, _, err := runMain("help")
	require.NoError(t, err)
	assert.Contains(t, out, "parley bench [flags]")

	out, _, err = runMain("help", "bench")
	require.NoError(t, err)
	for _, flag := range []string{"--mode", "--members", "--room-size", "--rooms", "--peer-rooms", "--rate",
		"--payload", "--warmup", "--duration", "--drain", "--join-concurrency", "--join-timeout",
		"--metrics", "--url", "--app-id", "--app-key", "--json", "--quiet", "--room-prefix"} {
		assert.Contains(t, out, "  "+flag+" ", "help bench documents %s", flag)
	}
	assert.Contains(t, out, "(default ws://127.0.0.1:7880/rtc)")
	assert.Contains(t, out, "(default 30s)")

	// -h prints the same to stderr and is not an error.
	_, errOut, err := runMain("bench", "-h")
	require.NoError(t, err)
	assert.Contains(t, errOut, "--join-concurrency")
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{},
		{"frobnicate"},
		{"help", "frobnicate"},
		{"version", "extra"},
		{"bench", "--no-such-flag"},
		{"bench", "extra"},
		{"bench", "--members", "1"},
		{"bench", "--mode", "mesh"},
		{"bench", "--payload", "10"},
	} {
		_, _, err := runMain(args...)
		assert.ErrorIs(t, err, ErrUsage, "%q", args)
	}
}

func TestVersion(t *testing.T) {
	out, _, err := runMain("version")
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(out, "parley "), out)
}

// TestBenchJSON runs `parley bench --json` against a test server: stdout
// is the JSON summary and nothing else, the progress lines are on stderr.
func TestBenchJSON(t *testing.T) {
	srv := parleytest.NewServer(t)
	out, errOut, err := runMain("bench", "--url", srv.URL, "--app-id", srv.AppID, "--app-key", srv.AppKey,
		"--members", "4", "--room-size", "2", "--rate", "20", "--warmup", "200ms", "--duration", "1s", "--json")
	require.NoError(t, err, errOut)
	var s bench.Summary
	require.NoError(t, json.Unmarshal([]byte(out), &s), out)
	assert.Equal(t, "rooms", s.Mode)
	assert.Equal(t, 4, s.Joins.Joined)
	assert.Positive(t, s.Messages.Delivered)
	assert.Equal(t, s.Messages.Sent, s.Messages.Expected, "rooms of 2: one delivery per broadcast")
	assert.LessOrEqual(t, s.Messages.Delivered, s.Messages.Expected)
	assert.Nil(t, s.Server, "no --metrics")

	out, _, err = runMain("bench", "--url", srv.URL, "--app-id", srv.AppID, "--app-key", srv.AppKey,
		"--mode", "bot", "--rooms", "2", "--warmup", "0s", "--duration", "500ms", "--quiet")
	require.NoError(t, err)
	assert.Contains(t, out, "parley bench: a bot in 2 rooms")
	assert.Contains(t, out, "round trip")
}

// TestBenchInterrupted: a bench ended by a signal (its context cancelled)
// still writes its summary, and reports ErrInterrupted, so that cmd/parley
// exits non-zero rather than passing for a full run.
func TestBenchInterrupted(t *testing.T) {
	srv := parleytest.NewServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errb bytes.Buffer
	err := Main(ctx, []string{"bench", "--url", srv.URL, "--app-id", srv.AppID, "--app-key", srv.AppKey,
		"--members", "2", "--room-size", "2", "--warmup", "0s", "--duration", "10s", "--json"}, &out, &errb)
	require.ErrorIs(t, err, ErrInterrupted, errb.String())
	var s bench.Summary
	require.NoError(t, json.Unmarshal(out.Bytes(), &s), out.String())
	assert.True(t, s.Interrupted)
}
