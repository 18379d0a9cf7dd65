package bench

import (
	"cmp"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"

	"github.com/parleyhq/parley/internal/bytesize"
)

// Summary is what a run measured; --json prints it as is.
type Summary struct {
	Mode        string    `json:"mode"`
	URL         string    `json:"url"`
	Started     time.Time `json:"started"`
	Settings    Settings  `json:"settings"`
	Interrupted bool      `json:"interrupted"` // SIGINT/SIGTERM or a cancelled context
	// Phase is the last phase the run reached: join, warmup, measure,
	// drain or done.
	Phase string `json:"phase"`
	// MeasuredSeconds is the length of the measurement window.
	MeasuredSeconds float64 `json:"measured_seconds"`

	// Joins are the members' joins (rooms mode) or the bot's (bot mode).
	Joins Joins `json:"joins"`
	// PeerJoins are, in bot mode, the peers' joins.
	PeerJoins *Joins `json:"peer_joins,omitempty"`

	Messages Messages `json:"messages"`
	// Latency is the delivery latency of the measured messages, from the
	// sender's Send call to the receiver's callback, on the process's
	// monotonic clock. In bot mode both legs are in it.
	Latency Percentiles `json:"delivery_latency"`
	// RoundTrip is, in bot mode, from the bot's send to its callback for
	// the peer's echo.
	RoundTrip *Percentiles `json:"round_trip,omitempty"`
	// SendResults counts the measured sends' results by code name;
	// EchoResults the peers' echoes (bot mode).
	SendResults map[string]int64 `json:"send_results"`
	EchoResults map[string]int64 `json:"echo_results,omitempty"`
	// MembersLeft counts the members others saw leave while the run was
	// on (before the Engines were closed), by reason: none is the norm.
	MembersLeft map[string]int64 `json:"members_left"`

	Server   *ServerSummary `json:"server,omitempty"` // with --metrics
	Load     LoadSummary    `json:"load"`
	FDLimit  FileLimit      `json:"fd_limit"`
	Warnings []string       `json:"warnings,omitempty"`
}

// Settings are the run's configuration.
type Settings struct {
	Members         int     `json:"members,omitempty"`
	RoomSize        int     `json:"room_size,omitempty"`
	Rooms           int     `json:"rooms"`
	PeerRooms       int     `json:"peer_rooms,omitempty"`
	Engines         int     `json:"engines"`
	Rate            float64 `json:"rate_per_room"`
	Payload         int     `json:"payload_bytes"`
	WarmupSeconds   float64 `json:"warmup_seconds"`
	DurationSeconds float64 `json:"duration_seconds"`
	JoinConcurrency int     `json:"join_concurrency"`
	Sender          string  `json:"sender"` // who sends in each room
	// GCBudgetBytes is --gc-budget: the load process collected only at
	// this heap size. 0: not given.
	GCBudgetBytes int64 `json:"gc_budget_bytes,omitempty"`
	// GCEnv is GOGC and GOMEMLIMIT as the environment set them, e.g.
	// "GOGC=off GOMEMLIMIT=8GiB"; --gc-budget overrides them.
	GCEnv string `json:"gc_env,omitempty"`
}

// Joins are one kind of join's figures.
type Joins struct {
	Attempted int            `json:"attempted"`
	Joined    int            `json:"joined"`
	Failed    map[string]int `json:"failed"` // by ErrorCode name, "timeout" or "error: …"
	// AllJoinedSeconds is from the first JoinRoom call to the last
	// successful join.
	AllJoinedSeconds float64 `json:"all_joined_seconds"`
	// Latency is from a JoinRoom call to its OnRoomStateChanged(0).
	Latency Percentiles `json:"latency"`
}

// Messages are the measured messages' counts.
type Messages struct {
	// Sent: Send calls in the measurement window. Expected: the deliveries
	// their successes promise (a broadcast's Success promises one to every
	// other member of the room). Possible: the deliveries they would make
	// if every one succeeded; a send that timed out may still arrive, so
	// when there are failures read Delivered against Possible too.
	// Delivered: those that arrived. Lost: Expected − Delivered, at least
	// 0. NoResult: sends whose result had not come when the drain ended.
	Sent      int64 `json:"sent"`
	Expected  int64 `json:"expected"`
	Possible  int64 `json:"possible"`
	Delivered int64 `json:"delivered"`
	Lost      int64 `json:"lost"`
	NoResult  int64 `json:"no_result"`
	// NotSent: Send calls that returned -1 (a closed Engine or Room).
	NotSent             int64   `json:"not_sent"`
	SentPerSecond       float64 `json:"sent_per_second"`
	DeliveredPerSecond  float64 `json:"delivered_per_second"`
	EchoesSent          int64   `json:"echoes_sent,omitempty"`     // bot mode
	EchoesExpected      int64   `json:"echoes_expected,omitempty"` // bot mode
	RoundTrips          int64   `json:"round_trips,omitempty"`     // bot mode: echoes back at the bot
	RoundTripsPerSecond float64 `json:"round_trips_per_second,omitempty"`
}

// Percentiles summarise a histogram, in milliseconds.
type Percentiles struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p999_ms"`
	Max   float64 `json:"max_ms"`
}

func percentiles(h *hdr.Histogram) Percentiles {
	ms := func(us int64) float64 { return float64(us) / 1e3 }
	return Percentiles{
		Count: h.TotalCount(),
		Mean:  h.Mean() / 1e3,
		P50:   ms(h.ValueAtQuantile(50)),
		P90:   ms(h.ValueAtQuantile(90)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
	}
}

// ServerSummary is what the server's /metrics said.
type ServerSummary struct {
	MetricsURL string `json:"metrics_url"`
	// Before the joins, after them, at the start and at the end of the
	// measurement.
	Before       ServerSample `json:"before"`
	Joined       ServerSample `json:"joined"`
	MeasureStart ServerSample `json:"measure_start"`
	End          ServerSample `json:"end"`
	// CPU use in percent of one core, during the joins and during the
	// measurement; null when a scrape it needs failed (a server too busy
	// to answer within 5 s, for one).
	JoinCPUPercent *float64 `json:"join_cpu_percent"`
	CPUPercent     *float64 `json:"cpu_percent"`
	// Members are the server-side members the figures below are divided
	// by: every successful join, the bot's and the peers' in bot mode.
	Members int `json:"members"`
	// Per member: (End − Before) / Members.
	RSSPerMember        float64 `json:"rss_bytes_per_member"`
	GoroutinesPerMember float64 `json:"goroutines_per_member"`
	HeapPerMember       float64 `json:"heap_inuse_bytes_per_member"`
	Errors              int     `json:"scrape_errors"`
	// RelayLatency is the server's relay step during the measurement,
	// from its parley_relay_latency_seconds (relay.go); nil from a server
	// without it.
	RelayLatency *RelayLatency `json:"relay_latency,omitempty"`
}

// LoadSummary is the load process's own use: on the same core count it
// may saturate before the server does.
type LoadSummary struct {
	JoinCPUPercent float64 `json:"join_cpu_percent"` // percent of one core
	CPUPercent     float64 `json:"cpu_percent"`      // during the measurement
	// RunqueueWaitPercent is how long the process's threads waited for a
	// CPU during the measurement, runnable but not running, in percent of
	// the measurement (Linux; threads summed, so it may pass 100). Much
	// more than a few percent: the load process was short of CPU, and its
	// latencies include that wait.
	RunqueueWaitPercent float64 `json:"runqueue_wait_percent"`
	MaxRSSBytes         int64   `json:"max_rss_bytes"`
	Engines             int     `json:"engines"`
	GOMAXPROCS          int     `json:"gomaxprocs"`
	// LateSends counts the ticks a room's sender was behind its schedule
	// and skipped: the load process could not keep the rate.
	LateSends int64 `json:"late_sends"`
	// GCCycles are the load process's own garbage collections that ended
	// during the measurement, and GCCPUSeconds the CPU its collector
	// spent on them (pauses, mark workers and assists: runtime/metrics'
	// estimate, which it says errs high). Any: its pauses are in the
	// latencies (--gc-budget keeps them out).
	GCCycles     int64   `json:"gc_cycles"`
	GCCPUSeconds float64 `json:"gc_cpu_seconds"`
	// PretouchBytes is how much of --gc-budget was mapped before the
	// joins (--pretouch), and PretouchSeconds how long it took; 0: none.
	PretouchBytes   int64   `json:"pretouch_bytes,omitempty"`
	PretouchSeconds float64 `json:"pretouch_seconds,omitempty"`
	// PretouchNote says why less was pre-touched than 90% of the budget:
	// the machine's available memory, or its cgroup's limit.
	PretouchNote string `json:"pretouch_note,omitempty"`
}

// FileLimit is what the run found of its descriptor limit.
type FileLimit struct {
	Need   uint64 `json:"need"` // an estimate: a few per Engine
	Soft   uint64 `json:"soft"`
	Hard   uint64 `json:"hard"`
	Raised bool   `json:"raised"` // the soft limit was raised to the hard one
	Note   string `json:"note,omitempty"`
}

// WriteText prints s for a person.
func (s *Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	st := s.Settings
	measured := seconds(st.DurationSeconds).String() + " measured"
	if s.Interrupted {
		measured = fmt.Sprintf("%v of %v measured", seconds(s.MeasuredSeconds), seconds(st.DurationSeconds))
	}
	switch s.Mode {
	case ModeRooms:
		p("parley bench: %d members in %d rooms of %d, %s broadcasts/s per room (%s), %d B, %s after %v warm-up\n",
			st.Members, st.Rooms, st.RoomSize, num(st.Rate), st.Sender, st.Payload, measured, seconds(st.WarmupSeconds))
	case ModeBot:
		p("parley bench: a bot in %d rooms, a peer in each (%d rooms per peer Engine), %s round trips/s per room, %d B, %s after %v warm-up\n",
			st.Rooms, st.PeerRooms, num(st.Rate), st.Payload, measured, seconds(st.WarmupSeconds))
	}
	p("server %s, %s, %d Engines, GOMAXPROCS %d%s\n", s.URL, s.Started.UTC().Format(time.RFC3339), s.Load.Engines, s.Load.GOMAXPROCS, st.gcEcho())
	if s.Interrupted {
		p("INTERRUPTED in the %s phase: the figures cover what ran\n", s.Phase)
	}
	joins := func(name string, j Joins) {
		p("%-13s %d of %d in %.2fs", name, j.Joined, j.Attempted, j.AllJoinedSeconds)
		if len(j.Failed) > 0 {
			p(", failed: %s", counts(j.Failed))
		}
		p("\n%-13s %s\n", "", pct(j.Latency))
	}
	if s.PeerJoins != nil {
		joins("peer joins", *s.PeerJoins)
		joins("bot joins", s.Joins)
	} else {
		joins("joins", s.Joins)
	}
	m := s.Messages
	lostPct := 0.0
	if m.Expected > 0 {
		lostPct = 100 * float64(m.Lost) / float64(m.Expected)
	}
	p("%-13s sent %d (%s/s), expected %d", "messages", m.Sent, num(m.SentPerSecond), m.Expected)
	if m.Possible != m.Expected {
		p(" (%d if all had succeeded)", m.Possible)
	}
	p(", delivered %d (%s/s), lost %d (%.3f%%), no result %d",
		m.Delivered, num(m.DeliveredPerSecond), m.Lost, lostPct, m.NoResult)
	if m.NotSent > 0 {
		p(", not sent %d", m.NotSent)
	}
	p("\n")
	if s.Mode == ModeBot {
		p("%-13s echoes sent %d, expected %d, round trips %d (%s/s)\n", "", m.EchoesSent, m.EchoesExpected, m.RoundTrips, num(m.RoundTripsPerSecond))
	}
	p("%-13s %s\n", "latency", pct(s.Latency))
	if s.RoundTrip != nil {
		p("%-13s %s\n", "round trip", pct(*s.RoundTrip))
	}
	p("%-13s %s\n", "send results", counts(s.SendResults))
	if s.Mode == ModeBot {
		p("%-13s %s\n", "echo results", counts(s.EchoResults))
	}
	if len(s.MembersLeft) > 0 {
		p("%-13s %s\n", "members left", counts(s.MembersLeft))
	}
	if sv := s.Server; sv != nil {
		p("%-13s cpu %s of one core measuring, %s joining; %d members\n", "server", percent(sv.CPUPercent), percent(sv.JoinCPUPercent), sv.Members)
		p("%-13s rss %s (%s before, %s/member), goroutines %.0f (%.0f before, %.1f/member), heap %s (%s/member)\n", "",
			bytesIEC(sv.End.RSSBytes), bytesIEC(sv.Before.RSSBytes), bytesIEC(sv.RSSPerMember),
			sv.End.Goroutines, sv.Before.Goroutines, sv.GoroutinesPerMember,
			bytesIEC(sv.End.HeapInuseBytes), bytesIEC(sv.HeapPerMember))
		if sv.RelayLatency != nil {
			p("%-13s relay step (arrival to hand-off to the receivers' channels): %s; the rest of the latency is the transport and the receivers\n", "", sv.RelayLatency)
		}
		if sv.Errors > 0 {
			p("%-13s %d scrapes failed\n", "", sv.Errors)
		}
	}
	l := s.Load
	p("%-13s cpu %.1f%% of one core measuring, %.1f%% joining; waited for a cpu %.1f%% of the time; max rss %s; %d late sends; %s (%v of gc cpu) while measuring\n", "load process",
		l.CPUPercent, l.JoinCPUPercent, l.RunqueueWaitPercent, bytesIEC(float64(l.MaxRSSBytes)), l.LateSends,
		collections(l.GCCycles), seconds(l.GCCPUSeconds))
	if l.PretouchBytes > 0 {
		p("%-13s pre-touched %s of the gc budget in %v before the joins", "", bytesIEC(float64(l.PretouchBytes)), seconds(l.PretouchSeconds))
		if l.PretouchNote != "" {
			p(", %s", l.PretouchNote)
		}
		p("\n")
	}
	for _, w := range s.Warnings {
		p("warning: %s\n", w)
	}
	if s.FDLimit.Note != "" {
		p("fd limit: %s\n", s.FDLimit.Note)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// gcEcho is the load process's collector settings for the header line:
// none for Go's defaults.
func (st Settings) gcEcho() string {
	switch {
	case st.GCBudgetBytes > 0 && st.GCEnv != "":
		return fmt.Sprintf(", gc budget %s (--gc-budget, overriding %s)", bytesize.Format(st.GCBudgetBytes), st.GCEnv)
	case st.GCBudgetBytes > 0:
		return fmt.Sprintf(", gc budget %s (--gc-budget)", bytesize.Format(st.GCBudgetBytes))
	case st.GCEnv != "":
		return ", " + st.GCEnv
	}
	return ""
}

// percent prints a percentage that may be unknown.
func percent(v *float64) string {
	if v == nil {
		return "unknown (scrape failed)"
	}
	return fmt.Sprintf("%.1f%%", *v)
}

func pct(p Percentiles) string {
	if p.Count == 0 {
		return "n=0"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (n=%d)",
		ms(p.P50), ms(p.P90), ms(p.P99), ms(p.P999), ms(p.Max), p.Count)
}

func ms(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0fms", v)
	case v >= 10:
		return fmt.Sprintf("%.1fms", v)
	default:
		return fmt.Sprintf("%.2fms", v)
	}
}

// counts prints a map of counts, largest first.
func counts[V int | int64](m map[string]V) string {
	if len(m) == 0 {
		return "none"
	}
	keys := slices.SortedFunc(maps.Keys(m), func(a, b string) int {
		return cmp.Or(cmp.Compare(m[b], m[a]), strings.Compare(a, b))
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

func num(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

func seconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond)
}

func bytesIEC(v float64) string {
	neg := v < 0
	if neg {
		v = -v
	}
	s := fmt.Sprintf("%.0f B", v)
	switch {
	case v >= 1<<30:
		s = fmt.Sprintf("%.2f GiB", v/(1<<30))
	case v >= 1<<20:
		s = fmt.Sprintf("%.1f MiB", v/(1<<20))
	case v >= 1<<10:
		s = fmt.Sprintf("%.1f KiB", v/(1<<10))
	}
	if neg {
		return "-" + s
	}
	return s
}
