package parley

import (
	"bytes"
	"context"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

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
