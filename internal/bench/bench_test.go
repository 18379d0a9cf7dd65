package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/parleyhq/parley/internal/parleyd"
	"github.com/parleyhq/parley/parleytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testConfig is a short run against srv, with its metrics.
func testConfig(srv *parleytest.Server) Config {
	cfg := DefaultConfig()
	cfg.URL = srv.URL
	cfg.AppID, cfg.AppKey = srv.AppID, srv.AppKey
	cfg.MetricsURL = "http://" + srv.Server().Addr().String() + "/metrics"
	cfg.Warmup = 500 * time.Millisecond
	cfg.Duration = 2 * time.Second
	cfg.Drain = 15 * time.Second // a loaded machine: the drain ends as soon as all is in
	cfg.JoinConcurrency = 8
	cfg.Pretouch = false // TestRunPretouch tests it; here it would map most of a test's budget
	return cfg
}

// runJSON runs cfg and returns its summary as --json prints it, decoded
// again: what the tests check is the JSON a user gets.
func runJSON(t *testing.T, ctx context.Context, cfg Config, progress Progress) Summary {
	t.Helper()
	s, err := Run(ctx, cfg, progress)
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, s.WriteJSON(&buf))
	var out Summary
	require.NoError(t, json.Unmarshal(buf.Bytes(), &out), buf.String())
	var text bytes.Buffer
	require.NoError(t, s.WriteText(&text))
	t.Logf("summary:\n%s", text.String())
	return out
}

func TestRoomsMode(t *testing.T) {
	srv := parleytest.NewServer(t)
	cfg := testConfig(srv)
	cfg.Members, cfg.RoomSize, cfg.Rate = 20, 5, 10
	var progress syncBuffer
	s := runJSON(t, context.Background(), cfg, Progress{W: &progress, PlainInterval: 300 * time.Millisecond})

	assert.False(t, s.Interrupted)
	assert.Equal(t, phaseDone, s.Phase)
	assert.Equal(t, 4, s.Settings.Rooms)
	assert.Equal(t, 20, s.Joins.Attempted)
	assert.Equal(t, 20, s.Joins.Joined)
	assert.Empty(t, s.Joins.Failed)
	assert.Equal(t, int64(20), s.Joins.Latency.Count)
	assert.Greater(t, s.Joins.AllJoinedSeconds, 0.0)
	assert.LessOrEqual(t, s.Joins.Latency.P50, s.Joins.Latency.Max)

	m := s.Messages
	assert.InDelta(t, 2.0, s.MeasuredSeconds, 0.5)
	// 4 rooms at 10/s for about 2 s; the load may slow the senders.
	assert.Greater(t, m.Sent, int64(20))
	assert.LessOrEqual(t, m.Sent, int64(4*10*3))
	assert.Equal(t, map[string]int64{"Success": m.Sent}, s.SendResults, "every broadcast succeeds")
	assert.Equal(t, 4*m.Sent, m.Expected, "a broadcast in a room of 5 promises 4 deliveries")
	assert.Equal(t, m.Expected, m.Possible, "every broadcast succeeded")
	assert.Positive(t, m.Delivered)
	assert.LessOrEqual(t, m.Delivered, m.Expected)
	assert.Zero(t, m.Lost, "reliable broadcasts on loopback")
	assert.Zero(t, m.NoResult)
	assert.Zero(t, m.NotSent)
	assert.Equal(t, m.Delivered, s.Latency.Count, "one latency per measured delivery")
	assert.Greater(t, s.Latency.P50, 0.0)
	assert.LessOrEqual(t, s.Latency.P50, s.Latency.P99)
	assert.LessOrEqual(t, s.Latency.P999, s.Latency.Max)
	assert.Empty(t, s.MembersLeft)
	assert.Nil(t, s.RoundTrip)

	require.NotNil(t, s.Server)
	assert.Equal(t, 20, s.Server.Members)
	assert.Zero(t, s.Server.Errors)
	assert.Positive(t, s.Server.End.RSSBytes)
	assert.Greater(t, s.Server.End.Goroutines, s.Server.Before.Goroutines, "20 members hold goroutines")
	assert.Positive(t, s.Server.GoroutinesPerMember)
	require.NotNil(t, s.Server.CPUPercent)
	assert.Positive(t, *s.Server.CPUPercent)
	require.NotNil(t, s.Server.RelayLatency, "parleyd's relay histogram, read")
	assert.Positive(t, s.Server.RelayLatency.Count)
	require.NotNil(t, s.Server.JoinCPUPercent)
	assert.Positive(t, s.Load.CPUPercent)
	assert.GreaterOrEqual(t, s.Load.RunqueueWaitPercent, 0.0)
	assert.Equal(t, 20, s.Load.Engines)
	assert.Contains(t, progress.String(), "joined 20/20")
	assert.Contains(t, progress.String(), "measure")
}

func TestBotMode(t *testing.T) {
	for _, peerRooms := range []int{1, 5} {
		t.Run(fmt.Sprint("peer-rooms=", peerRooms), func(t *testing.T) {
			srv := parleytest.NewServer(t)
			cfg := testConfig(srv)
			cfg.Mode, cfg.Rooms, cfg.PeerRooms, cfg.Rate = ModeBot, 10, peerRooms, 5
			s := runJSON(t, context.Background(), cfg, Progress{})

			assert.Equal(t, phaseDone, s.Phase)
			assert.Equal(t, 1+10/peerRooms, s.Settings.Engines)
			require.NotNil(t, s.PeerJoins)
			assert.Equal(t, 10, s.PeerJoins.Joined)
			assert.Equal(t, 10, s.Joins.Joined, "the bot joins every room")
			assert.Empty(t, s.Joins.Failed)
			assert.Equal(t, int64(10), s.Joins.Latency.Count)

			m := s.Messages
			assert.Greater(t, m.Sent, int64(20))
			assert.Equal(t, map[string]int64{"Success": m.Sent}, s.SendResults)
			assert.Equal(t, m.Sent, m.Expected)
			assert.Equal(t, m.Sent, m.Possible)
			assert.Equal(t, m.Expected, m.Delivered, "reliable messages on loopback")
			assert.Equal(t, m.Delivered, m.EchoesSent, "each peer echoes what it gets")
			assert.Equal(t, map[string]int64{"Success": m.EchoesSent}, s.EchoResults)
			assert.Equal(t, m.EchoesExpected, m.RoundTrips)
			assert.Zero(t, m.Lost)
			assert.Zero(t, m.NoResult)
			require.NotNil(t, s.RoundTrip)
			assert.Equal(t, m.RoundTrips, s.RoundTrip.Count)
			assert.Equal(t, m.Delivered+m.RoundTrips, s.Latency.Count, "both legs' latencies")
			assert.GreaterOrEqual(t, s.RoundTrip.P50, s.Latency.P50, "a round trip is two legs")
			require.NotNil(t, s.Server)
			assert.Equal(t, 20, s.Server.Members, "the bot's 10 and the peers' 10")
		})
	}
}

// TestInterrupt cancels a long run once it is measuring: it stops at once,
// closes every Engine (goleak) and summarises what ran.
func TestInterrupt(t *testing.T) {
	srv := parleytest.NewServer(t)
	cfg := testConfig(srv)
	cfg.Members, cfg.RoomSize, cfg.Duration = 6, 3, time.Hour
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	w := &cancelWriter{match: "measure", cancel: cancel}
	start := time.Now()
	s := runJSON(t, ctx, cfg, Progress{W: w, PlainInterval: 200 * time.Millisecond})
	assert.Less(t, time.Since(start), time.Minute)
	assert.True(t, s.Interrupted)
	assert.Equal(t, phaseMeasure, s.Phase)
	assert.Equal(t, 6, s.Joins.Joined)
	assert.Positive(t, s.MeasuredSeconds)
	assert.LessOrEqual(t, s.Messages.Delivered, s.Messages.Expected)
}

// TestBadMetricsURL: a metrics URL that does not answer is an error
// before anything starts.
func TestBadMetricsURL(t *testing.T) {
	srv := parleytest.NewServer(t)
	cfg := testConfig(srv)
	cfg.MetricsURL = "http://" + srv.Server().Addr().String() + "/healthz"
	_, err := Run(context.Background(), cfg, Progress{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--metrics")
}

// TestCPUProfile: --cpuprofile writes a profile of the measurement (a
// gzipped protocol buffer, as pprof reads), and a path that cannot be
// created is an error before anything starts.
func TestCPUProfile(t *testing.T) {
	srv := parleytest.NewServer(t)
	cfg := testConfig(srv)
	cfg.Members, cfg.RoomSize, cfg.Duration = 4, 2, time.Second
	cfg.CPUProfile = filepath.Join(t.TempDir(), "load.pprof")
	s := runJSON(t, context.Background(), cfg, Progress{})
	for _, w := range s.Warnings {
		assert.NotContains(t, w, "--cpuprofile")
	}
	b, err := os.ReadFile(cfg.CPUProfile)
	require.NoError(t, err)
	require.Greater(t, len(b), 2)
	assert.Equal(t, []byte{0x1f, 0x8b}, b[:2], "gzip, as pprof writes")

	cfg.CPUProfile = filepath.Join(t.TempDir(), "missing", "load.pprof")
	_, err = Run(context.Background(), cfg, Progress{})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "--cpuprofile")
}

func TestScrapeServerMetrics(t *testing.T) {
	srv := parleytest.NewServer(t)
	client := &http.Client{}
	defer client.CloseIdleConnections()
	s, err := Scrape(context.Background(), client, "http://"+srv.Server().Addr().String()+"/metrics")
	require.NoError(t, err)
	assert.Positive(t, s.RSSBytes)
	assert.Positive(t, s.Goroutines)
	assert.Positive(t, s.HeapInuseBytes)
	assert.GreaterOrEqual(t, s.CPUSeconds, 0.0)
	assert.False(t, s.At.IsZero())
}

func TestParseMetrics(t *testing.T) {
	const page = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 42
# TYPE go_memstats_heap_inuse_bytes gauge
go_memstats_heap_inuse_bytes 1.5e+06
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.25
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 3.3e+07
`
	s, err := parseMetrics(strings.NewReader(page))
	require.NoError(t, err)
	assert.Equal(t, ServerSample{CPUSeconds: 12.25, RSSBytes: 3.3e7, Goroutines: 42, HeapInuseBytes: 1.5e6}, s)

	_, err = parseMetrics(strings.NewReader(strings.ReplaceAll(page, "go_goroutines", "go_threads")))
	assert.ErrorContains(t, err, "no go_goroutines")
	_, err = parseMetrics(strings.NewReader("not { metrics"))
	assert.Error(t, err)
}

func TestCPUPercent(t *testing.T) {
	t0 := time.Now()
	a := ServerSample{At: t0, CPUSeconds: 10}
	b := ServerSample{At: t0.Add(4 * time.Second), CPUSeconds: 12}
	assert.InDelta(t, 50.0, cpuPercent(a, b), 1e-9)
	assert.Zero(t, cpuPercent(b, b))
}

func TestHeader(t *testing.T) {
	h := header{sent: 123456789, echoed: 987654321, room: 7, seq: 42, measured: true}
	b := make([]byte, 64)
	h.put(b)
	got, ok := parseHeader(b)
	require.True(t, ok)
	assert.Equal(t, h, got)
	_, ok = parseHeader(b[:headerSize-1])
	assert.False(t, ok)
}

func FuzzParseHeader(f *testing.F) {
	b := make([]byte, headerSize)
	header{sent: 1, room: 2, seq: 3, measured: true}.put(b)
	f.Add(b)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		h, ok := parseHeader(b)
		if ok != (len(b) >= headerSize) {
			t.Fatalf("ok %v for %d bytes", ok, len(b))
		}
		if !ok {
			return
		}
		again := make([]byte, headerSize)
		h.put(again)
		h2, _ := parseHeader(again)
		if h2 != h {
			t.Fatalf("round trip: %+v != %+v", h2, h)
		}
	})
}

func FuzzParseMetrics(f *testing.F) {
	f.Add("go_goroutines 1\nprocess_cpu_seconds_total 2\nprocess_resident_memory_bytes 3\ngo_memstats_heap_inuse_bytes 4\n")
	f.Add("# TYPE x counter\nx{a=\"b\"} 1\n")
	f.Fuzz(func(t *testing.T, page string) {
		_, _ = parseMetrics(strings.NewReader(page)) // no panic, whatever a server sends
	})
}

func TestConfigCheck(t *testing.T) {
	for name, f := range map[string]func(*Config){
		"mode":          func(c *Config) { c.Mode = "mesh" },
		"members":       func(c *Config) { c.Members = 1 },
		"too many":      func(c *Config) { c.Members = MaxMembers + 1 },
		"room size":     func(c *Config) { c.RoomSize = 1 },
		"room > total":  func(c *Config) { c.RoomSize = c.Members + 1 },
		"bot rooms":     func(c *Config) { c.Mode, c.Rooms = ModeBot, 0 },
		"peer rooms":    func(c *Config) { c.Mode, c.PeerRooms = ModeBot, c.Rooms+1 },
		"rate":          func(c *Config) { c.Rate = 0 },
		"rate too high": func(c *Config) { c.Rate = MaxRate + 1 },
		"small payload": func(c *Config) { c.Payload = headerSize - 1 },
		"big payload":   func(c *Config) { c.Payload = 64<<10 + 1 },
		"duration":      func(c *Config) { c.Duration = 0 },
		"warmup":        func(c *Config) { c.Warmup = -time.Second },
		"concurrency":   func(c *Config) { c.JoinConcurrency = 0 },
		"app id":        func(c *Config) { c.AppID = "short" },
		"app key":       func(c *Config) { c.AppKey = "" },
		"url":           func(c *Config) { c.URL = "http://127.0.0.1:7880/rtc" },
		"metrics":       func(c *Config) { c.MetricsURL = "127.0.0.1:7880/metrics" },
		"room prefix":   func(c *Config) { c.RoomPrefix = "no spaces" },
	} {
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig()
			f(&c)
			assert.ErrorIs(t, c.check(), ErrConfig)
		})
	}
	c := DefaultConfig()
	require.NoError(t, c.check())
	assert.True(t, strings.HasPrefix(c.RoomPrefix, "bench-"), c.RoomPrefix)
}

func TestLoopback(t *testing.T) {
	for url, want := range map[string]bool{
		"ws://127.0.0.1:7880/rtc":   true,
		"ws://127.1.2.3:7880/rtc":   true,
		"ws://[::1]:7880/rtc":       true,
		"ws://localhost:7880/rtc":   true,
		"wss://10.0.0.1/rtc":        false,
		"wss://rtc.example.com/rtc": false,
	} {
		c := Config{URL: url}
		assert.Equal(t, want, c.loopback(), url)
	}
}

// The development credentials are parleyd's.
func TestDevCredentials(t *testing.T) {
	assert.Equal(t, parleyd.DevAppID, devAppID)
	assert.Equal(t, parleyd.DevAppKey, devAppKey)
}

func TestRaiseFileLimit(t *testing.T) {
	lim := raiseFileLimit(16)
	assert.Empty(t, lim.Note, "16 descriptors are always allowed")
	assert.GreaterOrEqual(t, lim.Soft, uint64(16))
	lim = raiseFileLimit(1 << 62)
	assert.NotEmpty(t, lim.Note, "nobody has 2^62 descriptors")
	assert.Equal(t, lim.Hard, lim.Soft, "raised to the hard limit")
}

// syncBuffer is a bytes.Buffer safe for the progress goroutine and the
// test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// cancelWriter cancels once a progress line starts with match.
type cancelWriter struct {
	match  string
	cancel func()
}

func (w *cancelWriter) Write(p []byte) (int, error) {
	if strings.HasPrefix(string(p), w.match) {
		w.cancel()
	}
	return len(p), nil
}

func TestRunqueueWait(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("schedstat is Linux's")
	}
	w, ok := runqueueWait()
	require.True(t, ok, "/proc/self/task/*/schedstat")
	assert.GreaterOrEqual(t, w, time.Duration(0))
}

// TestServerGrowthWarning: a server whose RSS grew by a quarter and 64 MiB
// or more while measuring gets a warning that names the growth and the
// warm-up; less growth, or a missing sample, none.
func TestServerGrowthWarning(t *testing.T) {
	at := time.Now()
	sv := func(from, to float64) *ServerSummary {
		return &ServerSummary{
			MeasureStart: ServerSample{At: at, RSSBytes: from},
			End:          ServerSample{At: at.Add(30 * time.Second), RSSBytes: to},
		}
	}
	w := serverGrowthWarning(sv(400<<20, 800<<20), 5*time.Second)
	assert.Contains(t, w, "grew from 400.0 MiB to 800.0 MiB")
	assert.Contains(t, w, "a longer --warmup than 5s")
	assert.Empty(t, serverGrowthWarning(sv(800<<20, 843<<20), 40*time.Second), "steady")
	assert.Empty(t, serverGrowthWarning(sv(100<<20, 160<<20), time.Second), "doubled, but by less than 64 MiB")
	assert.Empty(t, serverGrowthWarning(sv(400<<20, 0), time.Second), "the end scrape failed")
	missing := sv(400<<20, 800<<20)
	missing.End.At = time.Time{}
	assert.Empty(t, serverGrowthWarning(missing, time.Second))
}
