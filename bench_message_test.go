package parley_test

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/internal/transport"
	"github.com/parleyhq/parley/parleytest"
)

// The message benchmarks run Parley (sender → relay → receiver) beside raw
// pion data channels between PeerConnections in the same process, with the
// same channel settings, and report both and their ratio: the ratio is the
// figure to read. Throughput's baseline is one raw hop (sender →
// receiver), round trip's a raw two-hop echo, broadcast's a raw fan-out
// from one sender to 20 PeerConnections.
//
//	go test -run '^$' -bench 'RoundTrip|Throughput|Broadcast' -benchtime 2000x .

// BenchmarkRoundTrip: a 64-byte reliable user message and its echo,
// beside a raw two-hop echo (side 0 → side 1 → side 0). Parley's round
// trip is four hops, two each way through the relay, so 2× the raw echo
// is the floor.
func BenchmarkRoundTrip(b *testing.B) {
	payload := make([]byte, 64)
	h := newBenchHarness(b, 2)
	h.echo(1)
	raw := newRawPair(b)
	raw.echo()

	var ours, theirs []time.Duration
	for b.Loop() {
		ours = append(ours, h.roundTrip(b, 0, 1, payload))

		start := time.Now()
		raw.send(b, payload)
		raw.waitN(b, 1)
		theirs = append(theirs, time.Since(start))
	}
	p50, p99 := percentile(ours, 50), percentile(ours, 99)
	r50, r99 := percentile(theirs, 50), percentile(theirs, 99)
	b.ReportMetric(micros(p50), "p50-µs")
	b.ReportMetric(micros(p99), "p99-µs")
	b.ReportMetric(micros(r50), "pion-2hop-p50-µs")
	b.ReportMetric(micros(r99), "pion-2hop-p99-µs")
	b.ReportMetric(float64(p50)/float64(r50), "p50/pion-2hop")
	b.ReportMetric(float64(p99)/float64(r99), "p99/pion-2hop")
}

// BenchmarkThroughput: one-way 1 KiB reliable user messages, counted when
// the receiver's callback has them. Beside the baseline, one raw hop, it
// runs a raw relay: two raw pairs, the first's receiving end writing each
// message it reads to the second, as a relay that does nothing else would.
// A relayed message crosses two hops, so pion-2hop-msgs/s over
// pion-msgs/s is the most any relay built on pion reaches in x-pion.
func BenchmarkThroughput(b *testing.B) {
	const size, batch = 1 << 10, 500
	payload := make([]byte, size)
	h := newBenchHarness(b, 2)
	raw := newRawPair(b)
	first, second := newRawPair(b), newRawPair(b)
	first.forwardTo(second)

	var ours, theirs, relayed time.Duration
	var n int
	for b.Loop() {
		ours += h.oneWay(b, 0, 1, payload, batch)

		start := time.Now()
		for range batch {
			raw.send(b, payload)
		}
		raw.waitN(b, batch)
		theirs += time.Since(start)

		start = time.Now()
		for range batch {
			first.send(b, payload)
		}
		second.waitN(b, batch)
		relayed += time.Since(start)
		n += batch
	}
	msgs := float64(n) / ours.Seconds()
	rawMsgs := float64(n) / theirs.Seconds()
	relayedMsgs := float64(n) / relayed.Seconds()
	b.ReportMetric(msgs, "msgs/s")
	b.ReportMetric(msgs*size/1e6, "MB/s")
	b.ReportMetric(rawMsgs, "pion-msgs/s")
	b.ReportMetric(relayedMsgs, "pion-2hop-msgs/s")
	b.ReportMetric(msgs/rawMsgs, "x-pion")
	b.ReportMetric(relayedMsgs/rawMsgs, "pion-2hop-x-pion")
	b.ReportMetric(msgs/relayedMsgs, "x-pion-2hop")
}

// BenchmarkBroadcast: one sender broadcasts 256-byte messages to 20 other
// members; deliveries/s counts every receiver's callback. The baseline is
// a raw pion fan-out in the same process: one sender writes each message
// to 20 raw data channels, each to a PeerConnection of its own, and its
// deliveries/s counts every receiving end's reads. The raw fan-out is the
// relay's second hop alone; Parley adds the first hop, the SDKs and the
// relay's work, so x-pion-fanout below 1 is the cost of those.
func BenchmarkBroadcast(b *testing.B) {
	const size, receivers, batch = 256, 20, 50
	payload := make([]byte, size)
	h := newBenchHarness(b, receivers+1)
	sender := h.rooms[0]
	raws := make([]*rawPair, receivers)
	for i := range raws {
		raws[i] = newRawPair(b)
	}

	var ours, theirs time.Duration
	var n int
	for b.Loop() {
		start := time.Now()
		for range batch {
			sender.SendRoomBinaryMessage(payload)
		}
		for _, rh := range h.handlers[1:] {
			rh.waitN(b, batch)
		}
		ours += time.Since(start)

		start = time.Now()
		for range batch {
			for _, raw := range raws {
				raw.send(b, payload)
			}
		}
		for _, raw := range raws {
			raw.waitN(b, batch)
		}
		theirs += time.Since(start)
		n += batch
	}
	deliveries := float64(n*receivers) / ours.Seconds()
	rawDeliveries := float64(n*receivers) / theirs.Seconds()
	b.ReportMetric(deliveries, "deliveries/s")
	b.ReportMetric(rawDeliveries, "pion-fanout-deliveries/s")
	b.ReportMetric(deliveries/rawDeliveries, "x-pion-fanout")
}

// benchHarness is n joined Engines, users u0..u(n-1), in one room.
type benchHarness struct {
	rooms    []*parley.Room
	handlers []*benchHandler
}

// newBenchHarness is a server and n members of one room on it.
func newBenchHarness(b *testing.B, n int) *benchHarness {
	b.Helper()
	return newBenchHarnessOn(b, slices.Repeat([]*parleytest.Server{parleytest.NewServer(b)}, n))
}

// newBenchHarnessOn joins member i (user ui) to one room through nodes[i],
// in order: the nodes of one cluster, or one server repeated. It returns
// once every member has seen every other join.
func newBenchHarnessOn(b *testing.B, nodes []*parleytest.Server) *benchHarness {
	b.Helper()
	n := len(nodes)
	h := &benchHarness{}
	for i, srv := range nodes {
		user := fmt.Sprintf("u%d", i)
		e, err := parley.NewEngine(parley.EngineConfig{AppID: srv.AppID, ServerURL: srv.URL}, nil, parley.WithLoopbackOnly())
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = e.Close() })
		bh := &benchHandler{joined: make(chan int, 1), got: make(chan struct{}, 1<<16), members: make(chan struct{}, 64)}
		room, err := e.CreateRoom("bench", bh)
		if err != nil {
			b.Fatal(err)
		}
		if err := room.JoinRoom(srv.Token("bench", user), parley.UserInfo{UserID: user}, parley.RoomConfig{}); err != nil {
			b.Fatal(err)
		}
		select {
		case st := <-bh.joined:
			if st != 0 {
				b.Fatalf("join state %d", st)
			}
		case <-time.After(20 * time.Second):
			b.Fatal("join timed out")
		}
		h.rooms = append(h.rooms, room)
		h.handlers = append(h.handlers, bh)
	}
	// Everyone must know everyone before a broadcast counts.
	for i, bh := range h.handlers {
		for range n - 1 {
			select {
			case <-bh.members:
			case <-time.After(20 * time.Second):
				b.Fatalf("u%d did not see the room fill", i)
			}
		}
	}
	return h
}

// roundTrip times one reliable user message from member from to member
// to, which echoes it, until the echo is in from's callback. Member to
// must echo (h.echo(to)).
func (h *benchHarness) roundTrip(b *testing.B, from, to int, payload []byte) time.Duration {
	start := time.Now()
	h.rooms[from].SendUserBinaryMessage(fmt.Sprintf("u%d", to), payload, parley.MessageConfigReliableOrdered)
	h.handlers[from].waitN(b, 1)
	return time.Since(start)
}

// oneWay times batch reliable user messages from member from to member
// to, until the last is in to's callback.
func (h *benchHarness) oneWay(b *testing.B, from, to int, payload []byte, batch int) time.Duration {
	start := time.Now()
	for range batch {
		h.rooms[from].SendUserBinaryMessage(fmt.Sprintf("u%d", to), payload, parley.MessageConfigReliableOrdered)
	}
	h.handlers[to].waitN(b, batch)
	return time.Since(start)
}

// echo makes member i send back the user messages it receives instead of
// counting them.
func (h *benchHarness) echo(i int) { h.handlers[i].echo.Store(h.rooms[i]) }

type benchHandler struct {
	parley.NopRoomEventHandler
	joined  chan int
	members chan struct{}
	got     chan struct{}
	echo    atomic.Pointer[parley.Room] // set after the join: read on the dispatcher's goroutine
}

func (h *benchHandler) OnRoomStateChanged(_, _ string, state int, _ parley.RoomStateInfo) {
	h.joined <- state
}
func (h *benchHandler) OnUserJoined(parley.UserInfo) { h.members <- struct{}{} }
func (h *benchHandler) OnUserBinaryMessageReceived(from string, m []byte) {
	if echo := h.echo.Load(); echo != nil {
		echo.SendUserBinaryMessage(from, m, parley.MessageConfigReliableOrdered)
		return
	}
	h.got <- struct{}{}
}
func (h *benchHandler) OnRoomBinaryMessageReceived(string, []byte) { h.got <- struct{}{} }

func (h *benchHandler) waitN(b *testing.B, n int) {
	timeout := time.After(30 * time.Second)
	for range n {
		select {
		case <-h.got:
		case <-timeout:
			b.Fatal("messages did not arrive within 30s")
		}
	}
}

// rawPair is two pion PeerConnections joined by Parley's three negotiated
// channels; the benchmarks use the reliable one. Side 0 sends; side 1
// counts what arrives, or echoes it back to side 0, which counts echoes.
type rawPair struct {
	w       *rawWriter // side 0's reliable channel
	back    *rawWriter // side 1's reliable channel
	echoes  atomic.Bool
	forward atomic.Pointer[rawPair] // side 1 writes what it reads to this pair's side 0
	got     chan struct{}
}

// rawWriter is the baseline's writer: pion's data channel with the flow
// control any sender needs (wait above transport.HighWater until the
// queue drains to transport.LowWater), and nothing else: no coalescing,
// no rooms.
type rawWriter struct {
	dc  *webrtc.DataChannel
	rw  io.Writer
	low chan struct{} // a token when the queue drained to LowWater
}

func newRawWriter(dc *webrtc.DataChannel, rw io.Writer) *rawWriter {
	w := &rawWriter{dc: dc, rw: rw, low: make(chan struct{}, 1)}
	dc.SetBufferedAmountLowThreshold(transport.LowWater)
	dc.OnBufferedAmountLow(func() {
		select {
		case w.low <- struct{}{}:
		default:
		}
	})
	return w
}

func (w *rawWriter) Write(ctx context.Context, p []byte) error {
	for w.dc.BufferedAmount() > transport.HighWater {
		select {
		case <-w.low:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	_, err := w.rw.Write(p)
	return err
}

func newRawPair(b *testing.B) *rawPair {
	b.Helper()
	pcs, dcs, chans := connectRaw(b, transport.NewAPI(transport.Options{LoopbackOnly: true, UnbatchedUDP: true}))
	for _, pc := range pcs {
		b.Cleanup(func() { _ = pc.Close() })
	}
	rel := transport.ChannelReliable
	p := &rawPair{
		w:    newRawWriter(dcs[0][rel], chans[0][rel]),
		back: newRawWriter(dcs[1][rel], chans[1][rel]),
		got:  make(chan struct{}, 1<<16),
	}
	go func() {
		_ = transport.ReadLoop(chans[0][rel], func([]byte) { p.got <- struct{}{} })
	}()
	go func() {
		_ = transport.ReadLoop(chans[1][rel], func(m []byte) {
			if p.echoes.Load() {
				_ = p.back.Write(context.Background(), m)
				return
			}
			if next := p.forward.Load(); next != nil {
				_ = next.w.Write(context.Background(), m)
				return
			}
			p.got <- struct{}{}
		})
	}()
	return p
}

// connectRaw connects two PeerConnections of api with Parley's three
// negotiated channels, offer and answer handed over in memory, and returns
// them once every channel is open at both ends.
func connectRaw(b *testing.B, api *webrtc.API) (pcs [2]*webrtc.PeerConnection, dcs [2][transport.NumChannels]*webrtc.DataChannel, chans [2]transport.Channels) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var opens [2]chan transport.Channels
	for i := range pcs {
		pc, err := api.NewPeerConnection(webrtc.Configuration{})
		must(b, err)
		pcs[i] = pc
		dcs[i], err = transport.CreateChannels(pc)
		must(b, err)
		opens[i] = make(chan transport.Channels, 1)
		transport.OnOpen(dcs[i], func(ch transport.Channels) { opens[i] <- ch }, func(err error) { b.Error(err) })
	}
	offer, err := pcs[0].CreateOffer(nil)
	must(b, err)
	must(b, pcs[0].SetLocalDescription(offer))
	must(b, transport.WaitGathered(ctx, pcs[0]))
	must(b, pcs[1].SetRemoteDescription(*pcs[0].LocalDescription()))
	answer, err := pcs[1].CreateAnswer(nil)
	must(b, err)
	must(b, pcs[1].SetLocalDescription(answer))
	must(b, transport.WaitGathered(ctx, pcs[1]))
	must(b, pcs[0].SetRemoteDescription(*pcs[1].LocalDescription()))
	for i := range chans {
		select {
		case chans[i] = <-opens[i]:
		case <-ctx.Done():
			b.Fatal("raw pair did not open")
		}
	}
	return pcs, dcs, chans
}

// echo makes side 1 send back what it reads instead of counting it.
func (p *rawPair) echo() { p.echoes.Store(true) }

// forwardTo makes side 1 relay what it reads to next's side 0 instead of
// counting it: a relay of two raw hops, next's side 1 counting.
func (p *rawPair) forwardTo(next *rawPair) { p.forward.Store(next) }

func (p *rawPair) send(b *testing.B, payload []byte) {
	if err := p.w.Write(context.Background(), payload); err != nil {
		b.Fatal(err)
	}
}

func (p *rawPair) waitN(b *testing.B, n int) {
	timeout := time.After(30 * time.Second)
	for range n {
		select {
		case <-p.got:
		case <-timeout:
			b.Fatal("raw messages did not arrive within 30s")
		}
	}
}

func percentile(d []time.Duration, p int) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}

func micros(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
