package transport

import (
	"context"
	"sync"

	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"
)

// Send-side flow control of one data channel: a writer waits while more
// than HighWater bytes are queued in SCTP and resumes when the queue drains
// below LowWater. This bounds what a fast sender piles up locally without
// ever dropping anything.
const (
	HighWater = 1 << 20
	LowWater  = 256 << 10
)

// FlowWriter writes to a detached data channel with flow control.
type FlowWriter struct {
	dc *webrtc.DataChannel
	rw datachannel.ReadWriteCloser

	mu  sync.Mutex
	low chan struct{} // closed and replaced when the queue drains below LowWater
}

// NewFlowWriter returns a FlowWriter for dc, whose detached end is rw.
func NewFlowWriter(dc *webrtc.DataChannel, rw datachannel.ReadWriteCloser) *FlowWriter {
	w := &FlowWriter{dc: dc, rw: rw, low: make(chan struct{})}
	dc.SetBufferedAmountLowThreshold(LowWater)
	dc.OnBufferedAmountLow(func() {
		w.mu.Lock()
		close(w.low)
		w.low = make(chan struct{})
		w.mu.Unlock()
	})
	return w
}

// Write writes one message, first waiting while the channel's queue is
// over HighWater, until ctx is done.
func (w *FlowWriter) Write(ctx context.Context, b []byte) error {
	for {
		w.mu.Lock()
		low := w.low
		w.mu.Unlock()
		if w.dc.BufferedAmount() <= HighWater {
			break
		}
		select {
		case <-low:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	_, err := w.rw.Write(b)
	return err
}
