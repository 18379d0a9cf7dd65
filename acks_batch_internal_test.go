package parley

import (
	"bytes"
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/parleyhq/parley/internal/acks"
	"github.com/parleyhq/parley/internal/transport"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// recordWrites keeps the data-channel messages written to it.
type recordWrites struct {
	mu sync.Mutex
	b  [][]byte
}

func (r *recordWrites) Write(b []byte) (int, error) {
	r.mu.Lock()
	r.b = append(r.b, bytes.Clone(b))
	r.mu.Unlock()
	return len(b), nil
}

// TestAcksDueAtOnceInOnePacket: the acks a join owes to several senders
// at once go out as one data-channel message, a batch, each entry naming
// the room, even on an idle channel.
func TestAcksDueAtOnceInOnePacket(t *testing.T) {
	upTo := map[string]int64{"alice": 7, "bob": 3, "carol": 12}
	rec := &recordWrites{}
	r := &Room{id: "r", handle: 9}
	r.e = &Engine{}
	x := &rtc{}
	ws := [transport.NumChannels]*transport.Writer{}
	for i := range ws {
		ws[i] = transport.NewFlowWriter(idleQueue{}, rec)
	}
	x.ws.Store(&ws)
	a := &attempt{r: r, roomID: "r", rtc: x}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.flushAcks(upTo)
	a.cancel()

	if len(rec.b) != 1 {
		t.Fatalf("%d data-channel messages for %d acks, want 1", len(rec.b), len(upTo))
	}
	var p pb.Packet
	if err := proto.Unmarshal(rec.b[0], &p); err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, q := range p.Batch {
		if q.Room != r.handle {
			t.Fatalf("an ack of room %d, want %d", q.Room, r.handle)
		}
		got[q.GetAck().GetPeer()] = q.GetAck().GetUpTo()
	}
	for peer, id := range upTo {
		if got[peer] != id {
			t.Fatalf("acks %v, want %v", got, upTo)
		}
	}
}

// TestAcksRideWithASend: the lazy acks (broadcasts') a room owes when it
// sends on the reliable channel go in the same data-channel message as the
// send, after it, and their timer sends nothing after; a send on the
// unreliable channel leaves them to the timer, and so does one while an
// urgent ack (a user message's) is owed.
func TestAcksRideWithASend(t *testing.T) {
	e, r, a := joinedRoom(t, nil)
	rec := &recordWrites{}
	x := &rtc{e: e}
	var ws [transport.NumChannels]*transport.Writer
	for i := range ws {
		x.chans[i] = discardRW{}
		ws[i] = transport.NewFlowWriter(idleQueue{}, rec)
	}
	x.ws.Store(&ws)
	flushed := make(chan map[string]int64, 4)
	a.ctx, a.cancel = context.WithCancel(context.Background())
	t.Cleanup(a.cancel)
	a.owed = acks.Batcher{Delay: time.Hour, Lazy: 2 * time.Hour, Flush: func(upTo map[string]int64) { flushed <- upTo }}
	r.mu.Lock()
	a.rtc = x
	r.mu.Unlock()

	a.owed.AckLazy("bob", 5, 64)
	a.owed.AckLazy("carol", 9, 64)
	require.Positive(t, r.SendRoomMessage("hi"))
	rec.mu.Lock()
	writes := rec.b
	rec.b = nil
	rec.mu.Unlock()
	require.Len(t, writes, 1, "one data-channel message for the send and its acks")
	var p pb.Packet
	require.NoError(t, proto.Unmarshal(writes[0], &p))
	got := map[string]int64{}
	require.Len(t, p.Batch, 3)
	require.Equal(t, "hi", string(p.Batch[0].GetMessage().GetPayload()), "the message goes first")
	for _, q := range p.Batch {
		require.Equal(t, r.handle, q.Room)
		if ack := q.GetAck(); ack != nil {
			got[ack.Peer] = ack.UpTo
		}
	}
	require.Equal(t, map[string]int64{"bob": 5, "carol": 9}, got)
	require.Nil(t, a.owed.TakeLazy(), "the acks are still owed after riding with the send")

	a.owed.AckLazy("bob", 6, 64)
	require.Positive(t, r.SendUserMessage("bob", "fast", MessageConfigUnreliableUnordered))
	require.Equal(t, map[string]int64{"bob": 6}, a.owed.TakeLazy(), "an unreliable send took the acks")

	rec.mu.Lock()
	rec.b = nil
	rec.mu.Unlock()
	a.owed.AckLazy("bob", 7, 64)
	a.owed.Ack("carol", 10) // urgent
	require.Positive(t, r.SendRoomMessage("again"))
	rec.mu.Lock()
	writes = rec.b
	rec.mu.Unlock()
	require.Len(t, writes, 1)
	require.NoError(t, proto.Unmarshal(writes[0], &p))
	require.Equal(t, "again", string(p.GetMessage().GetPayload()), "a lone message, no acks with it")
}
