package transport

import (
	"net"

	"go.uber.org/zap"
)

// Batching a UDP socket's system calls.
//
// The server carries every member's ICE traffic on one UDP socket (pion's
// UDPMux), and each packet in or out used to be one system call: a
// sendto per delivery, ack and keepalive, a recvfrom per packet in. On a
// machine where a system call is dear (a VM with page-table isolation:
// about 1 µs a call, and a loopback sendto that wakes the peer costs
// many times that), those calls were a fifth of the server's profile.
// Linux takes many datagrams in one call, to as many destinations:
// sendmmsg and recvmmsg. BatchUDP puts a socket behind them:
//
//   - Writes are queued and sent by one writer goroutine, which lets every
//     goroutine already runnable have its turn first (runtime.Gosched), so
//     the packets of a fan-out, each written by its own association's
//     goroutine, leave in one sendmmsg. A lone packet waits for nothing
//     but that turn: with nothing else runnable the writer sends it at
//     once. (The turn is at the back of Go's global run queue: in a
//     process of thousands of busy Engines, such as the load tool with a
//     room of 2,000, it is a long one; see docs/performance.md.)
//   - Reads take as many datagrams a call as the socket holds, up to its
//     read slots: one at first, doubled up to udpBatchSize each time a
//     read fills them all, so a quiet socket keeps one buffer. They are
//     handed out one by one to the reader (pion's UDPMux, or a candidate's
//     read loop).
//
// Elsewhere (not Linux, or a socket that is not a *net.UDPConn) BatchUDP
// returns the socket as it is.

const (
	// udpBatchSize is the most datagrams one sendmmsg or recvmmsg takes.
	udpBatchSize = 64
	// udpQueueLimit is the most packets queued for the writer; a writer
	// beyond it waits, as it would on a full socket buffer. It holds a
	// broadcast to a room of 4,000 at once: every waiting writer wakes
	// each time the writer takes the queue, so a fan-out that waited on a
	// short queue would wake its goroutines over and over.
	udpQueueLimit = 4096
	// udpFreeLimit is the most packet buffers a socket keeps for reuse.
	udpFreeLimit = 256
	// udpReadSize is the buffer for one datagram read: pion's receiveMTU.
	udpReadSize = 8192
)

// BatchUDP returns conn with its reads and writes batched where the
// platform allows (see above), or conn itself. Closing the result closes
// conn. The result implements pion/ice's AddrPortReaderWriter, which its
// UDPMux uses for allocation-free reads and writes.
func BatchUDP(conn *net.UDPConn, log *zap.Logger) net.PacketConn {
	if log == nil {
		log = zap.NewNop()
	}
	return newBatchUDP(conn, log)
}

// UDPBatchStats counts a batched socket's datagrams and the system calls
// that carried them, since it opened.
type UDPBatchStats struct {
	PacketsSent, SendCalls        uint64
	PacketsReceived, ReceiveCalls uint64
}

// BatchStats returns the counts of conn, a socket from BatchUDP, or false
// if conn is not batched (not Linux).
func BatchStats(conn net.PacketConn) (UDPBatchStats, bool) {
	c, ok := conn.(interface{ stats() UDPBatchStats })
	if !ok {
		return UDPBatchStats{}, false
	}
	return c.stats(), true
}
