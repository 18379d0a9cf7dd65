package transport

import (
	"context"
	"errors"
	"io"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
)

// Send-side flow control of one data channel: a writer waits while more
// than HighWater bytes are queued in SCTP and resumes when the queue drains
// to LowWater. This bounds what a fast sender piles up locally without
// ever dropping anything.
//
// LowWater is also where coalescing starts: while more than LowWater bytes
// are queued in SCTP, a packet would wait behind them anyway, so it joins
// a batch instead of going out alone (see Writer).
const (
	HighWater = 1 << 20
	LowWater  = 64 << 10
)

// MaxBatch bounds a batch: the packets coalesced into one data-channel
// message, with their entry headers, take at most MaxBatch bytes. A packet
// too big to share a batch goes alone.
const MaxBatch = 32 << 10

// FieldPacketBatch is the field number of Packet.batch in packet.proto: a
// batch is the concatenation of (tag, length, packet) entries of it.
const FieldPacketBatch = 4

// Buffered is what a Writer needs of a data channel: the bytes queued in
// SCTP and a callback when they drain to a threshold (webrtc.DataChannel
// has it).
type Buffered interface {
	BufferedAmount() uint64
	SetBufferedAmountLowThreshold(th uint64)
	OnBufferedAmountLow(f func())
}

// ErrWriterClosed is returned by Write after Close.
var ErrWriterClosed = errors.New("parley: data channel writer closed")

// Writer writes packets to one detached data channel, in order, and
// coalesces them (when the peer takes batches) without a timer: a packet
// goes out at once while the channel is idle; one that comes while
// another write is in progress, or while more than LowWater bytes wait in
// SCTP, is appended to a pending batch that goes out as one data-channel
// message when that write ends or the queue drains to LowWater, or when
// the batch is full. A lone packet is never held.
//
// With flow control (the SDK's sender), Write waits while more than
// HighWater bytes are queued and the batch is full; without (the relay,
// which must not block and bounds each member's queue itself), it never
// waits for SCTP.
type Writer struct {
	dc    Buffered
	rw    io.Writer
	batch bool // the peer takes batches
	flow  bool // wait at HighWater

	mu      sync.Mutex
	pend    []byte        // batch entries waiting; guarded by mu
	first   []byte        // the first pending packet, as written alone; guarded by mu
	npend   int           // entries in pend; guarded by mu
	writing bool          // a goroutine is writing and flushes pend before it stops; guarded by mu
	changed chan struct{} // closed and replaced when a write ends or the queue drains; guarded by mu
	closed  bool          // guarded by mu
}

// NewWriter returns a Writer for the data channel dc, whose detached end
// is rw. batch says whether the peer takes batches (a v1 peer does not),
// flow whether Write waits at HighWater.
func NewWriter(dc Buffered, rw io.Writer, batch, flow bool) *Writer {
	w := &Writer{dc: dc, rw: rw, batch: batch, flow: flow, changed: make(chan struct{})}
	dc.SetBufferedAmountLowThreshold(LowWater)
	dc.OnBufferedAmountLow(w.drained)
	return w
}

// NewFlowWriter is NewWriter with flow control.
func NewFlowWriter(dc Buffered, rw io.Writer, batch bool) *Writer {
	return NewWriter(dc, rw, batch, true)
}

// drained runs on an SCTP goroutine, which may hold the association's
// lock: it must not write, so a pending batch goes out from a new
// goroutine.
func (w *Writer) drained() {
	w.mu.Lock()
	w.wakeLocked()
	flush := !w.writing && w.npend > 0 && !w.closed
	if flush {
		w.writing = true
	}
	w.mu.Unlock()
	if flush {
		go w.finish()
	}
}

func (w *Writer) wakeLocked() {
	close(w.changed)
	w.changed = make(chan struct{})
}

// entryLen is the size of p as a batch entry.
func entryLen(p []byte) int {
	return 1 + protowire.SizeVarint(uint64(len(p))) + len(p)
}

// AppendEntry appends p to batch as one entry of Packet.batch.
func AppendEntry(batch, p []byte) []byte {
	batch = protowire.AppendTag(batch, FieldPacketBatch, protowire.BytesType)
	batch = protowire.AppendVarint(batch, uint64(len(p)))
	return append(batch, p...)
}

// Write writes the encoded packet p, or queues it to go out in order. p is
// not retained. An error reports a write that failed now; a queued packet
// whose later write fails is lost with the transport, as anything SCTP
// still held would be.
func (w *Writer) Write(ctx context.Context, p []byte) error {
	w.mu.Lock()
	for {
		if w.closed {
			w.mu.Unlock()
			return ErrWriterClosed
		}
		queued := w.dc.BufferedAmount()
		if w.npend == 0 && !w.writing && queued <= LowWater {
			// Idle: p goes now, alone.
			w.writing = true
			w.mu.Unlock()
			err := w.write(p)
			w.finish()
			return err
		}
		if w.batch && len(w.pend)+entryLen(p) <= MaxBatch {
			w.appendLocked(p)
			if !w.writing && queued <= LowWater {
				// Left by a write that found the queue full: nobody else
				// will send it now.
				w.writing = true
				w.mu.Unlock()
				w.finish()
				return nil
			}
			w.mu.Unlock()
			return nil // the write in progress, or the drain, sends it
		}
		// p does not fit the batch (or the peer takes none): once no
		// write is in progress (and, with flow control, the queue allows),
		// send what is pending, then p.
		if !w.writing && (!w.flow || queued <= HighWater) {
			w.writing = true
			pend := w.takeLocked()
			alone := p
			if w.batch && pend != nil && entryLen(p) <= MaxBatch {
				w.appendLocked(p) // starts the next batch
				alone = nil
			}
			w.mu.Unlock()
			err := w.write(pend)
			if err == nil {
				err = w.write(alone)
			}
			w.finish()
			return err
		}
		changed := w.changed
		w.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
		w.mu.Lock()
	}
}

func (w *Writer) appendLocked(p []byte) {
	if w.npend == 0 {
		w.first = append(w.first[:0], p...)
	} else {
		if w.npend == 1 {
			w.pend = AppendEntry(w.pend[:0], w.first)
		}
		w.pend = AppendEntry(w.pend, p)
	}
	w.npend++
}

// takeLocked returns what is pending, as one packet (nil if nothing): a
// single packet as it is, several as a batch.
func (w *Writer) takeLocked() []byte {
	var b []byte
	switch w.npend {
	case 0:
		return nil
	case 1:
		b = w.first
		w.first = nil
	default:
		b = w.pend
		w.pend = nil
	}
	w.npend = 0
	return b
}

func (w *Writer) write(b []byte) error {
	if b == nil {
		return nil
	}
	_, err := w.rw.Write(b)
	return err
}

// finish ends a write: it sends what was queued meanwhile while the
// queue allows (else the drain sends it), then lets others write.
func (w *Writer) finish() {
	w.mu.Lock()
	for w.npend > 0 && !w.closed && w.dc.BufferedAmount() <= LowWater {
		b := w.takeLocked()
		w.mu.Unlock()
		_ = w.write(b) // a failed transport: its owner learns it from the PeerConnection
		w.mu.Lock()
	}
	w.writing = false
	w.wakeLocked()
	w.mu.Unlock()
}

// Close drops what is pending; Write fails from now on.
func (w *Writer) Close() {
	w.mu.Lock()
	w.closed = true
	w.pend, w.first, w.npend = nil, nil, 0
	w.wakeLocked()
	w.mu.Unlock()
}
