package transport

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// fakeDC is a data channel's queue: its BufferedAmount is set by the test,
// which also fires the low callback, as SCTP does when the queue drains.
type fakeDC struct {
	queued atomic.Uint64
	low    func()
}

func (d *fakeDC) BufferedAmount() uint64               { return d.queued.Load() }
func (d *fakeDC) SetBufferedAmountLowThreshold(uint64) {}
func (d *fakeDC) OnBufferedAmountLow(f func())         { d.low = f }

// drain empties the queue and runs the callback, on a goroutine of its own
// as an SCTP read loop would.
func (d *fakeDC) drain() {
	d.queued.Store(0)
	d.low()
}

// recordRW keeps every data-channel message written, and can hold a write
// until released.
type recordRW struct {
	mu     sync.Mutex
	writes [][]byte
	hold   chan struct{} // non-nil: the next write waits for it
	inside chan struct{} // told when a held write has started
}

func (r *recordRW) Write(b []byte) (int, error) {
	r.mu.Lock()
	hold, inside := r.hold, r.inside
	r.hold = nil
	r.writes = append(r.writes, bytes.Clone(b))
	r.mu.Unlock()
	if hold != nil {
		inside <- struct{}{}
		<-hold
	}
	return len(b), nil
}

func (r *recordRW) messages() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.writes...)
}

// packetN is a small encoded packet carrying n (as an ack's up_to).
func packetN(n int) []byte {
	b, _ := proto.Marshal(&pb.Packet{Body: &pb.Packet_Ack{Ack: &pb.Ack{Peer: "p", UpTo: int64(n)}}})
	return b
}

// unpack decodes the data-channel messages written and returns the
// packets' numbers in order, batches expanded, and how many messages were
// batches.
func unpack(t *testing.T, msgs [][]byte) (ns []int, batches int) {
	t.Helper()
	for _, m := range msgs {
		var p pb.Packet
		if err := proto.Unmarshal(m, &p); err != nil {
			t.Fatalf("written message does not decode: %v", err)
		}
		if len(p.Batch) > 0 {
			if p.Body != nil {
				t.Fatal("a batch with a body")
			}
			batches++
			for _, q := range p.Batch {
				ns = append(ns, int(q.GetAck().GetUpTo()))
			}
			continue
		}
		ns = append(ns, int(p.GetAck().GetUpTo()))
	}
	return ns, batches
}

func TestWriterLonePacketGoesAtOnce(t *testing.T) {
	dc, rw := &fakeDC{}, &recordRW{}
	w := NewWriter(dc, rw, true, true)
	for i := range 3 { // one after another, each alone on an idle channel
		if err := w.Write(context.Background(), packetN(i)); err != nil {
			t.Fatal(err)
		}
		if got := rw.messages(); len(got) != i+1 || !bytes.Equal(got[i], packetN(i)) {
			t.Fatalf("after Write %d the channel has %d messages; want it written at once, alone", i, len(got))
		}
	}
}

func TestWriterCoalescesWhileWriting(t *testing.T) {
	dc := &fakeDC{}
	release := make(chan struct{})
	rw := &recordRW{hold: release, inside: make(chan struct{}, 1)}
	w := NewWriter(dc, rw, true, true)
	done := make(chan error, 1)
	go func() { done <- w.Write(context.Background(), packetN(0)) }()
	<-rw.inside // packet 0 is being written
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := 1; i <= 10; i++ {
		if err := w.Write(ctx, packetN(i)); err != nil {
			close(release)
			t.Fatalf("Write %d waited for the write in progress (%v); want it queued", i, err)
		}
	}
	if n := len(rw.messages()); n != 1 {
		t.Fatalf("%d messages written while the first write was in progress; want them queued", n)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ns, batches := unpack(t, rw.messages())
	if len(rw.messages()) != 2 || batches != 1 {
		t.Fatalf("wrote %d messages (%d batches), want packet 0 then one batch of 1..10", len(rw.messages()), batches)
	}
	for i, n := range ns {
		if n != i {
			t.Fatalf("packets in order %v", ns)
		}
	}
}

func TestWriterBatchesWhileQueueFull(t *testing.T) {
	dc, rw := &fakeDC{}, &recordRW{}
	w := NewWriter(dc, rw, true, false)
	dc.queued.Store(LowWater + 1)
	for i := range 5 {
		if err := w.Write(context.Background(), packetN(i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(rw.messages()); n != 0 {
		t.Fatalf("%d messages written while SCTP held over LowWater; want them batched", n)
	}
	dc.drain()
	deadline := time.Now().Add(10 * time.Second)
	for len(rw.messages()) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond) // polling for the drain's goroutine
	}
	ns, batches := unpack(t, rw.messages())
	if len(rw.messages()) != 1 || batches != 1 || fmt.Sprint(ns) != "[0 1 2 3 4]" {
		t.Fatalf("after the drain: %d messages, %d batches, packets %v; want one batch of 0..4", len(rw.messages()), batches, ns)
	}
}

// A v1 peer takes no batches: every packet goes alone, whatever the queue.
func TestWriterNoBatchesForV1Peer(t *testing.T) {
	dc, rw := &fakeDC{}, &recordRW{}
	w := NewWriter(dc, rw, false, false)
	dc.queued.Store(LowWater + 1)
	for i := range 5 {
		if err := w.Write(context.Background(), packetN(i)); err != nil {
			t.Fatal(err)
		}
	}
	ns, batches := unpack(t, rw.messages())
	if batches != 0 || fmt.Sprint(ns) != "[0 1 2 3 4]" {
		t.Fatalf("v1 peer got %d batches, packets %v", batches, ns)
	}
}

// A packet too big to share a batch goes alone, after what was queued
// before it.
func TestWriterBigPacketAlone(t *testing.T) {
	dc, rw := &fakeDC{}, &recordRW{}
	w := NewWriter(dc, rw, true, false)
	dc.queued.Store(LowWater + 1)
	big, _ := proto.Marshal(&pb.Packet{Body: &pb.Packet_Message{Message: &pb.Message{MsgId: 7, Payload: make([]byte, MaxBatch)}}})
	for _, p := range [][]byte{packetN(1), packetN(2), big} {
		if err := w.Write(context.Background(), p); err != nil {
			t.Fatal(err)
		}
	}
	msgs := rw.messages()
	if len(msgs) != 2 || !bytes.Equal(msgs[1], big) {
		t.Fatalf("wrote %d messages; want the batch of 1, 2 then the big packet alone", len(msgs))
	}
	if ns, _ := unpack(t, msgs[:1]); fmt.Sprint(ns) != "[1 2]" {
		t.Fatalf("first message holds %v", ns)
	}
}

// Order under concurrent writers and a queue that fills and drains: each
// writer's packets arrive in its order, all of them, none twice.
func TestWriterKeepsOrderUnderConcurrency(t *testing.T) {
	dc, rw := &fakeDC{}, &recordRW{}
	w := NewWriter(dc, rw, true, true)
	const writers, each = 4, 500
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				if i%50 == 0 { // the queue fills, then drains
					if g%2 == 0 {
						dc.queued.Store(LowWater + 1)
					} else {
						dc.drain()
					}
				}
				if err := w.Write(context.Background(), packetN(g*each+i)); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	dc.drain()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ns, _ := unpack(t, rw.messages())
		if len(ns) == writers*each {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d packets written", len(ns), writers*each)
		}
		time.Sleep(time.Millisecond) // polling for the drain's goroutine
	}
	ns, batches := unpack(t, rw.messages())
	last := make([]int, writers)
	for g := range last {
		last[g] = -1
	}
	for _, n := range ns {
		g, i := n/each, n%each
		if i != last[g]+1 {
			t.Fatalf("writer %d: packet %d after %d", g, i, last[g])
		}
		last[g] = i
	}
	t.Logf("%d packets in %d messages (%d batches)", len(ns), len(rw.messages()), batches)
}

// The batch format: entries appended by AppendEntry decode as
// Packet.batch, each packet as it was.
func TestBatchRoundTrip(t *testing.T) {
	ps := []*pb.Packet{
		{Body: &pb.Packet_Message{Message: &pb.Message{MsgId: 1, To: "b", Payload: bytes.Repeat([]byte{1}, 300)}}},
		{Body: &pb.Packet_Ack{Ack: &pb.Ack{Peer: "c", UpTo: 9}}},
		{Body: &pb.Packet_Result{Result: &pb.Result{MsgId: 2, Code: 200}}},
		{Body: &pb.Packet_Message{Message: &pb.Message{MsgId: 3, Broadcast: true}}},
	}
	var b []byte
	for _, p := range ps {
		e, err := proto.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		b = AppendEntry(b, e)
	}
	var got pb.Packet
	if err := proto.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.Body != nil || len(got.Batch) != len(ps) {
		t.Fatalf("decoded %v", &got)
	}
	for i := range ps {
		if !proto.Equal(got.Batch[i], ps[i]) {
			t.Fatalf("entry %d: %v, want %v", i, got.Batch[i], ps[i])
		}
	}
	// And the other way: what protobuf encodes is what AppendEntry builds.
	want, _ := proto.Marshal(&pb.Packet{Batch: ps})
	if !bytes.Equal(b, want) {
		t.Fatal("AppendEntry's batch differs from protobuf's encoding")
	}
}
