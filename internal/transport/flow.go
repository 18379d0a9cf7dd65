package transport

// Send-side flow control of one data channel. A Writer hands SCTP packets
// only while at most LowWater bytes are queued there, so SCTP holds at
// most about LowWater+MaxBatch bytes; everything else waits in the
// Writer's per-room queues, where one room's backlog does not delay
// another room's packets (see Writer). With flow control a room's Write
// waits while more than HighWater bytes of that room are queued, and
// resumes once they drain to HighWater: this bounds what a fast sender
// piles up locally without ever dropping anything.
//
// LowWater is also where coalescing starts: while more than LowWater bytes
// are queued in SCTP, a packet would wait behind them anyway, so it joins
// a batch instead of going out alone.
const (
	HighWater = 1 << 20
	LowWater  = 64 << 10
)

// MaxBatch bounds a batch: the packets coalesced into one data-channel
// message, with their entry headers, take at most MaxBatch bytes. A packet
// too big to share a batch goes alone.
const MaxBatch = 32 << 10

// Buffered is what a Writer needs of a data channel: the bytes queued in
// SCTP and a callback when they drain to a threshold (webrtc.DataChannel
// has it).
type Buffered interface {
	BufferedAmount() uint64
	SetBufferedAmountLowThreshold(th uint64)
	OnBufferedAmountLow(f func())
}
