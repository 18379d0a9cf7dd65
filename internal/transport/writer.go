package transport

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
)

// ErrWriterClosed is returned by Write after Close.
var ErrWriterClosed = errors.New("parley: data channel writer closed")

// Writer writes the packets of many rooms to one detached data channel:
// an Engine's rooms share one PeerConnection, so each of its data
// channels carries every room's packets, each packet naming its room
// (Packet.room, appended by the Writer).
//
// It coalesces without a timer: a packet goes out at once, alone, while
// the channel is idle; one that comes while another write is in progress,
// or while more than LowWater bytes wait in SCTP, is queued, and the
// queues go out as batches (Packet.batch) when that write ends or SCTP
// drains to LowWater. A lone packet is never held.
//
// Queues are per room, so that one room's backlog does not stall
// another's packets. Each data-channel message is built round-robin: one
// packet from each room with packets queued, in turn, up to MaxBatch
// bytes, the next message starting after the room that went last. SCTP is
// handed messages only while it holds at most LowWater bytes, so it never
// holds much more than LowWater+MaxBatch, and a room with megabytes queued
// gets one turn per round: another room's packet waits behind about one
// round, not behind the backlog. Order is kept per room, not across rooms.
//
// With flow control (the SDK's sender), a room's Write waits while more
// than HighWater bytes of that room are queued; without (the relay, which
// must not block, and can bound each room's queue itself with Queued),
// it never waits.
//
// A room with nothing queued costs the Writer nothing: its queue goes
// when it empties (back to a pool shared by all Writers).
type Writer struct {
	dc   Buffered
	rw   io.Writer
	flow bool // a room's Write waits at HighWater

	// mu is taken by pion's buffered-amount callback (drained), and
	// BufferedAmount (the SCTP stream's lock) is called while it is held;
	// it is never held across rw.Write.
	mu      sync.Mutex
	queues  map[uint32]*roomQueue // the rooms with packets queued, none empty; guarded by mu
	turn    *roomQueue            // in the ring of queues, the room that goes next; nil when nothing is queued; guarded by mu
	writing bool                  // a goroutine is writing, and drains the queues before it stops; guarded by mu
	closed  bool                  // guarded by mu
}

// roomQueue is one room's packets waiting, in order, and the room's place
// in its Writer's ring.
type roomQueue struct {
	room       uint32        // guarded by Writer.mu
	buf        []byte        // buf[head:] is the packets queued, as Packet.batch entries, each with its room field; guarded by Writer.mu
	head       int           // where the first packet queued starts in buf; guarded by Writer.mu
	bytes      int           // the packets' size in buf[head:], without the entries' headers; guarded by Writer.mu
	wait       chan struct{} // non-nil: Writes wait on it; closed when bytes drop to HighWater or the queue goes; guarded by Writer.mu
	next, prev *roomQueue    // the ring; guarded by Writer.mu
}

// keepBuf is the largest buffer the pools keep: a buffer grown by a
// backlog of megabytes is left to the garbage collector.
const keepBuf = 4 * MaxBatch

// queuePool recycles the queues of rooms that drained, across Writers, so
// that the next room to queue allocates nothing.
var queuePool = sync.Pool{New: func() any { return new(roomQueue) }}

// bufPool holds the buffers data-channel messages are built in: SCTP
// copies what it is given, so a buffer goes back once rw.Write returns.
var bufPool = sync.Pool{New: func() any {
	b := make([]byte, 0, MaxBatch)
	return &b
}}

func putBuf(bp *[]byte) {
	if cap(*bp) <= keepBuf {
		bufPool.Put(bp)
	}
}

// NewWriter returns a Writer for the data channel dc, whose detached end
// is rw. flow says whether a room's Write waits at HighWater.
func NewWriter(dc Buffered, rw io.Writer, flow bool) *Writer {
	w := &Writer{dc: dc, rw: rw, flow: flow, queues: make(map[uint32]*roomQueue)}
	dc.SetBufferedAmountLowThreshold(LowWater)
	dc.OnBufferedAmountLow(w.drained)
	return w
}

// NewFlowWriter is NewWriter with flow control.
func NewFlowWriter(dc Buffered, rw io.Writer) *Writer {
	return NewWriter(dc, rw, true)
}

// Write writes the encoded packet p for room, or queues it to go out in
// room's order. p is a Packet without its room field: the Writer appends
// it (AppendRoom). p is not retained. With flow control, Write waits
// (until ctx ends) while room's own queue holds more than HighWater
// bytes; without, it never waits.
//
// An error reports a write that failed now; a queued packet whose later
// write fails is lost with the transport, as anything SCTP still held
// would be.
func (w *Writer) Write(ctx context.Context, room uint32, p []byte) error {
	if err := w.lockRoom(ctx, room); err != nil {
		return err
	}
	if w.writing || w.dc.BufferedAmount() > LowWater {
		w.pushLocked(room, p)
		w.mu.Unlock()
		return nil // the write in progress, or the drain, sends it
	}
	w.writing = true
	if w.turn != nil {
		// Left by a write that found SCTP full, and not yet sent by the
		// drain: p goes after it, from here.
		w.pushLocked(room, p)
		w.mu.Unlock()
		w.flush(nil)
		return nil
	}
	w.mu.Unlock()
	// Idle: p goes now, alone, on the caller's goroutine.
	bp := bufPool.Get().(*[]byte)
	b := AppendRoom(append((*bp)[:0], p...), room)
	*bp = b
	_, err := w.rw.Write(b)
	w.flush(bp)
	return err
}

// lockRoom takes w.mu once room may queue more: at once without flow
// control, else once room's queue holds at most HighWater bytes. It
// returns, without the lock, ErrWriterClosed after Close, or ctx's error.
func (w *Writer) lockRoom(ctx context.Context, room uint32) error {
	w.mu.Lock()
	for {
		if w.closed {
			w.mu.Unlock()
			return ErrWriterClosed
		}
		q := w.queues[room]
		if !w.flow || q == nil || q.bytes <= HighWater {
			return nil
		}
		if q.wait == nil {
			q.wait = make(chan struct{})
		}
		wait := q.wait
		w.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
		w.mu.Lock()
	}
}

// WriteAll writes the encoded packets ps for room, in order, as Write
// would one after the other, except that on an idle channel they go
// together, as one batch, rather than one data-channel message each: the
// acks a receiver owes several senders at once cost one message.
func (w *Writer) WriteAll(ctx context.Context, room uint32, ps ...[]byte) error {
	if err := w.lockRoom(ctx, room); err != nil {
		return err
	}
	for _, p := range ps {
		w.pushLocked(room, p)
	}
	if w.writing || w.dc.BufferedAmount() > LowWater {
		w.mu.Unlock()
		return nil // the write in progress, or the drain, sends them
	}
	w.writing = true
	w.mu.Unlock()
	w.flush(nil)
	return nil
}

// Queued is the bytes of room's packets held by the Writer and not yet
// handed to the data channel: the packets as encoded, room field
// included, batch framing not.
func (w *Writer) Queued(room uint32) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if q := w.queues[room]; q != nil {
		return q.bytes
	}
	return 0
}

// Forget drops room's queued packets (the room was left); later Writes for
// room are accepted again. A Write of room waiting at HighWater goes on,
// as a later Write would.
func (w *Writer) Forget(room uint32) {
	w.mu.Lock()
	if q := w.queues[room]; q != nil {
		w.dropLocked(q)
	}
	w.mu.Unlock()
}

// Close drops everything queued; Write fails with ErrWriterClosed from now
// on. A message being written goes on.
func (w *Writer) Close() {
	w.mu.Lock()
	w.closed = true
	for _, q := range w.queues {
		w.dropLocked(q)
	}
	w.mu.Unlock()
}

// drained runs on an SCTP goroutine, which may hold the association's
// lock: it must not write, so the queues go out from a new goroutine.
func (w *Writer) drained() {
	if w.claim() {
		go w.flush(nil)
	}
}

// claim makes the caller the writing goroutine, which must then flush, if
// packets are queued and nobody writes.
func (w *Writer) claim() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.writing || w.turn == nil || w.closed {
		return false
	}
	w.writing = true
	return true
}

// flush ends a write, by the goroutine that set w.writing: it writes what
// is queued while SCTP holds at most LowWater bytes (else the drain sends
// it), then lets others write. bp is the buffer it may build in, or nil.
func (w *Writer) flush(bp *[]byte) {
	w.mu.Lock()
	for w.turn != nil && !w.closed && w.dc.BufferedAmount() <= LowWater {
		if bp == nil {
			bp = bufPool.Get().(*[]byte)
		}
		msg := w.nextLocked(bp)
		w.mu.Unlock()
		_, _ = w.rw.Write(msg) // a failed transport: its owner learns it from the PeerConnection
		w.mu.Lock()
	}
	w.writing = false
	w.mu.Unlock()
	if bp != nil {
		putBuf(bp)
	}
}

// nextLocked takes the next data-channel message out of the queues, builds
// it in *bp and returns it. It is a batch built round-robin from w.turn
// on, one packet of each room in turn, of at most MaxBatch bytes; a
// single packet goes as it is, without the batch's framing, and so does
// one too big to share a batch, when its turn comes.
func (w *Writer) nextLocked(bp *[]byte) []byte {
	b := (*bp)[:0]
	n, hdr := 0, 0 // entries taken; the first one's header size
	for w.turn != nil {
		q := w.turn
		e, h := q.front()
		if len(b)+len(e) > MaxBatch {
			if n == 0 { // too big for any batch: alone
				b = append(b, e[h:]...)
				w.popLocked(q, len(e), len(e)-h)
			}
			break
		}
		if n == 0 {
			hdr = h
		}
		b = append(b, e...)
		n++
		w.popLocked(q, len(e), len(e)-h)
	}
	*bp = b
	if n == 1 {
		return b[hdr:]
	}
	return b
}

// front returns q's first entry and the size of its header.
func (q *roomQueue) front() (entry []byte, hdr int) {
	b := q.buf[q.head:]
	size, n := protowire.ConsumeVarint(b[1:]) // our own encoding: well-formed
	hdr = 1 + n
	return b[:hdr+int(size)], hdr
}

// pushLocked queues p, with room's field, at the end of room's queue; a
// room that had nothing queued joins the ring last, after every room
// already waiting.
func (w *Writer) pushLocked(room uint32, p []byte) {
	q := w.queues[room]
	switch {
	case q == nil:
		q = queuePool.Get().(*roomQueue)
		q.room = room
		w.queues[room] = q
		if w.turn == nil {
			q.next, q.prev = q, q
			w.turn = q
		} else {
			q.next, q.prev = w.turn, w.turn.prev
			w.turn.prev.next = q
			w.turn.prev = q
		}
	case q.head >= len(q.buf)-q.head:
		// The entries sent take as much room as those queued: move these
		// to the front, a copy paid for by the sent ones.
		q.buf = q.buf[:copy(q.buf, q.buf[q.head:])]
		q.head = 0
	}
	size := len(p) + roomLen(room)
	q.buf = protowire.AppendTag(q.buf, FieldPacketBatch, protowire.BytesType)
	q.buf = protowire.AppendVarint(q.buf, uint64(size))
	q.buf = AppendRoom(append(q.buf, p...), room)
	q.bytes += size
}

// popLocked removes q's first entry, of entry bytes holding a packet of
// size bytes, and passes the turn to the next room.
func (w *Writer) popLocked(q *roomQueue, entry, size int) {
	q.head += entry
	q.bytes -= size
	w.turn = q.next
	if q.head == len(q.buf) {
		w.dropLocked(q)
		return
	}
	if q.wait != nil && q.bytes <= HighWater {
		close(q.wait)
		q.wait = nil
	}
}

// dropLocked removes q from the ring, drops what it holds, wakes its
// waiting Writes and recycles it.
func (w *Writer) dropLocked(q *roomQueue) {
	if q.next == q {
		w.turn = nil
	} else {
		q.prev.next, q.next.prev = q.next, q.prev
		if w.turn == q {
			w.turn = q.next
		}
	}
	delete(w.queues, q.room)
	if q.wait != nil {
		close(q.wait)
	}
	buf := q.buf[:0]
	if cap(buf) > keepBuf {
		buf = nil
	}
	*q = roomQueue{buf: buf}
	queuePool.Put(q)
}
