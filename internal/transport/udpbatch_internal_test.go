//go:build linux && (amd64 || arm64)

package transport

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
)

// newBatchPair returns two batched loopback sockets, closed at the test's
// end, and their addresses.
func newBatchPair(t *testing.T) (a, b *batchUDP, aAddr, bAddr netip.AddrPort) {
	t.Helper()
	open := func() (*batchUDP, netip.AddrPort) {
		u, err := ListenUDP(&net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}, nil)
		require.NoError(t, err)
		c, ok := newBatchUDP(u, zap.NewNop()).(*batchUDP)
		require.True(t, ok, "not batched on this platform")
		t.Cleanup(func() { _ = c.Close() })
		return c, u.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	a, aAddr = open()
	b, bAddr = open()
	return a, b, aAddr, bAddr
}

// readString reads the next datagram of c as a string, and its sender.
func readString(t *testing.T, c *batchUDP) (string, netip.AddrPort) {
	t.Helper()
	buf := make([]byte, 2048)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(10*time.Second))) // a lost packet fails, not hangs, the test
	n, from, err := c.ReadFromAddrPort(buf)
	require.NoError(t, err)
	return string(buf[:n]), from
}

// TestBatchUDPDelivers: packets written from many goroutines at once all
// arrive, each from the writer's address and in each goroutine's order.
func TestBatchUDPDelivers(t *testing.T) {
	a, b, aAddr, bAddr := newBatchPair(t)
	const writers, each, window = 8, 100, 64
	inFlight := make(chan struct{}, window) // no more than the socket buffers hold
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				inFlight <- struct{}{}
				_, err := a.WriteToAddrPort(fmt.Appendf(nil, "%d:%d", w, i), bAddr)
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	next := make([]int, writers)
	for range writers * each {
		s, from := readString(t, b)
		<-inFlight
		require.Equal(t, aAddr, from)
		var w, i int
		_, err := fmt.Sscanf(s, "%d:%d", &w, &i)
		require.NoError(t, err)
		require.Equal(t, next[w], i, "writer %d's packets out of order", w)
		next[w]++
	}
	wg.Wait()
}

// TestBatchUDPSendCalls: the writer's batch leaves in one sendmmsg per
// udpBatchSize packets, in order.
func TestBatchUDPSendCalls(t *testing.T) {
	a, b, _, bAddr := newBatchPair(t)
	const n = udpBatchSize + udpBatchSize/2
	ps := make([]outPacket, n)
	for i := range ps {
		require.True(t, ps[i].setTo(bAddr))
		ps[i].buf = fmt.Appendf(nil, "%d", i)
	}
	before := a.stats().SendCalls
	a.send(ps, true)
	require.Equal(t, uint64(2), a.stats().SendCalls-before)
	for i := range n {
		s, _ := readString(t, b)
		require.Equal(t, fmt.Sprint(i), s)
	}
}

// TestBatchUDPReadSlotsGrow: a socket reads one datagram a call until a
// read finds more waiting than it has slots for; then its slots double,
// up to udpBatchSize, and every datagram still comes out, in order.
func TestBatchUDPReadSlotsGrow(t *testing.T) {
	_, b, _, bAddr := newBatchPair(t)
	plain, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer plain.Close()
	require.Equal(t, 1, b.rslots, "a new socket reads one at a time")
	const n = 2 * udpBatchSize
	for i := range n { // all in b's receive buffer before its first read
		_, err := plain.WriteToUDP(fmt.Appendf(nil, "%d", i), net.UDPAddrFromAddrPort(bAddr))
		require.NoError(t, err)
	}
	for i := range n {
		s, _ := readString(t, b)
		require.Equal(t, fmt.Sprint(i), s)
	}
	require.Equal(t, udpBatchSize, b.rslots)
}

// TestBatchUDPSkipsRefusedDestination: a packet the kernel refuses (an
// IPv6 destination for the IPv4 socket) is dropped and the packets
// behind it in the same batch still go.
func TestBatchUDPSkipsRefusedDestination(t *testing.T) {
	a, b, _, bAddr := newBatchPair(t)
	v6 := netip.AddrPortFrom(netip.IPv6Loopback(), bAddr.Port())
	_, err := a.WriteToAddrPort([]byte("lost"), v6)
	require.NoError(t, err, "queued: the error is the writer's, as a datagram's loss")
	_, err = a.WriteToAddrPort([]byte("kept"), bAddr)
	require.NoError(t, err)
	s, _ := readString(t, b)
	require.Equal(t, "kept", s)
}

// TestBatchUDPSkipsBadDatagrams: a datagram longer than udpReadSize is
// skipped, not returned as an error, which would end pion's UDPMux.
func TestBatchUDPSkipsBadDatagrams(t *testing.T) {
	_, b, _, bAddr := newBatchPair(t)
	plain, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer plain.Close()
	to := net.UDPAddrFromAddrPort(bAddr)
	_, err = plain.WriteToUDP(make([]byte, udpReadSize+1), to)
	require.NoError(t, err)
	_, err = plain.WriteToUDP([]byte("after"), to)
	require.NoError(t, err)
	s, from := readString(t, b)
	require.Equal(t, "after", s)
	require.Equal(t, plain.LocalAddr().(*net.UDPAddr).AddrPort(), from)
}

// TestBatchUDPWaitsForRoom: a write beyond the queue's limit waits for
// the writer to take the queue, then goes.
func TestBatchUDPWaitsForRoom(t *testing.T) {
	a, b, _, bAddr := newBatchPair(t)
	a.limit = 16 // (udpQueueLimit's datagrams would overflow a default receive buffer)
	// Fill the queue as writes would if the writer had not run yet (the
	// writer is woken only by a write to an empty queue, so it sleeps).
	a.mu.Lock()
	for i := range a.limit {
		var p outPacket
		require.True(t, p.setTo(bAddr))
		p.buf = fmt.Appendf(nil, "%d", i)
		a.queue = append(a.queue, p)
	}
	a.mu.Unlock()
	wrote := make(chan error, 1)
	go func() {
		_, err := a.WriteToAddrPort([]byte("last"), bAddr)
		wrote <- err
	}()
	a.wake <- struct{}{}
	require.NoError(t, <-wrote)
	for i := range a.limit {
		s, _ := readString(t, b)
		require.Equal(t, fmt.Sprint(i), s)
	}
	s, _ := readString(t, b)
	require.Equal(t, "last", s)
}

// TestBatchUDPCloseSendsQueued: packets queued when the socket closes
// still go, even past a deadline set to end the socket's I/O (pion sets
// one, then closes: a PeerConnection's last packets, its SCTP ABORT and
// DTLS close_notify, are queued just before, and tell the other end).
func TestBatchUDPCloseSendsQueued(t *testing.T) {
	a, b, _, bAddr := newBatchPair(t)
	// Queued as in TestBatchUDPWaitsForRoom, without waking the writer:
	// only its flush at Close can send them.
	a.mu.Lock()
	for _, s := range []string{"abort", "close_notify"} {
		var p outPacket
		require.True(t, p.setTo(bAddr))
		p.buf = []byte(s)
		a.queue = append(a.queue, p)
	}
	a.mu.Unlock()
	require.NoError(t, a.SetDeadline(time.Now()))
	require.NoError(t, a.Close())
	for _, want := range []string{"abort", "close_notify"} {
		s, _ := readString(t, b)
		require.Equal(t, want, s)
	}
}

// TestBatchUDPClose: Close ends a blocked read and a write waiting for
// room, later calls fail with net.ErrClosed, and the writer goroutine
// ends (TestMain's goleak).
func TestBatchUDPClose(t *testing.T) {
	a, _, _, bAddr := newBatchPair(t)
	a.mu.Lock()
	a.limit = 16
	a.queue = make([]outPacket, a.limit) // as in TestBatchUDPWaitsForRoom
	a.mu.Unlock()
	wrote := make(chan error, 1)
	go func() {
		_, err := a.WriteToAddrPort([]byte("x"), bAddr)
		wrote <- err
	}()
	read := make(chan error, 1)
	go func() {
		_, _, err := a.ReadFromAddrPort(make([]byte, 64))
		read <- err
	}()
	require.NoError(t, a.Close())
	require.ErrorIs(t, <-wrote, net.ErrClosed)
	require.ErrorIs(t, <-read, net.ErrClosed)
	_, err := a.WriteToAddrPort([]byte("x"), bAddr)
	require.ErrorIs(t, err, net.ErrClosed)
	_, _, err = a.ReadFrom(make([]byte, 64))
	require.True(t, errors.Is(err, net.ErrClosed), "%v", err)
}
