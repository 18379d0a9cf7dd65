package bench

import (
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram ranges, in microseconds, with three significant digits.
const (
	maxLatencyMicros = int64(60 * time.Second / time.Microsecond)
	maxJoinMicros    = int64(10 * time.Minute / time.Microsecond)
	sigFigs          = 3
)

// headerSize is the benchmark's header at the start of every payload:
// the send time and, for an echo, the echo's send time (nanoseconds on
// the run's monotonic clock, little endian), the room's index, a
// sequence number, and whether the sender counted it as measured (the
// receiver counts it alike, whenever it arrives). The rest of the payload
// is zero padding.
const headerSize = 25

// header is what a payload carries.
type header struct {
	sent, echoed int64 // clock.now() at the send and at the echo (0: not an echo)
	room, seq    uint32
	measured     bool
}

func (h header) put(b []byte) {
	binary.LittleEndian.PutUint64(b[0:], uint64(h.sent))
	binary.LittleEndian.PutUint64(b[8:], uint64(h.echoed))
	binary.LittleEndian.PutUint32(b[16:], h.room)
	binary.LittleEndian.PutUint32(b[20:], h.seq)
	b[24] = 0
	if h.measured {
		b[24] = 1
	}
}

// parseHeader reads a payload's header; false for a payload too short to
// be the benchmark's.
func parseHeader(b []byte) (header, bool) {
	if len(b) < headerSize {
		return header{}, false
	}
	return header{
		sent:     int64(binary.LittleEndian.Uint64(b[0:])),
		echoed:   int64(binary.LittleEndian.Uint64(b[8:])),
		room:     binary.LittleEndian.Uint32(b[16:]),
		seq:      binary.LittleEndian.Uint32(b[20:]),
		measured: b[24] == 1,
	}, true
}

// clock is the run's monotonic clock: senders and receivers are in the
// same process, so a timestamp in a payload and the time it arrives are
// read on the same clock.
type clock struct{ base time.Time }

func (c clock) now() int64 { return int64(time.Since(c.base)) }

// sendKind tells the recorder what a send was.
type sendKind uint8

const (
	sendBroadcast sendKind = iota // rooms mode: a member's room broadcast
	sendToPeer                    // bot mode: the bot's message to a room's peer
	sendEcho                      // bot mode: the peer's echo back to the bot
)

// sendInfo is what a send's result needs to be counted.
type sendInfo struct {
	kind      sendKind
	measured  bool // sent inside the measurement window
	receivers int  // deliveries a success promises
}

// recorder collects the run's figures. Deliveries and results arrive on
// the dispatcher goroutines of every Engine; counters are atomic, the
// histograms share one lock (a few thousand records a second do not
// contend on it).
type recorder struct {
	clk clock
	// The measurement window, on clk: a message counts when its send time
	// is in [start, end). start is zero until the warm-up ends; end is
	// math.MaxInt64 until the measurement ends.
	winStart, winEnd atomic.Int64

	sent, expected, delivered         atomic.Int64 // measured messages
	possible                          atomic.Int64 // deliveries the measured sends would make if all succeeded
	echoSent, echoExpected, roundTrip atomic.Int64 // measured echoes (bot mode)
	inflight                          atomic.Int64 // sends without a result yet, measured or not
	sentAll, deliveredAll             atomic.Int64 // every message, for the progress line
	notSent                           atomic.Int64 // sends refused by a closed Engine or Room (-1)

	mu sync.Mutex
	// guarded by mu
	latency, rtt, window *hdr.Histogram // µs; window is reset by each progress tick
	results, echoResults map[string]int64
	lost                 map[string]int64 // members seen leaving during the run, by reason
}

func newRecorder(clk clock) *recorder {
	return &recorder{
		clk:         clk,
		latency:     newLatencyHistogram(),
		rtt:         newLatencyHistogram(),
		window:      newLatencyHistogram(),
		results:     make(map[string]int64),
		echoResults: make(map[string]int64),
		lost:        make(map[string]int64),
	}
}

func newLatencyHistogram() *hdr.Histogram { return hdr.New(1, maxLatencyMicros, sigFigs) }

// measured reports whether a message sent at t is in the window. The
// sender decides and writes it in the payload.
func (r *recorder) measured(t int64) bool {
	start := r.winStart.Load()
	return start != 0 && t >= start && t < r.winEnd.Load()
}

// micros is d nanoseconds in whole microseconds, at least 1 and at most
// the histogram's top.
func micros(ns int64) int64 {
	return min(max(ns/1e3, 1), maxLatencyMicros)
}

// sending counts a send of info.
func (r *recorder) sending(info sendInfo) {
	r.inflight.Add(1)
	r.sentAll.Add(1)
	switch {
	case info.measured && info.kind == sendEcho:
		r.echoSent.Add(1)
	case info.measured:
		r.sent.Add(1)
		r.possible.Add(int64(info.receivers))
	}
}

// unsend takes back a sending whose Send returned -1, and counts it.
func (r *recorder) unsend(info sendInfo) {
	r.inflight.Add(-1)
	r.sentAll.Add(-1)
	switch {
	case info.measured && info.kind == sendEcho:
		r.echoSent.Add(-1)
	case info.measured:
		r.sent.Add(-1)
		r.possible.Add(-int64(info.receivers))
	}
	r.notSent.Add(1)
}

// result counts one send's result; ok is whether it was a success.
func (r *recorder) result(info sendInfo, code string, ok bool) {
	r.inflight.Add(-1)
	if !info.measured {
		return
	}
	r.mu.Lock()
	if info.kind == sendEcho {
		r.echoResults[code]++
	} else {
		r.results[code]++
	}
	r.mu.Unlock()
	if !ok {
		return
	}
	if info.kind == sendEcho {
		r.echoExpected.Add(int64(info.receivers))
	} else {
		r.expected.Add(int64(info.receivers))
	}
}

// deliver records a message delivered now with header h. echo is a bot
// receiving a peer's echo: its delivery latency is from the echo's send,
// and the round trip from the original send.
func (r *recorder) deliver(h header, echo bool) {
	now := r.clk.now()
	from := h.sent
	if echo {
		from = h.echoed
	}
	lat := micros(now - from)
	measured := h.measured
	r.deliveredAll.Add(1)
	r.mu.Lock()
	_ = r.window.RecordValue(lat)
	if measured {
		_ = r.latency.RecordValue(lat)
		if echo {
			_ = r.rtt.RecordValue(micros(now - h.sent))
		}
	}
	r.mu.Unlock()
	switch {
	case measured && echo:
		r.roundTrip.Add(1)
	case measured:
		r.delivered.Add(1)
	}
}

// memberLeft counts a member seen leaving while the run was on.
func (r *recorder) memberLeft(reason string) {
	r.mu.Lock()
	r.lost[reason]++
	r.mu.Unlock()
}

// windowPercentiles returns the p50 and p99 of the deliveries since the
// last call, and how many there were, and starts a new window.
func (r *recorder) windowPercentiles() (p50, p99 time.Duration, n int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	n = r.window.TotalCount()
	p50 = time.Duration(r.window.ValueAtQuantile(50)) * time.Microsecond
	p99 = time.Duration(r.window.ValueAtQuantile(99)) * time.Microsecond
	r.window.Reset()
	return p50, p99, n
}

// drained reports whether every send has its result and every delivery a
// success promised has arrived.
func (r *recorder) drained() bool {
	return r.inflight.Load() == 0 &&
		r.delivered.Load() >= r.expected.Load() &&
		r.roundTrip.Load() >= r.echoExpected.Load()
}

// joinRecorder collects one kind of join: the bot's, or the members'.
type joinRecorder struct {
	mu sync.Mutex
	// guarded by mu
	latency  *hdr.Histogram // µs
	joined   int
	failed   map[string]int
	first    time.Time // the first attempt
	last     time.Time // the latest successful join
	attempts int
}

func newJoinRecorder() *joinRecorder {
	return &joinRecorder{latency: hdr.New(1, maxJoinMicros, sigFigs), failed: make(map[string]int)}
}

func (j *joinRecorder) attempt() {
	j.mu.Lock()
	j.attempts++
	if j.first.IsZero() {
		j.first = time.Now()
	}
	j.mu.Unlock()
}

func (j *joinRecorder) ok(took time.Duration, at time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.joined++
	_ = j.latency.RecordValue(min(max(took.Microseconds(), 1), maxJoinMicros))
	if at.After(j.last) {
		j.last = at
	}
}

func (j *joinRecorder) fail(why string) {
	j.mu.Lock()
	j.failed[why]++
	j.mu.Unlock()
}

// count is how many have joined so far.
func (j *joinRecorder) count() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.joined
}
