package browsertest

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// The browser SDK's ack policy (web/src/parley.ts), the Go SDK's: a user
// message's ack goes 2 ms after the first one owed; a broadcast's may
// wait 2 s, or until 256 KiB of broadcasts are owed; and while only
// broadcasts' acks are owed, they ride with the page's next reliable send.
const (
	broadcastAckDelayMS = 2000
	broadcastAckBytes   = 256 << 10
)

// sent is one data-channel message the page sent (h.recordSends).
type sent struct {
	Stream int     `json:"stream"`
	At     float64 `json:"at"`    // performance.now(), in ms
	Bytes  string  `json:"bytes"` // base64
}

// nextSent waits for the next data-channel message the page sends.
func (p *page) nextSent() sent {
	p.t.Helper()
	return evalT[sent](p, "h.next('sent')")
}

// packets decodes the message: a batch's entries, or its one packet.
func (s sent) packets(t *testing.T) []*pb.Packet {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s.Bytes)
	require.NoError(t, err)
	var p pb.Packet
	require.NoError(t, proto.Unmarshal(b, &p))
	if len(p.Batch) > 0 {
		return p.Batch
	}
	return []*pb.Packet{&p}
}

// ackTo is the highest ack to peer among packets, or 0.
func ackTo(peer string, packets []*pb.Packet) int64 {
	var upTo int64
	for _, q := range packets {
		if a := q.GetAck(); a != nil && a.Peer == peer {
			upTo = max(upTo, a.UpTo)
		}
	}
	return upTo
}

// untilAcked reads the page's data-channel messages until one acks peer's
// messages up to id, and returns those that carried acks to peer, that
// one last. Acks go on the reliable channel only.
func (p *page) untilAcked(peer string, id int64) []sent {
	p.t.Helper()
	var acks []sent
	for range 1000 {
		s := p.nextSent()
		upTo := ackTo(peer, s.packets(p.t))
		if upTo == 0 {
			continue
		}
		require.Equal(p.t, 0, s.Stream, "an ack off the reliable channel")
		acks = append(acks, s)
		if upTo >= id {
			return acks
		}
	}
	p.t.Fatalf("no ack to %s up to %d in 1,000 data-channel messages", peer, id)
	return nil
}

// metric reads one unlabelled metric of the server.
func metric(t *testing.T, srv *parleytest.Server, name string) float64 {
	t.Helper()
	c := &http.Client{Timeout: waitTimeout, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + srv.Server().MetricsAddr().String() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			require.NoError(t, err, line)
			return f
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestBroadcastAcksAreLazy: a trickle of broadcasts to the page costs it
// one ack per 2 s, not one per broadcast, and that ack still comes,
// about 2 s after the first broadcast it covers; 256 KiB of broadcasts
// owed make it go at once.
func TestBroadcastAcksAreLazy(t *testing.T) {
	_, p, g := inRoom(t)
	evalT[bool](p, "h.recordSends()")

	// A trickle: each broadcast after the page has the one before.
	const n = 20
	ids := make([]int64, n)
	var first, last event
	for i := range n {
		ids[i] = g.room.SendRoomMessage(fmt.Sprintf("trickle %d", i))
		last = p.next("onRoomMessageReceived")
		require.Equal(t, fmt.Sprintf("trickle %d", i), last.Message)
		if i == 0 {
			first = last
		}
	}
	for _, id := range ids {
		require.Equal(t, 200, g.rec.WaitResult(t, id).Code)
	}
	acks := p.untilAcked("gopher", ids[n-1])
	spread := last.At - first.At
	t.Logf("%d broadcasts over %.1f ms: %d data-channel messages with acks, the first %.1f ms after the first broadcast, the last %.1f ms after the last",
		n, spread, len(acks), acks[0].At-first.At, acks[len(acks)-1].At-last.At)
	require.GreaterOrEqual(t, acks[0].At-first.At, float64(broadcastAckDelayMS-5), "the first ack did not wait")
	require.LessOrEqual(t, len(acks), 1+int(spread/broadcastAckDelayMS), "more than one ack per %d ms", broadcastAckDelayMS)
	require.Less(t, acks[len(acks)-1].At-last.At, float64(broadcastAckDelayMS+1500), "the last broadcasts were not acknowledged in time")

	// Past 256 KiB owed, the ack is urgent: it goes well before the oldest
	// broadcast it covers is 2 s old. The broadcasts go in a burst; on a
	// slow machine they may still arrive slower than 256 KiB per 2 s,
	// and then the lazy timer rightly acks them first: the check is made
	// at the arrival that brought what is owed past 256 KiB, if any did.
	const big = 64 << 10
	k := 2 * (broadcastAckBytes/big + 1)
	ids = ids[:0]
	for i := range k {
		ids = append(ids, g.room.SendRoomBinaryMessage(pattern(big, i)))
	}
	arrived := make([]float64, k)
	for i := range k {
		ev := p.next("onRoomBinaryMessageReceived")
		require.Equal(t, pattern(big, i), ev.payload(t), "broadcast %d", i)
		arrived[i] = ev.At
	}
	acks = p.untilAcked("gopher", ids[k-1])
	t.Logf("%d broadcasts of %d bytes: arrived over %.1f ms, acknowledged %.1f ms after the last arrived, in %d data-channel messages",
		k, big, arrived[k-1]-arrived[0], acks[len(acks)-1].At-arrived[k-1], len(acks))
	// oldest is the first broadcast not acknowledged before arrival i;
	// crossed the first arrival that made more than 256 KiB owed.
	oldest, crossed := 0, -1
	for i := range k {
		for _, a := range acks {
			if a.At <= arrived[i] {
				for oldest < i && ids[oldest] <= ackTo("gopher", a.packets(t)) {
					oldest++
				}
			}
		}
		if (i+1-oldest)*big > broadcastAckBytes {
			crossed = i
			break
		}
	}
	if crossed < 0 {
		t.Logf("the broadcasts arrived slower than %d KiB per %d ms: each lazy ack went first, and no ack had to be urgent", broadcastAckBytes>>10, broadcastAckDelayMS)
		return
	}
	if age := arrived[crossed] - arrived[oldest]; age > broadcastAckDelayMS/2 {
		// The lazy timer was due soon anyway: an ack now cannot tell the
		// two apart (seen on a slow VM: crossed at 474 ms, acked at 497).
		t.Logf("%d KiB owed only at broadcast %d, the oldest owed already %.1f ms old: too close to the lazy ack's %d ms to tell an urgent one from it",
			(crossed+1-oldest)*big>>10, crossed, age, broadcastAckDelayMS)
		return
	}
	var urgent *sent
	for i := range acks {
		if ackTo("gopher", acks[i].packets(t)) >= ids[crossed] {
			urgent = &acks[i]
			break
		}
	}
	require.NotNil(t, urgent)
	t.Logf("%d KiB owed at broadcast %d, the oldest owed %.1f ms old: acknowledged %.1f ms later",
		(crossed+1-oldest)*big>>10, crossed, arrived[crossed]-arrived[oldest], urgent.At-arrived[crossed])
	require.Less(t, urgent.At-arrived[oldest], float64(broadcastAckDelayMS-10),
		"%d KiB owed did not make the ack urgent", (crossed+1-oldest)*big>>10)
}

// TestLazyAcksRideWithASend: while the page owes only broadcasts' acks, a
// reliable send of its own carries them: one data-channel message, a
// batch of the message and then the acks, each naming the room. An
// unreliable send leaves them to their timer, and so does an urgent ack
// owed (a user message's), which goes on its own 2 ms timer.
func TestLazyAcksRideWithASend(t *testing.T) {
	h, p, g := inRoom(t)
	// The page answers in the handler, in the same task that received the
	// message: no ack timer can have run in between.
	evalT[bool](p, `(() => {
		const e = h.engine;
		e.on('onRoomMessageReceived', ({ message }) => {
			if (message === 'to a user message') e.sendUserMessage('gopher', 'a user message');
			if (message === 'to a broadcast') e.sendRoomMessage('a broadcast');
			if (message === 'to an unreliable message') e.sendUserMessage('gopher', 'an unreliable message', sdk.MessageConfig.UNRELIABLE_ORDERED);
		});
		e.on('onUserMessageReceived', ({ message }) => {
			if (message === 'to an urgent ack') e.sendUserMessage('gopher', 'beside an urgent ack');
		});
		return h.recordSends();
	})()`)

	for _, c := range []struct {
		name   string
		send   func() int64 // Go's message to the page, whose ack it owes
		answer string       // the page's answer
		rides  bool
	}{
		{"a user message", func() int64 { return g.room.SendRoomMessage("to a user message") }, "a user message", true},
		{"a broadcast", func() int64 { return g.room.SendRoomMessage("to a broadcast") }, "a broadcast", true},
		{"an unreliable message", func() int64 { return g.room.SendRoomMessage("to an unreliable message") }, "an unreliable message", false},
		{"an urgent ack owed", func() int64 {
			g.room.SendRoomMessage("lazy, before the urgent one")
			return g.room.SendUserMessage("web", "to an urgent ack", parley.MessageConfigReliableOrdered)
		}, "beside an urgent ack", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := p.in(t)
			id := c.send()
			// The page's data-channel messages, up to the one with its answer.
			var answer sent
			var packets []*pb.Packet
			for range 1000 {
				answer = p.nextSent()
				packets = answer.packets(t)
				if m := packets[0].GetMessage(); m != nil && string(m.Payload) == c.answer {
					break
				}
				require.Zero(t, ackTo("gopher", packets), "an ack went before the answer")
			}
			require.Equal(t, c.answer, string(packets[0].GetMessage().GetPayload()), "the answer goes first")
			if !c.rides {
				require.Len(t, packets, 1, "an ack rode with %s", c.name)
				acks := p.untilAcked("gopher", id)
				t.Logf("acknowledged on its own %.1f ms after the answer", acks[len(acks)-1].At-answer.At)
			} else {
				require.Equal(t, 0, answer.Stream)
				require.Len(t, packets, 2, "the answer and then the ack, in one batch")
				require.Equal(t, &pb.Ack{Peer: "gopher", UpTo: id}, packets[1].GetAck())
				require.NotZero(t, packets[0].Room)
				require.Equal(t, packets[0].Room, packets[1].Room, "every entry names the room")
			}
			if c.answer != "an unreliable message" {
				m := g.rec.NextWhere(t, c.answer, func(e parleytest.Event) bool {
					m, ok := e.(parleytest.Message)
					return ok && string(m.Payload) == c.answer
				}).(parleytest.Message)
				require.Equal(t, "web", m.From)
			}
		})
	}
	// The server took every entry of the page's batches.
	require.Zero(t, metric(t, h.srv, "parley_bad_packets_total"))
	require.Zero(t, metric(t, h.srv, "parley_stray_packets_total"))
}
