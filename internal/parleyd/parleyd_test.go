package parleyd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/parleyhq/parley/token"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testApp is a non-development app for the tests.
const (
	testAppID  = "testapptestapptestapp123"
	testAppKey = "test-key"
)

// waitLimit bounds every wait on the server; shutdown gets its own deadline.
const waitLimit = 10 * time.Second

func TestToken(t *testing.T) {
	for _, tc := range []struct {
		name          string
		args          []string
		appID, appKey string
		room, user    string
		expire        time.Duration
	}{
		{"dev credentials", []string{"--room", "demo", "--user", "alice"},
			DevAppID, DevAppKey, "demo", "alice", DefaultExpire},
		{"explicit app", []string{"--app-id", testAppID, "--app-key", testAppKey, "--room", "r.1", "--user", "u@x", "--expire", "1h"},
			testAppID, testAppKey, "r.1", "u@x", time.Hour},
		{"any room", []string{"--room", "*", "--user", "bob"},
			DevAppID, DevAppKey, "*", "bob", DefaultExpire},
		{"login with --room \"\"", []string{"--room", "", "--user", "carol"},
			DevAppID, DevAppKey, "", "carol", DefaultExpire},
		{"login with --login", []string{"--login", "--user", "dave"},
			DevAppID, DevAppKey, "", "dave", DefaultExpire},
		{"never expires", []string{"--room", "r", "--user", "u", "--expire", "0"},
			DevAppID, DevAppKey, "r", "u", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			before := time.Now()
			require.NoError(t, Main(t.Context(), append([]string{"token"}, tc.args...), &stdout, &stderr))
			after := time.Now()
			require.Empty(t, stderr.String())
			out := stdout.String()
			require.True(t, strings.HasSuffix(out, "\n"), "output %q ends with a newline", out)
			require.Equal(t, 1, strings.Count(out, "\n"), "one line")

			tok, err := token.Parse(strings.TrimSuffix(out, "\n"))
			require.NoError(t, err)
			require.True(t, tok.Verify(tc.appKey), "verifies with the key")
			require.False(t, tok.Verify(tc.appKey+"x"), "does not verify with another key")
			require.Equal(t, tc.appID, tok.AppID)
			require.Equal(t, tc.room, tok.RoomID)
			require.Equal(t, tc.user, tok.UserID)

			var wantExpire [2]uint32 // a range: the command reads the clock itself
			if tc.expire > 0 {
				wantExpire = [2]uint32{uint32(before.Add(tc.expire).Unix()), uint32(after.Add(tc.expire).Unix())}
			}
			require.GreaterOrEqual(t, tok.ExpireAt, wantExpire[0])
			require.LessOrEqual(t, tok.ExpireAt, wantExpire[1])
			require.Len(t, tok.Privileges, 5, "publish (0-3) and subscribe (4)")
			for _, p := range []uint16{0, 1, 2, 3, 4} {
				require.Contains(t, tok.Privileges, p)
				require.Equal(t, tok.ExpireAt, tok.Privileges[p], "privilege %d expires with the token", p)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "no command"},
		{"unknown command", []string{"frobnicate"}, `unknown command "frobnicate"`},
		{"unknown flag", []string{"serve", "--nope"}, "flag provided but not defined"},
		{"positional argument", []string{"serve", "extra"}, `unexpected argument "extra"`},
		{"app-id without app-key", []string{"serve", "--app-id", testAppID}, "--app-id and --app-key go together"},
		{"app-key without app-id", []string{"serve", "--app-key", testAppKey}, "--app-id and --app-key go together"},
		{"token without room", []string{"token", "--user", "u"}, "--room is required"},
		{"token without user", []string{"token", "--room", "r"}, "empty user ID"},
		{"token bad user", []string{"token", "--room", "r", "--user", "a b"}, "illegal character"},
		{"token bad room", []string{"token", "--room", "r/1", "--user", "u"}, "illegal character"},
		{"token login and room", []string{"token", "--login", "--room", "r", "--user", "u"}, "--login"},
		{"token short app-id", []string{"token", "--app-id", "short", "--room", "r", "--user", "u"}, "want 24"},
		{"token negative expire", []string{"token", "--room", "r", "--user", "u", "--expire", "-1h"}, "negative"},
		{"version argument", []string{"version", "x"}, "no arguments"},
		{"help unknown", []string{"help", "nope"}, `unknown command "nope"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := Main(t.Context(), tc.args, &stdout, &stderr)
			require.ErrorIs(t, err, ErrUsage)
			require.ErrorContains(t, err, tc.want)
			require.Empty(t, stdout.String())
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"help"}, {"-h"}, {"--help"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			require.NoError(t, Main(t.Context(), args, &stdout, &stderr))
			for _, want := range []string{
				"parleyd serve", "parleyd token", "parleyd version", "parleyd help",
				"--listen", "--udp-port", "--app-id", "--app-key", "--config", "--log-level", "--nats", "--node-id",
				"--room", "--user", "--login", "--expire", "(default 24h)", "(default 127.0.0.1:7880)",
			} {
				require.Contains(t, stdout.String(), want)
			}
		})
	}
	t.Run("usage after a bad flag shows the defaults", func(t *testing.T) {
		var stderr bytes.Buffer
		err := Main(t.Context(), []string{"token", "--app-id", "x", "--expire", "1h", "--nope"}, io.Discard, &stderr)
		require.ErrorIs(t, err, ErrUsage)
		require.Contains(t, stderr.String(), "(default "+DevAppID+")")
		require.Contains(t, stderr.String(), "(default 24h)")
		require.NotContains(t, stderr.String(), "(default x)")
		require.NotContains(t, stderr.String(), "(default false)")
	})
	for _, cmd := range []string{"serve", "token"} {
		t.Run(cmd+" -h", func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			require.NoError(t, Main(t.Context(), []string{cmd, "-h"}, &stdout, &stderr))
			require.Contains(t, stderr.String(), "Usage: parleyd "+cmd)
		})
		t.Run("help "+cmd, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			require.NoError(t, Main(t.Context(), []string{"help", cmd}, &stdout, &stderr))
			require.Contains(t, stdout.String(), "Usage: parleyd "+cmd)
		})
	}
	t.Run("version", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		require.NoError(t, Main(t.Context(), []string{"version"}, &stdout, &stderr))
		require.Regexp(t, `^parleyd \S+ go\S+\n$`, stdout.String())
	})
}

// writeFile writes a config file in a temporary directory.
func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "parleyd.yaml")
	require.NoError(t, os.WriteFile(path, []byte(text), 0o600))
	return path
}

func TestServeConfig(t *testing.T) {
	full := writeFile(t, `
listen: 127.0.0.1:9000
udp_port: 9002
apps:
  - id: `+testAppID+`
    key: `+testAppKey+`
  - id: otherappotherappotherapp
    key: other-key
log_level: debug
metrics_listen: 127.0.0.1:9001
auth_timeout: 1s
join_timeout: 2s
ping_interval: 500ms
drain_timeout: 1m
quotas:
  user_messages_per_second: 100
  broadcasts_per_second: 65
  server_messages_per_second: 20
  room_broadcasts_per_second: 100
nats: nats://127.0.0.1:4222,nats://127.0.0.1:4223
node_id: node-a
`)
	wantFull := Config{
		Listen:   "127.0.0.1:9000",
		UDPPort:  9002,
		Apps:     []App{{testAppID, testAppKey}, {"otherappotherappotherapp", "other-key"}},
		LogLevel: "debug",

		MetricsListen: "127.0.0.1:9001",
		AuthTimeout:   Duration(time.Second),
		JoinTimeout:   Duration(2 * time.Second),
		PingInterval:  Duration(500 * time.Millisecond),
		DrainTimeout:  Duration(time.Minute),
		Quotas:        Quotas{100, 65, 20, 100},
		NATS:          "nats://127.0.0.1:4222,nats://127.0.0.1:4223",
		NodeID:        "node-a",
	}

	t.Run("no flags: development server", func(t *testing.T) {
		cfg, dev, err := serveConfig(nil, io.Discard)
		require.NoError(t, err)
		require.True(t, dev)
		require.Equal(t, Config{
			Listen: "127.0.0.1:7880", UDPPort: 7882, LogLevel: "info",
			Apps: []App{{DevAppID, DevAppKey}},
		}, cfg)
		require.Len(t, DevAppID, 24)
	})
	t.Run("flags only", func(t *testing.T) {
		cfg, dev, err := serveConfig([]string{"--listen", "127.0.0.1:1", "--udp-port", "2",
			"--app-id", testAppID, "--app-key", testAppKey, "--log-level", "warn", "--metrics-listen", "127.0.0.1:3",
			"--nats", "nats://127.0.0.1:4", "--node-id", "n5"}, io.Discard)
		require.NoError(t, err)
		require.False(t, dev)
		require.Equal(t, Config{Listen: "127.0.0.1:1", UDPPort: 2, LogLevel: "warn", Apps: []App{{testAppID, testAppKey}},
			MetricsListen: "127.0.0.1:3", NATS: "nats://127.0.0.1:4", NodeID: "n5"}, cfg)
		sc := cfg.serverConfig(nil)
		require.Equal(t, "nats://127.0.0.1:4", sc.NATS)
		require.Equal(t, "n5", sc.NodeID)
	})
	t.Run("valid file", func(t *testing.T) {
		cfg, dev, err := serveConfig([]string{"--config", full}, io.Discard)
		require.NoError(t, err)
		require.False(t, dev)
		require.Equal(t, wantFull, cfg)
		require.Equal(t, time.Minute, cfg.shutdownTimeout())
	})
	t.Run("flags override file", func(t *testing.T) {
		cfg, _, err := serveConfig([]string{"--config", full, "--listen", "127.0.0.1:0",
			"--app-id", "flagappflagappflagapp123", "--app-key", "flag-key", "--log-level", "error",
			"--nats", "nats://127.0.0.1:9", "--node-id", "flag-node"}, io.Discard)
		require.NoError(t, err)
		want := wantFull
		want.Listen = "127.0.0.1:0"
		want.Apps = []App{{"flagappflagappflagapp123", "flag-key"}}
		want.LogLevel = "error"
		want.NATS = "nats://127.0.0.1:9"
		want.NodeID = "flag-node"
		require.Equal(t, want, cfg, "flags given replace the file's values; the others stay")
	})
	t.Run("partial file keeps defaults", func(t *testing.T) {
		path := writeFile(t, "apps: [{id: "+testAppID+", key: k}]\n")
		cfg, _, err := serveConfig([]string{"--config", path}, io.Discard)
		require.NoError(t, err)
		require.Equal(t, Config{Listen: DefaultListen, UDPPort: DefaultUDPPort, LogLevel: DefaultLogLevel,
			Apps: []App{{testAppID, "k"}}}, cfg)
		require.Equal(t, DefaultShutdownTimeout, cfg.shutdownTimeout())
	})
	t.Run("sample file documents every key", func(t *testing.T) {
		cfg, dev, err := serveConfig([]string{"--config", "../../cmd/parleyd/parleyd.sample.yaml"}, io.Discard)
		require.NoError(t, err)
		require.False(t, dev)
		require.Equal(t, Quotas{
			UserMessagesPerSecond:   100,
			BroadcastsPerSecond:     65,
			ServerMessagesPerSecond: 20,
			RoomBroadcastsPerSecond: 100,
		}, cfg.Quotas, "ByteRTC's production values")
		for _, v := range []reflect.Value{reflect.ValueOf(cfg), reflect.ValueOf(cfg.Quotas)} {
			for i := range v.NumField() {
				require.False(t, v.Field(i).IsZero(), "sample sets %s", v.Type().Field(i).Tag.Get("yaml"))
			}
		}
		require.Equal(t, DefaultListen, cfg.Listen)
		require.Equal(t, DefaultUDPPort, cfg.UDPPort)
	})

	for _, tc := range []struct {
		name, file string
		args       []string
		want       []string // in the error
	}{
		{name: "unknown key", file: "listen: 127.0.0.1:1\nlisten_port: 2\n", want: []string{"[2:1]", `unknown field "listen_port"`}},
		{name: "nats not a string", file: "nats: [a, b]\n", want: []string{"[1:7]", "nats"}},
		{name: "unknown nested key", file: "apps:\n  - id: " + testAppID + "\n    key: k\nquotas:\n  user_messages: 1\n", want: []string{"[5:3]", `unknown field "user_messages"`}},
		{name: "duration without unit", file: "listen: 127.0.0.1:1\nauth_timeout: 10\n", want: []string{"[2:15]", `auth_timeout: time: missing unit in duration "10"`}},
		{name: "bad duration", file: "join_timeout: soon\n", want: []string{"[1:15]", `join_timeout: time: invalid duration "soon"`}},
		{name: "duration not a scalar", file: "quotas: {}\ndrain_timeout: [1s]\n", want: []string{"[2:16]", "drain_timeout: Sequence is not a duration"}},
		{name: "syntax error", file: "listen: [\n", want: []string{"parleyd.yaml"}},
		{name: "no apps", file: "listen: 127.0.0.1:1\n", want: []string{"configures no apps"}},
		{name: "short app id", file: "apps: [{id: short, key: k}]\n", want: []string{`id "short" is 5 characters`}},
		{name: "empty key", file: "apps: [{id: " + testAppID + "}]\n", want: []string{"empty key"}},
		{name: "duplicate app", file: "apps: [{id: " + testAppID + ", key: a}, {id: " + testAppID + ", key: b}]\n", want: []string{"appears twice"}},
		{name: "negative duration", file: "apps: [{id: " + testAppID + ", key: k}]\nping_interval: -1s\n", want: []string{"ping_interval -1s is negative"}},
		{name: "negative quota", file: "apps: [{id: " + testAppID + ", key: k}]\nquotas: {broadcasts_per_second: -1}\n", want: []string{"negative rate"}},
		{name: "bad log level", file: "apps: [{id: " + testAppID + ", key: k}]\nlog_level: loud\n", want: []string{"log_level"}},
		{name: "bad udp port", args: []string{"--udp-port", "70000"}, want: []string{"udp_port 70000 out of range"}},
		{name: "bad listen", args: []string{"--listen", "nowhere"}, want: []string{`listen "nowhere"`}},
		{name: "bad metrics listen", file: "apps: [{id: " + testAppID + ", key: k}]\nmetrics_listen: nowhere\n", want: []string{`metrics_listen "nowhere"`}},
		{name: "missing file", args: []string{"--config", "/nonexistent/parleyd.yaml"}, want: []string{"no such file"}},
		{name: "dev credentials on all interfaces", args: []string{"--listen", ":7880"}, want: []string{"refusing the development credentials"}},
		{name: "dev credentials on a public address", args: []string{"--listen", "192.0.2.1:7880"}, want: []string{"refusing the development credentials"}},
		{name: "dev key with another id", args: []string{"--listen", "0.0.0.0:1", "--app-id", testAppID, "--app-key", DevAppKey}, want: []string{"refusing the development credentials"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.file != "" {
				args = append([]string{"--config", writeFile(t, tc.file)}, args...)
			}
			_, _, err := serveConfig(args, io.Discard)
			require.Error(t, err)
			require.NotErrorIs(t, err, ErrUsage)
			for _, w := range tc.want {
				require.ErrorContains(t, err, w)
			}
		})
	}
}

func TestIsLoopback(t *testing.T) {
	for addr, want := range map[string]bool{
		"127.0.0.1:7880": true, "127.1.2.3:0": true, "[::1]:7880": true, "localhost:7880": true,
		":7880": false, "0.0.0.0:7880": false, "[::]:1": false, "192.0.2.1:1": false, "example.com:1": false, "bad": false,
	} {
		assert.Equal(t, want, isLoopback(addr), addr)
	}
}

// syncBuffer is a bytes.Buffer safe for the server's logging goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

var urlRE = regexp.MustCompile(`ws://\S+/rtc`)

// running is `parleyd serve` run by Main in a goroutine.
type running struct {
	line   string // the line of stdout with the URL
	url    string // the signaling URL read from stdout
	base   string // http://host:port
	stderr *syncBuffer
	cancel context.CancelFunc
	done   chan error  // Main's result
	stdout chan string // all of stdout, once Main has returned
}

// serveInProcess runs Main serve args and waits for the URL it prints.
func serveInProcess(t *testing.T, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	r := &running{stderr: new(syncBuffer), cancel: cancel, done: make(chan error, 1), stdout: make(chan string, 1)}
	pr, pw := io.Pipe()
	go func() {
		err := Main(ctx, append([]string{"serve"}, args...), pw, r.stderr)
		pw.Close()
		r.done <- err
	}()
	urls := make(chan string, 1)
	go func() {
		var all strings.Builder
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			if u := urlRE.FindString(sc.Text()); u != "" && len(urls) == 0 && cap(urls) == 1 {
				urls <- sc.Text()
			}
		}
		r.stdout <- all.String()
	}()
	t.Cleanup(func() { // after a failure: stop the server before goleak looks
		cancel()
		select {
		case <-r.done:
		case <-time.After(waitLimit):
			t.Error("Main did not return")
		}
	})
	select {
	case r.line = <-urls:
		r.url = urlRE.FindString(r.line)
	case err := <-r.done:
		r.done <- err // for Cleanup
		t.Fatalf("Main returned before serving: %v; stderr:\n%s", err, r.stderr)
	case <-time.After(waitLimit):
		t.Fatalf("no URL on stdout; stderr:\n%s", r.stderr)
	}
	r.base = "http://" + strings.TrimSuffix(strings.TrimPrefix(r.url, "ws://"), "/rtc")
	return r
}

// stop cancels Main's context and returns what it returns, failing if it
// takes longer than the shutdown deadline.
func (r *running) stop(t *testing.T) (stdout string, err error) {
	t.Helper()
	r.cancel()
	select {
	case err = <-r.done:
		r.done <- err // for Cleanup
	case <-time.After(DefaultShutdownTimeout):
		t.Fatalf("Main did not return within %v of the cancel", DefaultShutdownTimeout)
	}
	return <-r.stdout, err
}

// get fetches url without keeping the connection (goleak).
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	c := &http.Client{Timeout: waitLimit, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get(url)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

func checkEndpoints(t *testing.T, r *running) {
	t.Helper()
	code, body := get(t, r.base+"/healthz")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok", strings.TrimSpace(body))

	code, body = get(t, r.base+"/metrics")
	require.Equal(t, http.StatusOK, code)
	for _, name := range []string{"parley_sessions", "parley_rooms", "parley_members", "parley_joins_total"} {
		require.Contains(t, body, "\n"+name, "metric %s", name)
	}
}

// requireJSONLogs checks that every stderr line is a JSON object.
func requireJSONLogs(t *testing.T, stderr string) {
	t.Helper()
	require.NotEmpty(t, stderr)
	for line := range strings.Lines(stderr) {
		var v map[string]any
		require.NoError(t, json.Unmarshal([]byte(line), &v), "log line %q", line)
		require.Contains(t, v, "level")
		require.Contains(t, v, "msg")
	}
}

func TestServeDevelopment(t *testing.T) {
	r := serveInProcess(t, "--listen", "127.0.0.1:0", "--udp-port", "0")
	require.True(t, strings.HasPrefix(r.url, "ws://127.0.0.1:"), r.url)
	checkEndpoints(t, r)

	banner, err := r.stop(t)
	require.NoError(t, err)
	for _, want := range []string{"development server", r.url, "AppID   " + DevAppID, "AppKey  " + DevAppKey} {
		require.Contains(t, banner, want)
	}
	// The printed command mints a token the development server accepts.
	cmd := regexp.MustCompile(`(?m)^\s*parleyd (token .*)$`).FindStringSubmatch(banner)
	require.NotNil(t, cmd, "banner has a token command:\n%s", banner)
	var stdout bytes.Buffer
	require.NoError(t, Main(t.Context(), strings.Fields(cmd[1]), &stdout, io.Discard))
	tok, err := token.Parse(strings.TrimSpace(stdout.String()))
	require.NoError(t, err)
	require.Equal(t, DevAppID, tok.AppID)
	require.True(t, tok.Verify(DevAppKey))

	logs := r.stderr.String()
	requireJSONLogs(t, logs)
	require.Contains(t, logs, `"msg":"shutting down"`)
	require.Contains(t, logs, "development credentials")
	require.NotContains(t, logs, `"msg":"quotas"`)
}

func TestServeConfigFileAndDrain(t *testing.T) {
	path := writeFile(t, `
listen: 127.0.0.1:7880
udp_port: 7882
apps: [{id: `+testAppID+`, key: `+testAppKey+`}]
log_level: debug
drain_timeout: 5s
quotas:
  broadcasts_per_second: 65
`)
	// The flags move the server to free ports.
	r := serveInProcess(t, "--config", path, "--listen", "127.0.0.1:0", "--udp-port", "0")
	checkEndpoints(t, r)

	// A connected client is told the server is going away.
	ws, resp, err := websocket.DefaultDialer.DialContext(t.Context(), r.url, nil)
	require.NoError(t, err)
	resp.Body.Close()
	defer ws.Close()
	// Its first frame (Welcome) shows the server has registered the session;
	// one upgraded but not yet registered when Shutdown starts is closed
	// without a close frame.
	require.NoError(t, ws.SetReadDeadline(time.Now().Add(waitLimit)))
	_, _, err = ws.ReadMessage()
	require.NoError(t, err)
	readErr := make(chan error, 1)
	go func() {
		for {
			if _, _, err := ws.ReadMessage(); err != nil {
				readErr <- err
				return
			}
		}
	}()

	stdout, err := r.stop(t)
	require.NoError(t, err)
	require.Regexp(t, `^parleyd serving ws://127\.0\.0\.1:\d+/rtc, WebRTC on UDP 127\.0\.0\.1:\d+\n$`, stdout)
	select {
	case err := <-readErr:
		require.True(t, websocket.IsCloseError(err, websocket.CloseGoingAway), "closed with going away: %v", err)
	case <-time.After(waitLimit):
		t.Fatal("the client was not disconnected")
	}

	logs := r.stderr.String()
	requireJSONLogs(t, logs)
	require.Contains(t, logs, `"msg":"quotas"`)
	require.Contains(t, logs, `"broadcasts_per_second":65`)
	require.Contains(t, logs, `"msg":"shutting down"`)
	require.NotContains(t, logs, "development credentials")
}

// TestServeMetricsListen: --metrics-listen moves /metrics to its own
// address, printed on stdout; the listen address answers 404 there.
func TestServeMetricsListen(t *testing.T) {
	r := serveInProcess(t, "--listen", "127.0.0.1:0", "--udp-port", "0", "--metrics-listen", "127.0.0.1:0",
		"--app-id", testAppID, "--app-key", testAppKey)
	m := regexp.MustCompile(`, metrics at (http://127\.0\.0\.1:\d+/metrics)$`).FindStringSubmatch(r.line)
	require.NotNil(t, m, "stdout names the metrics address: %q", r.line)
	code, body := get(t, m[1])
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "\nparley_sessions ")
	code, _ = get(t, r.base+"/metrics")
	require.Equal(t, http.StatusNotFound, code)
	code, _ = get(t, r.base+"/healthz")
	require.Equal(t, http.StatusOK, code)
	_, err := r.stop(t)
	require.NoError(t, err)
}

// TestServePprofListen: --pprof-listen serves Go's profiler on its own
// address, and the listen address does not.
func TestServePprofListen(t *testing.T) {
	r := serveInProcess(t, "--listen", "127.0.0.1:0", "--udp-port", "0", "--pprof-listen", "127.0.0.1:0",
		"--app-id", testAppID, "--app-key", testAppKey)
	m := regexp.MustCompile(`, pprof at (http://127\.0\.0\.1:\d+/debug/pprof/)$`).FindStringSubmatch(r.line)
	require.NotNil(t, m, "stdout names the pprof address: %q", r.line)
	code, body := get(t, m[1]+"goroutine?debug=1")
	require.Equal(t, http.StatusOK, code)
	require.Contains(t, body, "goroutine profile:")
	code, _ = get(t, r.base+"/debug/pprof/")
	require.Equal(t, http.StatusNotFound, code)
	_, err := r.stop(t)
	require.NoError(t, err)
}

func TestServeListenError(t *testing.T) {
	// Bind a port, then ask Main to bind it too.
	r := serveInProcess(t, "--listen", "127.0.0.1:0", "--udp-port", "0")
	addr := strings.TrimPrefix(r.base, "http://")
	err := Main(t.Context(), []string{"serve", "--listen", addr, "--udp-port", "0"}, io.Discard, io.Discard)
	require.ErrorContains(t, err, "listen")
	require.NotErrorIs(t, err, ErrUsage)
	_, err = r.stop(t)
	require.NoError(t, err)
}

// TestBinary builds cmd/parleyd and runs it as a process: SIGTERM must
// drain it and exit 0.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the parleyd binary")
	}
	bin := filepath.Join(t.TempDir(), "parleyd")
	build := exec.CommandContext(t.Context(), "go", "build", "-o", bin, "./cmd/parleyd")
	build.Dir = filepath.Join("..", "..")
	out, err := build.CombinedOutput()
	require.NoError(t, err, "go build:\n%s", out)

	cmd := exec.Command(bin, "serve", "--listen", "127.0.0.1:0", "--udp-port", "0",
		"--app-id", testAppID, "--app-key", "k")
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr := new(syncBuffer)
	cmd.Stderr = stderr
	require.NoError(t, cmd.Start())
	exited := false
	t.Cleanup(func() {
		if !exited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})

	urls := make(chan string, 1)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u := urlRE.FindString(sc.Text()); u != "" && len(urls) == 0 {
				urls <- u
			}
		}
	}()
	var url string
	select {
	case url = <-urls:
	case <-drained:
		t.Fatalf("parleyd exited before serving; stderr:\n%s", stderr)
	case <-time.After(waitLimit):
		t.Fatalf("no URL on stdout; stderr:\n%s", stderr)
	}
	require.True(t, strings.HasPrefix(url, "ws://127.0.0.1:"), url)
	code, body := get(t, "http://"+strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/rtc")+"/healthz")
	require.Equal(t, http.StatusOK, code)
	require.Equal(t, "ok\n", body)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-drained: // stdout closes when the process exits
	case <-time.After(DefaultShutdownTimeout + 5*time.Second):
		t.Fatalf("parleyd did not exit after SIGTERM; stderr:\n%s", stderr)
	}
	err = cmd.Wait()
	exited = true
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		t.Fatalf("exit code %d; stderr:\n%s", exitErr.ExitCode(), stderr)
	}
	require.NoError(t, err)
	require.Equal(t, 0, cmd.ProcessState.ExitCode())
	require.Contains(t, stderr.String(), `"msg":"shutting down"`)
}

// TestServeCluster: --nats makes the server a node of a cluster. One whose
// NATS is not there yet serves all the same, says so in /healthz (200,
// "degraded: ...") and in parley_nats_connected, and joins once NATS is
// up; its logs name the node and never the NATS password. A bad --node-id
// is refused.
func TestServeCluster(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	port := ln.Addr().(*net.TCPAddr).Port
	require.NoError(t, ln.Close()) // nothing listens there until NATS starts
	r := serveInProcess(t, "--listen", "127.0.0.1:0", "--udp-port", "0", "--app-id", testAppID, "--app-key", testAppKey,
		"--nats", "nats://parley:secret@127.0.0.1:"+strconv.Itoa(port), "--node-id", "node-7")
	state := func() (health, gauge string) {
		code, health := get(t, r.base+"/healthz")
		require.Equal(t, http.StatusOK, code)
		_, metrics := get(t, r.base+"/metrics")
		gauge = regexp.MustCompile(`(?m)^parley_nats_connected .*$`).FindString(metrics)
		return health, gauge
	}
	health, gauge := state()
	require.True(t, strings.HasPrefix(health, "degraded: NATS "), health)
	require.Equal(t, "parley_nats_connected 0", gauge)
	require.NotContains(t, health, "secret")

	ns, err := natsserver.NewServer(&natsserver.Options{Host: "127.0.0.1", Port: port, NoLog: true, NoSigs: true,
		Username: "parley", Password: "secret"})
	require.NoError(t, err)
	ns.Start()
	t.Cleanup(func() {
		ns.Shutdown()
		ns.WaitForShutdown()
	})
	require.True(t, ns.ReadyForConnections(waitLimit))
	require.Eventually(t, func() bool {
		health, gauge := state()
		return health == "ok\n" && gauge == "parley_nats_connected 1"
	}, waitLimit, 5*time.Millisecond, "in the cluster once NATS is up")

	_, err = r.stop(t)
	require.NoError(t, err)
	logs := r.stderr.String()
	requireJSONLogs(t, logs)
	require.Contains(t, logs, `"node":"node-7"`)
	require.Contains(t, logs, "NATS not reachable yet")
	require.Contains(t, logs, `"msg":"NATS connected"`)
	require.NotContains(t, logs, "secret")

	err = Main(t.Context(), []string{"serve", "--listen", "127.0.0.1:0", "--udp-port", "0", "--node-id", "a.b"}, io.Discard, io.Discard)
	require.ErrorContains(t, err, `node ID "a.b" has illegal character`)
}
