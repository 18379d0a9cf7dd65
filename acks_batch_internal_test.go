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

// TestAcksDueAtOnceInOnePacket: the acks an attempt owes to several
// senders at once go out as one data-channel message, a batch, when the
// server takes batches; one packet per sender when it does not.
func TestAcksDueAtOnceInOnePacket(t *testing.T) {
	upTo := map[string]int64{"alice": 7, "bob": 3, "carol": 12}
	for _, batch := range []bool{true, false} {
		rec := &recordWrites{}
		r := &Room{id: "r"}
		r.e = &Engine{}
		a := &attempt{r: r, roomID: "r", batch: batch}
		a.ctx, a.cancel = context.WithCancel(context.Background())
		a.writers[transport.ChannelReliable] = transport.NewFlowWriter(idleQueue{}, rec, batch)
		a.flushAcks(upTo)
		a.cancel()

		want := 1
		if !batch {
			want = len(upTo)
		}
		if len(rec.b) != want {
			t.Fatalf("batch %v: %d data-channel messages for %d acks, want %d", batch, len(rec.b), len(upTo), want)
		}
		got := map[string]int64{}
		for _, m := range rec.b {
			var p pb.Packet
			if err := proto.Unmarshal(m, &p); err != nil {
				t.Fatal(err)
			}
			ps := p.Batch
			if len(ps) == 0 {
				ps = []*pb.Packet{&p}
			} else if !batch {
				t.Fatal("a batch to a server that takes none")
			}
			for _, q := range ps {
				got[q.GetAck().GetPeer()] = q.GetAck().GetUpTo()
			}
		}
		for peer, id := range upTo {
			if got[peer] != id {
				t.Fatalf("batch %v: acks %v, want %v", batch, got, upTo)
			}
		}
	}
}
