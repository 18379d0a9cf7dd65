package server

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/parleyhq/parley/internal/transport"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// TestFanoutOffReaderKeepsSenderOrder: while the room's fan-out worker is
// busy (with another member's broadcast, held here), a's reader hands its
// broadcasts to the worker and goes on reading: nothing reaches b yet.
// a's reliable user messages to b that follow a queued broadcast wait
// behind it, so b gets a's 20 reliable messages in ID order (its
// cumulative ack and duplicate check depend on it), and a gets 200 for
// each broadcast once the worker has handed it to b.
func TestFanoutOffReaderKeepsSenderOrder(t *testing.T) {
	rig := newRelayRig(t, Config{})
	r := rig.a.room
	release := make(chan struct{})
	r.handOff(rig.b, 0, func() { <-release })
	read := make(chan struct{})
	go func() {
		defer close(read)
		for id := int64(1); id <= 20; id++ {
			msg := &pb.Message{MsgId: id, Payload: []byte("x")}
			if id%2 == 1 {
				msg.Broadcast = true
			} else {
				msg.To = "b"
			}
			b, _ := proto.Marshal(&pb.Packet{Room: rig.a.handle, Body: &pb.Packet_Message{Message: msg}})
			buf := make([]byte, readHeadroom+len(b)+readTailroom)
			copy(buf[readHeadroom:], b)
			rig.a.rtc.onPacket(transport.ChannelReliable, buf, readHeadroom, readHeadroom+len(b))
		}
	}()
	select {
	case <-read:
	case <-time.After(waitTimeout):
		t.Fatal("a's reader was held up by the fan-out")
	}
	require.Empty(t, rig.packets(t, rig.b), "b got a message before the broadcast queued ahead of it")
	close(release)
	waitIdle(t, r)

	var ids []int64
	for _, p := range rig.packets(t, rig.b) {
		if m := p.GetMessage(); m != nil {
			require.Equal(t, "a", m.From)
			ids = append(ids, m.MsgId)
		}
	}
	want := make([]int64, 20)
	for i := range want {
		want[i] = int64(i + 1)
	}
	require.Equal(t, want, ids, "b got a's reliable messages out of order")
	results := 0
	for _, p := range rig.packets(t, rig.a) {
		if res := p.GetResult(); res != nil && res.Code == resultRoomSuccess {
			require.Equal(t, int64(1), res.MsgId%2, "200 for a user message")
			results++
		}
	}
	require.Equal(t, 10, results, "one 200 for each broadcast")
}

// TestFanoutBacklogHoldsOnlyItsSender: a session's reader carries all its
// rooms, so a hand-off that waits holds up its other rooms too. While the
// room's worker is busy and b has a full queue of its own (maxFanQueue
// bytes), b's next hand-off waits, and says so in
// parley_fanout_waits_total; a's does not wait for b's backlog. Once the
// worker goes on, b's goes through.
func TestFanoutBacklogHoldsOnlyItsSender(t *testing.T) {
	rig := newRelayRig(t, Config{})
	r := rig.a.room
	release := make(chan struct{})
	r.handOff(rig.b, maxFanQueue, func() { <-release })

	bDone := make(chan struct{})
	go func() {
		defer close(bDone)
		r.handOff(rig.b, 1, func() {})
	}()
	waits := func() float64 { return testutil.ToFloat64(rig.srv.metrics.fanoutWaits) }
	require.Eventually(t, func() bool { return waits() == 1 }, waitTimeout, time.Millisecond, "b's hand-off past its bound did not wait")

	aDone := make(chan struct{})
	go func() {
		defer close(aDone)
		r.handOff(rig.a, 1, func() {})
	}()
	select {
	case <-aDone:
	case <-time.After(waitTimeout):
		t.Fatal("a's hand-off waited for b's backlog")
	}
	select {
	case <-bDone:
		t.Fatal("b's hand-off went past its bound while the worker was held")
	default:
	}

	close(release)
	select {
	case <-bDone:
	case <-time.After(waitTimeout):
		t.Fatal("b's hand-off still waits after the worker went on")
	}
	waitIdle(t, r)
	r.fan.mu.Lock()
	defer r.fan.mu.Unlock()
	require.Zero(t, rig.a.fanBytes+rig.b.fanBytes+r.fan.bytes, "bytes left counted after the queue drained")
}
