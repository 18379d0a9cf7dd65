package server

import (
	"sync"
	"testing"
	"time"

	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley/internal/transport"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// TestReopenDuringTraffic: a member's session replaces its transport and
// rejoins, again and again, while another member's messages to it flow,
// so the relay writes to the member while a reopen replaces its transport
// (run it with -race). Every send gets its result, and the member gets
// messages on its last PeerConnection.
func TestReopenDuringTraffic(t *testing.T) {
	s, logs := startObserved(t, Config{})
	defer func() {
		if t.Failed() {
			for _, e := range logs.All() {
				t.Log(e.Message, e.ContextMap())
			}
		}
	}()
	a, b := newPeer(t, s), newPeer(t, s)
	aPC, aCh := a.join("race", "a", false)
	b.join("race", "b", false)

	var readers sync.WaitGroup
	var lastPC *webrtc.PeerConnection
	t.Cleanup(func() { // the read loops end with their PeerConnections
		_ = aPC.Close()
		if lastPC != nil {
			_ = lastPC.Close()
		}
		readers.Wait()
	})
	// a's results, as they come on its reliable channel.
	results := make(chan *pb.Result, 1024)
	readers.Add(1)
	go func() {
		defer readers.Done()
		_ = transport.ReadLoop(aCh[transport.ChannelReliable], func(buf []byte) {
			eachPacket(buf, func(p *pb.Packet) {
				if p.GetResult() != nil {
					results <- p.GetResult()
				}
			})
		})
	}()

	// a's traffic to b: one message in flight at a time, each waiting for
	// its result, so it runs as fast as the relay answers, for as long as
	// the rejoins take (bounded by count and time).
	stop := make(chan struct{})
	sent := make(chan int64, 1)
	go func() {
		id := int64(0)
		defer func() { sent <- id }()
		deadline := time.Now().Add(2 * time.Minute)
		for id < 200_000 && time.Now().Before(deadline) {
			select {
			case <-stop:
				return
			default:
			}
			id++
			if _, err := aCh[transport.ChannelUnreliableOrdered].Write(packet(t, &pb.Packet{Body: &pb.Packet_Message{Message: &pb.Message{
				MsgId: id, To: "b", Payload: []byte("during a reopen"),
			}}})); err != nil {
				t.Errorf("send %d: %v", id, err)
				return
			}
			select {
			case r := <-results:
				if r.MsgId != id || (r.Code != resultSuccess && r.Code != resultNoRelayPath) {
					t.Errorf("result %v for message %d", r, id)
					return
				}
			case <-time.After(waitTimeout):
				t.Errorf("no result for message %d", id)
				return
			}
		}
	}()

	const rejoins = 5
	var last transport.Channels
	for range rejoins {
		lastPC, last = b.join("race", "b", true)
	}
	close(stop)
	n := <-sent
	require.False(t, t.Failed())
	require.Greater(t, n, int64(rejoins), "messages flowed during the reopens")
	t.Logf("%d messages during %d reopens", n, rejoins)

	// b's last PeerConnection carries a's next message.
	got := make(chan *pb.Message, 16)
	readers.Add(1)
	go func() {
		defer readers.Done()
		_ = transport.ReadLoop(last[transport.ChannelReliable], func(buf []byte) {
			eachPacket(buf, func(p *pb.Packet) {
				if p.GetMessage() != nil {
					got <- p.GetMessage()
				}
			})
		})
	}()
	_, err := aCh[transport.ChannelReliable].Write(packet(t, &pb.Packet{Body: &pb.Packet_Message{Message: &pb.Message{
		MsgId: n + 1, To: "b", Payload: []byte("after"),
	}}}))
	require.NoError(t, err)
	select {
	case m := <-got:
		require.Equal(t, n+1, m.MsgId)
		require.Equal(t, "a", m.From)
	case <-time.After(waitTimeout):
		t.Fatal("b's last PeerConnection got nothing")
	}
}
