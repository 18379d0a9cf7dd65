package transport

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// fakeDC is a data channel's queue: its BufferedAmount is set by the test
// (or grown by a filling recordRW), which also fires the low callback, as
// SCTP does when the queue drains.
type fakeDC struct {
	queued atomic.Uint64
	low    func()
}

func (d *fakeDC) BufferedAmount() uint64               { return d.queued.Load() }
func (d *fakeDC) SetBufferedAmountLowThreshold(uint64) {}
func (d *fakeDC) OnBufferedAmountLow(f func())         { d.low = f }

// full makes SCTP hold more than LowWater: Writes queue.
func (d *fakeDC) full() { d.queued.Store(LowWater + 1) }

// drain empties the queue and runs the callback, as SCTP does; the Writer
// then flushes from a goroutine of its own.
func (d *fakeDC) drain() {
	d.queued.Store(0)
	d.low()
}

// drainNow empties the queue and flushes w on the test's goroutine, as
// the goroutine the callback starts would: the test knows the flush is
// over when drainNow returns. It reports whether w had anything to flush.
func drainNow(d *fakeDC, w *Writer) bool {
	d.queued.Store(0)
	if !w.claim() {
		return false
	}
	w.flush(nil)
	return true
}

// recordRW keeps every data-channel message written, and can hold a write
// until released, add what it writes to dc's queue as SCTP does (fill),
// and note the goroutine of each write.
type recordRW struct {
	fill *fakeDC // non-nil: a write adds its size to fill's queue

	mu     sync.Mutex
	writes [][]byte      // guarded by mu
	gids   []uint64      // the goroutine of each write; guarded by mu
	hold   chan struct{} // non-nil: the next write waits for it; guarded by mu
	inside chan struct{} // told when a held write has started; guarded by mu
	wrote  chan struct{} // non-nil: told (without blocking) after each write; guarded by mu
}

func (r *recordRW) Write(b []byte) (int, error) {
	g := goid()
	r.mu.Lock()
	hold, inside, wrote := r.hold, r.inside, r.wrote
	r.hold = nil
	r.writes = append(r.writes, bytes.Clone(b))
	r.gids = append(r.gids, g)
	r.mu.Unlock()
	if r.fill != nil {
		r.fill.queued.Add(uint64(len(b)))
	}
	if hold != nil {
		inside <- struct{}{}
		<-hold
	}
	if wrote != nil {
		select {
		case wrote <- struct{}{}:
		default:
		}
	}
	return len(b), nil
}

func (r *recordRW) messages() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]byte(nil), r.writes...)
}

// waitFor waits until the messages written satisfy ok, each write being
// the event that makes it look again; it fails the test after 10 s.
func (r *recordRW) waitFor(t *testing.T, ok func(msgs [][]byte) bool) {
	t.Helper()
	r.mu.Lock()
	if r.wrote == nil {
		r.wrote = make(chan struct{}, 1)
	}
	wrote := r.wrote
	r.mu.Unlock()
	deadline := time.After(10 * time.Second)
	for !ok(r.messages()) {
		select {
		case <-wrote:
		case <-deadline:
			t.Fatalf("messages written never became what the test waits for (%d written)", len(r.messages()))
		}
	}
}

// goid is the calling goroutine's ID, from its stack's header.
func goid() uint64 {
	var b [64]byte
	s := bytes.TrimPrefix(b[:runtime.Stack(b[:], false)], []byte("goroutine "))
	id, _ := strconv.ParseUint(string(s[:bytes.IndexByte(s, ' ')]), 10, 64)
	return id
}

// waitingCtx is a context that tells when a Write is about to wait on
// it: Write asks for Done only then.
type waitingCtx struct {
	context.Context
	waiting chan struct{}
}

func newWaitingCtx() waitingCtx {
	return waitingCtx{context.Background(), make(chan struct{}, 1)}
}

func (c waitingCtx) Done() <-chan struct{} {
	select {
	case c.waiting <- struct{}{}:
	default:
	}
	return c.Context.Done()
}

// packet is an encoded packet, without its room, carrying n (as the
// message's ID) and size bytes of payload.
func packet(n, size int) []byte {
	b, _ := proto.Marshal(&pb.Packet{Body: &pb.Packet_Message{Message: &pb.Message{MsgId: int64(n), Payload: make([]byte, size)}}})
	return b
}

// sent is a packet as a data channel carried it.
type sent struct {
	room uint32
	n    int
}

func (s sent) String() string { return fmt.Sprintf("%d:%d", s.room, s.n) }

// unpack decodes the data-channel messages written: the packets in order,
// batches expanded, and, per message, the packets it held (one for a
// plain packet). Every packet must name its room; a batch must hold
// nothing but entries.
func unpack(t *testing.T, msgs [][]byte) (all []sent, per [][]sent) {
	t.Helper()
	one := func(b []byte) sent {
		t.Helper()
		var p pb.Packet
		if err := proto.Unmarshal(b, &p); err != nil || p.GetMessage() == nil || len(p.Batch) > 0 {
			t.Fatalf("packet does not decode as a message (%v)", err)
		}
		if p.Room == 0 {
			t.Fatal("packet without a room")
		}
		return sent{p.Room, int(p.GetMessage().GetMsgId())}
	}
	for _, m := range msgs {
		entries, batch := batchEntries(t, m)
		if !batch {
			entries = [][]byte{m}
		}
		var in []sent
		for _, e := range entries {
			in = append(in, one(e))
		}
		all = append(all, in...)
		per = append(per, in)
	}
	return all, per
}

// batchEntries splits m into its Packet.batch entries, and reports
// whether it is a batch. A batch with another field fails the test.
func batchEntries(t *testing.T, m []byte) (entries [][]byte, batch bool) {
	t.Helper()
	other := false
	for b := m; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			t.Fatal("written message is not protobuf")
		}
		b = b[n:]
		if num == FieldPacketBatch && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				t.Fatal("bad batch entry")
			}
			entries, batch, b = append(entries, v), true, b[n:]
			continue
		}
		other = true
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			t.Fatal("written message is not protobuf")
		}
		b = b[n:]
	}
	if batch && other {
		t.Fatal("a batch with a field of its own (a body, or a room)")
	}
	return entries, batch
}

func TestWriterLonePacketGoesAtOnce(t *testing.T) {
	dc, rw := &fakeDC{}, &recordRW{}
	w := NewFlowWriter(dc, rw)
	for i, room := range []uint32{1, 2, 1} { // one after another, each alone on an idle channel
		if err := w.Write(context.Background(), room, packet(i, 10)); err != nil {
			t.Fatal(err)
		}
		got := rw.messages()
		if len(got) != i+1 || !bytes.Equal(got[i], AppendRoom(packet(i, 10), room)) {
			t.Fatalf("after Write %d the channel has %d messages; want it written at once, alone, with its room", i, len(got))
		}
		if g := rw.gids[i]; g != goid() {
			t.Fatalf("Write %d wrote from goroutine %d, not its caller's (%d)", i, g, goid())
		}
	}
}

func TestWriterCoalescesWhileWriting(t *testing.T) {
	dc := &fakeDC{}
	release := make(chan struct{})
	rw := &recordRW{hold: release, inside: make(chan struct{}, 1)}
	w := NewFlowWriter(dc, rw)
	done := make(chan error, 1)
	go func() { done <- w.Write(context.Background(), 1, packet(0, 10)) }()
	<-rw.inside // packet 0 is being written
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := 1; i <= 10; i++ {
		if err := w.Write(ctx, uint32(1+i%2), packet(i, 10)); err != nil {
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
	_, per := unpack(t, rw.messages())
	// Room 2 has 1, 3, 5, ...; room 1 has 2, 4, ...: room 2 queued first.
	if got := fmt.Sprint(per); got != "[[1:0] [2:1 1:2 2:3 1:4 2:5 1:6 2:7 1:8 2:9 1:10]]" {
		t.Fatalf("messages %s; want packet 0, then one batch, round-robin", got)
	}
}

func TestWriterBatchesWhileQueueFull(t *testing.T) {
	dc, rw := &fakeDC{}, &recordRW{}
	w := NewWriter(dc, rw, false)
	dc.full()
	for i := range 5 {
		if err := w.Write(context.Background(), 7, packet(i, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(rw.messages()); n != 0 {
		t.Fatalf("%d messages written while SCTP held over LowWater; want them batched", n)
	}
	dc.drain() // the Writer's own goroutine flushes
	rw.waitFor(t, func(msgs [][]byte) bool { return len(msgs) > 0 })
	_, per := unpack(t, rw.messages())
	if got := fmt.Sprint(per); got != "[[7:0 7:1 7:2 7:3 7:4]]" {
		t.Fatalf("after the drain: %s; want one batch of 0..4", got)
	}
}

// A batch of one is sent as that packet, without the batch's framing.
func TestWriterOneQueuedPacketGoesPlain(t *testing.T) {
	dc, rw := &fakeDC{}, &recordRW{}
	w := NewWriter(dc, rw, false)
	dc.full()
	if err := w.Write(context.Background(), 3, packet(1, 10)); err != nil {
		t.Fatal(err)
	}
	drainNow(dc, w)
	if msgs := rw.messages(); len(msgs) != 1 || !bytes.Equal(msgs[0], AppendRoom(packet(1, 10), 3)) {
		t.Fatalf("wrote %d messages; want the packet alone, with its room", len(msgs))
	}
}

// A packet too big to share a batch goes alone when its turn comes, in
// its room's order.
func TestWriterBigPacketAlone(t *testing.T) {
	dc, rw := &fakeDC{}, &recordRW{}
	w := NewWriter(dc, rw, false)
	dc.full()
	big := packet(9, MaxBatch)
	for _, q := range []struct {
		room uint32
		p    []byte
	}{{1, packet(1, 10)}, {1, packet(2, 10)}, {1, big}, {1, packet(3, 10)}, {2, packet(4, 10)}} {
		if err := w.Write(context.Background(), q.room, q.p); err != nil {
			t.Fatal(err)
		}
	}
	drainNow(dc, w)
	msgs := rw.messages()
	_, per := unpack(t, msgs)
	if got := fmt.Sprint(per); got != "[[1:1 2:4 1:2] [1:9] [1:3]]" {
		t.Fatalf("messages %s; want a batch of 1, 4, 2, then 9 alone, then 3", got)
	}
	if !bytes.Equal(msgs[1], AppendRoom(big, 1)) {
		t.Fatal("the big packet was not sent as it is")
	}
}

// Batches go round-robin across the rooms, each starting after the room
// that went last in the one before.
func TestWriterRoundRobin(t *testing.T) {
	dc, rw := &fakeDC{}, &recordRW{}
	w := NewWriter(dc, rw, false)
	dc.full()
	const size = 10 << 10 // three to a batch
	for i := range 4 {
		for _, room := range []uint32{1, 2} {
			if err := w.Write(context.Background(), room, packet(i, size)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := w.Write(context.Background(), 3, packet(0, 10)); err != nil {
		t.Fatal(err)
	}
	drainNow(dc, w)
	_, per := unpack(t, rw.messages())
	if got := fmt.Sprint(per); got != "[[1:0 2:0 3:0 1:1] [2:1 1:2 2:2] [1:3 2:3]]" {
		t.Fatalf("messages %s; want rooms 1 2 3 1, then 2 1 2, then 1 2", got)
	}
}

// Order under concurrent writers of many rooms and a queue that fills and
// drains: each room's packets arrive in its order, all of them, none
// twice, across batches.
func TestWriterKeepsOrderPerRoom(t *testing.T) {
	dc, rw := &fakeDC{}, &recordRW{}
	w := NewFlowWriter(dc, rw)
	const rooms, each = 8, 400
	var wg sync.WaitGroup
	for g := range rooms {
		wg.Go(func() {
			for i := range each {
				if i%50 == 0 { // the queue fills, then drains
					if g%2 == 0 {
						dc.full()
					} else {
						dc.drain()
					}
				}
				if err := w.Write(context.Background(), uint32(g+1), packet(i, i%300)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	dc.drain()
	rw.waitFor(t, func(msgs [][]byte) bool {
		n := 0
		for _, m := range msgs {
			if e, batch := batchEntries(t, m); batch {
				n += len(e)
			} else {
				n++
			}
		}
		return n == rooms*each
	})
	all, per := unpack(t, rw.messages())
	next := make(map[uint32]int)
	for _, s := range all {
		if s.n != next[s.room] {
			t.Fatalf("room %d: packet %d after %d", s.room, s.n, next[s.room]-1)
		}
		next[s.room]++
	}
	mixed := 0
	for _, in := range per {
		for _, s := range in[1:] {
			if s.room != in[0].room {
				mixed++
				break
			}
		}
	}
	if mixed == 0 {
		t.Error("no batch mixed rooms: the test did not exercise what it guards")
	}
	t.Logf("%d packets in %d messages (%d batches mixing rooms)", len(all), len(per), mixed)
}

// A room's backlog does not hold up another room's packet: room 2's one
// packet, written after room 1 queued 2 MiB, goes in the first messages
// of the drain, and SCTP is never handed much more than LowWater+MaxBatch.
func TestWriterIsolatesRooms(t *testing.T) {
	dc := &fakeDC{}
	rw := &recordRW{fill: dc}
	w := NewWriter(dc, rw, false)
	dc.full()
	const backlog, size = 2 << 20, 1 << 10
	n := 0
	for ; w.Queued(1) < backlog; n++ {
		if err := w.Write(context.Background(), 1, packet(n, size)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Write(context.Background(), 2, packet(0, 10)); err != nil {
		t.Fatal(err)
	}
	drainNow(dc, w)
	if dc.queued.Load() > LowWater+MaxBatch {
		t.Fatalf("the drain handed SCTP %d bytes", dc.queued.Load())
	}
	_, per := unpack(t, rw.messages())
	if len(per) < 2 {
		t.Fatalf("one drain wrote %d messages", len(per))
	}
	first := append(append([]sent(nil), per[0]...), per[1]...)
	if !bytes.Contains([]byte(fmt.Sprint(first)), []byte("2:0")) {
		t.Fatalf("room 2's packet is not in the first two messages of the drain (%d packets of room 1 there): it waited behind room 1's backlog", len(first))
	}
	// The rest drains, LowWater at a time.
	for drains := 2; w.Queued(1) > 0; drains++ {
		if drains > 2*backlog/LowWater {
			t.Fatalf("%d bytes still queued after %d drains", w.Queued(1), drains)
		}
		drainNow(dc, w)
		if dc.queued.Load() > LowWater+MaxBatch {
			t.Fatalf("drain %d handed SCTP %d bytes", drains, dc.queued.Load())
		}
	}
	all, _ := unpack(t, rw.messages())
	next := make(map[uint32]int)
	for _, s := range all {
		if s.n != next[s.room] {
			t.Fatalf("room %d: packet %d after %d", s.room, s.n, next[s.room]-1)
		}
		next[s.room]++
	}
	if next[1] != n || next[2] != 1 {
		t.Fatalf("wrote %d packets of room 1 (want %d), %d of room 2 (want 1)", next[1], n, next[2])
	}
}

// With flow control, a room's Write waits while its own queue is over
// HighWater; another room's, queued too, does not, and the waiting Write
// goes on as soon as the queue drains to HighWater, not when it is empty.
func TestWriterFlowPerRoom(t *testing.T) {
	dc := &fakeDC{}
	rw := &recordRW{fill: dc}
	w := NewFlowWriter(dc, rw)
	dc.full()
	if err := w.Write(context.Background(), 2, packet(0, 10)); err != nil {
		t.Fatal(err)
	}
	n := 0
	for ; w.Queued(1) <= HighWater; n++ {
		if err := w.Write(context.Background(), 1, packet(n, 64<<10)); err != nil {
			t.Fatal(err)
		}
	}
	over := w.Queued(1)
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if err := w.Write(gone, 1, packet(n, 10)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Write of the room over HighWater returned %v; want it waiting (so ended by its context)", err)
	}
	if w.Queued(1) != over {
		t.Fatal("the Write that gave up queued its packet")
	}
	q2 := w.Queued(2)
	if err := w.Write(gone, 2, packet(1, 10)); err != nil {
		t.Fatalf("Write of another room waited (%v)", err)
	}
	if w.Queued(2) <= q2 {
		t.Fatal("room 2's packet is not queued")
	}
	done := make(chan error, 1)
	ctx := newWaitingCtx()
	go func() { done <- w.Write(ctx, 1, packet(n, 10)) }()
	<-ctx.waiting
	drainNow(dc, w) // SCTP takes one big packet: room 1 drops to HighWater
	if w.Queued(1) > HighWater || w.Queued(1) == 0 {
		t.Fatalf("after the drain room 1 has %d bytes queued; the test wants it just under HighWater", w.Queued(1))
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the waiting Write did not go on when its room's queue drained to HighWater")
	}
	for drains := 0; w.Queued(1) > 0; drains++ {
		if drains > 2*n {
			t.Fatal("room 1 does not drain")
		}
		drainNow(dc, w)
	}
	all, _ := unpack(t, rw.messages())
	if last := all[len(all)-1]; last != (sent{1, n}) {
		t.Fatalf("last packet %v; want room 1's packet %d, written after the wait", last, n)
	}

	// Without flow control, nothing waits.
	w = NewWriter(dc, rw, false)
	dc.full()
	for i := 0; w.Queued(1) <= 2*HighWater; i++ {
		if err := w.Write(gone, 1, packet(i, 64<<10)); err != nil {
			t.Fatalf("Write without flow control waited (%v) at %d bytes", err, w.Queued(1))
		}
	}
	w.Close()
}

func TestWriterQueuedAndForget(t *testing.T) {
	dc, rw := &fakeDC{}, &recordRW{}
	w := NewWriter(dc, rw, false)
	dc.full()
	want := 0
	for i := range 3 {
		for _, room := range []uint32{1, 2} {
			p := packet(i, 100*i)
			if err := w.Write(context.Background(), room, p); err != nil {
				t.Fatal(err)
			}
			if room == 1 {
				want += len(AppendRoom(p, room))
			}
		}
	}
	if got := w.Queued(1); got != want {
		t.Fatalf("Queued(1) = %d, want %d: the packets' bytes with their room field", got, want)
	}
	if got := w.Queued(3); got != 0 {
		t.Fatalf("Queued of a room never written = %d", got)
	}
	q2 := w.Queued(2)
	w.Forget(1)
	if w.Queued(1) != 0 || w.Queued(2) != q2 {
		t.Fatalf("after Forget(1): Queued(1) = %d, Queued(2) = %d (was %d)", w.Queued(1), w.Queued(2), q2)
	}
	w.Forget(1) // nothing queued: nothing happens
	if err := w.Write(context.Background(), 1, packet(10, 10)); err != nil {
		t.Fatalf("Write after Forget: %v", err)
	}
	drainNow(dc, w)
	all, _ := unpack(t, rw.messages())
	if got := fmt.Sprint(all); got != "[2:0 1:10 2:1 2:2]" {
		t.Fatalf("wrote %s; want room 2's packets and room 1's packet written after Forget", got)
	}
	if len(w.queues) != 0 || w.turn != nil {
		t.Fatalf("a drained Writer keeps %d queues", len(w.queues))
	}
}

func TestWriterClose(t *testing.T) {
	dc, rw := &fakeDC{}, &recordRW{}
	w := NewFlowWriter(dc, rw)
	dc.full()
	for i := 0; w.Queued(1) <= HighWater; i++ {
		if err := w.Write(context.Background(), 1, packet(i, 64<<10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Write(context.Background(), 2, packet(0, 10)); err != nil {
		t.Fatal(err)
	}
	waiting := make(chan error, 1)
	ctx := newWaitingCtx()
	go func() { waiting <- w.Write(ctx, 1, packet(0, 10)) }()
	<-ctx.waiting
	w.Close()
	select {
	case err := <-waiting:
		if !errors.Is(err, ErrWriterClosed) {
			t.Fatalf("a Write waiting at HighWater returned %v after Close; want ErrWriterClosed", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close left a Write waiting at HighWater")
	}
	if w.Queued(1) != 0 || w.Queued(2) != 0 {
		t.Fatal("Close kept queued packets")
	}
	if err := w.Write(context.Background(), 3, packet(0, 10)); !errors.Is(err, ErrWriterClosed) {
		t.Fatalf("Write after Close: %v", err)
	}
	if drainNow(dc, w) || len(rw.messages()) != 0 {
		t.Fatalf("a closed Writer wrote %d messages", len(rw.messages()))
	}
	w.Close() // twice is fine
}

// discardRW is a data channel that takes everything.
type discardRW struct{}

func (discardRW) Write(b []byte) (int, error) { return len(b), nil }

// BenchmarkWriterInline: a lone packet on an idle channel, written on
// the caller's goroutine.
func BenchmarkWriterInline(b *testing.B) {
	w := NewFlowWriter(&fakeDC{}, discardRW{})
	p := packet(1, 200)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(p)))
	for b.Loop() {
		if err := w.Write(ctx, 1, p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriterQueued: packets of many rooms queued while SCTP is full,
// drained into batches every 1000 Writes (the drain's cost included).
func BenchmarkWriterQueued(b *testing.B) {
	for _, rooms := range []int{10, 1000} {
		b.Run(fmt.Sprintf("rooms=%d", rooms), func(b *testing.B) {
			dc := &fakeDC{}
			w := NewWriter(dc, discardRW{}, false)
			dc.full()
			p := packet(1, 200)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(len(p)))
			i := 0
			for b.Loop() {
				if err := w.Write(ctx, uint32(1+i%rooms), p); err != nil {
					b.Fatal(err)
				}
				if i++; i%1000 == 0 {
					drainNow(dc, w)
					dc.full()
				}
			}
		})
	}
}

// TestWriterWriteAllIsOneMessage: packets written together go as one
// batch on an idle channel, in order, where Write would send each alone;
// behind a full queue they wait in their room's order like any other.
func TestWriterWriteAllIsOneMessage(t *testing.T) {
	dc, rw := &fakeDC{}, &recordRW{}
	w := NewWriter(dc, rw, true)
	require.NoError(t, w.WriteAll(context.Background(), 3, packet(1, 8), packet(2, 8), packet(3, 8)))
	all, per := unpack(t, rw.messages())
	require.Len(t, per, 1, "one data-channel message")
	require.Equal(t, []sent{{3, 1}, {3, 2}, {3, 3}}, all)

	dc.full()
	require.NoError(t, w.Write(context.Background(), 3, packet(4, 8)))
	require.NoError(t, w.WriteAll(context.Background(), 3, packet(5, 8), packet(6, 8)))
	require.Len(t, rw.messages(), 1, "nothing goes while SCTP is full")
	require.Equal(t, 3*len(AppendRoom(packet(4, 8), 3)), w.Queued(3))
	dc.drain()
	rw.waitFor(t, func(msgs [][]byte) bool { return len(msgs) == 2 })
	all, _ = unpack(t, rw.messages())
	require.Equal(t, []sent{{3, 1}, {3, 2}, {3, 3}, {3, 4}, {3, 5}, {3, 6}}, all)
}
