//go:build linux && (amd64 || arm64)

package transport

import (
	"errors"
	"math/bits"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/pion/transport/v5"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// mmsghdr is Linux's struct mmsghdr: a message header and the byte count
// the call filled in.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// sockaddr holds a struct sockaddr_in or sockaddr_in6.
type sockaddr [unix.SizeofSockaddrInet6]byte

// outPacket is one queued write: a copy of the caller's bytes and the
// destination as the kernel takes it.
type outPacket struct {
	buf   []byte
	to    sockaddr
	toLen uint32
}

// batchUDP is a *net.UDPConn whose writes leave through sendmmsg from one
// writer goroutine and whose reads come from recvmmsg (udpbatch.go).
type batchUDP struct {
	*net.UDPConn
	raw syscall.RawConn
	log *zap.Logger

	mu     sync.Mutex
	room   sync.Cond   // signalled when the queue shrinks or the socket closes
	queue  []outPacket // guarded by mu: written, not yet handed to the writer
	spare  []outPacket // guarded by mu: the writer's last batch, for reuse
	free   [][]byte    // guarded by mu: packet buffers to reuse
	closed bool        // guarded by mu
	limit  int         // the most packets queued: udpQueueLimit (tests set less)

	// Counts for BatchStats.
	sentPackets, sendCalls atomic.Uint64
	readPackets, readCalls atomic.Uint64

	wake chan struct{} // 1-buffered, sent to and closed under mu: the queue went from empty to not
	done chan struct{} // closed when the writer has returned

	// The writer's own; only it touches them.
	wmsgs [udpBatchSize]mmsghdr
	wiovs [udpBatchSize]unix.Iovec

	// The reader's: rmu is held through a read, so reads are serial.
	rmu    sync.Mutex
	rmsgs  [udpBatchSize]mmsghdr    // guarded by rmu
	riovs  [udpBatchSize]unix.Iovec // guarded by rmu
	rnames [udpBatchSize]sockaddr   // guarded by rmu
	rbufs  [udpBatchSize][]byte     // guarded by rmu
	rslots int                      // guarded by rmu: the slots in use, each with a buffer (see fill)
	rnext  int                      // guarded by rmu: the next datagram to hand out
	rcount int                      // guarded by rmu: datagrams the last recvmmsg read
}

func newBatchUDP(conn *net.UDPConn, log *zap.Logger) transport.UDPConn {
	raw, err := conn.SyscallConn()
	if err != nil {
		return conn
	}
	c := &batchUDP{
		UDPConn: conn,
		raw:     raw,
		log:     log,
		limit:   udpQueueLimit,
		wake:    make(chan struct{}, 1),
		done:    make(chan struct{}),
	}
	c.room.L = &c.mu
	c.growSlots(1)
	go c.writer()
	return c
}

// growSlots gives the read slots up to n a buffer each.
func (c *batchUDP) growSlots(n int) {
	for i := c.rslots; i < n; i++ {
		c.rbufs[i] = make([]byte, udpReadSize)
		c.riovs[i].Base = &c.rbufs[i][0]
		c.riovs[i].SetLen(udpReadSize)
		c.rmsgs[i].hdr.Iov = &c.riovs[i]
		c.rmsgs[i].hdr.SetIovlen(1)
		c.rmsgs[i].hdr.Name = &c.rnames[i][0]
	}
	c.rslots = n
}

// WriteToAddrPort queues a copy of b for addr and returns; the writer
// sends it. It waits only while c.limit packets are queued.
func (c *batchUDP) WriteToAddrPort(b []byte, addr netip.AddrPort) (int, error) {
	var p outPacket
	if !p.setTo(addr) {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: net.UDPAddrFromAddrPort(addr), Err: errAddrFamily}
	}
	c.mu.Lock()
	for len(c.queue) >= c.limit && !c.closed {
		c.room.Wait()
	}
	if c.closed {
		c.mu.Unlock()
		return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: net.UDPAddrFromAddrPort(addr), Err: net.ErrClosed}
	}
	if n := len(c.free); n > 0 && cap(c.free[n-1]) >= len(b) {
		p.buf = append(c.free[n-1][:0], b...)
		c.free = c.free[:n-1]
	} else {
		p.buf = append(make([]byte, 0, max(len(b), 1500)), b...)
	}
	c.queue = append(c.queue, p)
	if len(c.queue) == 1 {
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	c.mu.Unlock()
	return len(b), nil
}

// WriteTo is WriteToAddrPort for a *net.UDPAddr.
func (c *batchUDP) WriteTo(b []byte, addr net.Addr) (int, error) {
	u, ok := addr.(*net.UDPAddr)
	if !ok {
		return 0, &net.OpError{Op: "write", Net: "udp", Source: c.LocalAddr(), Addr: addr, Err: syscall.EINVAL}
	}
	return c.WriteToAddrPort(b, u.AddrPort())
}

// errAddrFamily is a destination the IPv4 socket cannot reach.
var errAddrFamily = errors.New("address family not supported by the socket")

// setTo fills p's destination with addr, an IPv4 address (the server's
// socket is udp4) or an IPv6 one.
func (p *outPacket) setTo(addr netip.AddrPort) bool {
	ip := addr.Addr().Unmap()
	port := addr.Port()
	switch {
	case ip.Is4():
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(&p.to[0]))
		sa.Family = unix.AF_INET
		sa.Port = bits.ReverseBytes16(port) // network byte order on a little-endian CPU (the build tags')
		sa.Addr = ip.As4()
		p.toLen = unix.SizeofSockaddrInet4
	case ip.Is6():
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(&p.to[0]))
		sa.Family = unix.AF_INET6
		sa.Port = bits.ReverseBytes16(port)
		sa.Addr = ip.As16()
		p.toLen = unix.SizeofSockaddrInet6
	default:
		return false
	}
	return true
}

// writer sends the queue, a batch at a time, until the socket closes.
func (c *batchUDP) writer() {
	defer close(c.done)
	for range c.wake {
		// Let the goroutines already runnable (the other associations of
		// a fan-out) queue their packets before the call that sends them.
		runtime.Gosched()
		c.flush(true)
	}
	// Closed. What was queued before Close still goes: pion queues a
	// PeerConnection's SCTP ABORT and DTLS close_notify just before it
	// closes the socket, and the other end learns of the close from them.
	// It goes without waiting for a full socket buffer, and past the
	// deadline pion set to end its reads.
	c.flush(false)
}

// flush sends what is queued, and keeps its buffers for reuse. With
// wait, a full socket buffer is waited out; without, what it cannot take
// is dropped.
func (c *batchUDP) flush(wait bool) {
	c.mu.Lock()
	batch := c.queue
	c.queue = c.spare[:0]
	c.room.Broadcast()
	c.mu.Unlock()
	c.send(batch, wait)
	c.mu.Lock()
	for i := range batch {
		if len(c.free) < udpFreeLimit {
			c.free = append(c.free, batch[i].buf)
		}
		batch[i].buf = nil
	}
	c.spare = batch[:0]
	c.mu.Unlock()
}

// send writes ps with as few sendmmsg calls as it can (counted in
// sendCalls). A packet the kernel refuses (an unreachable destination)
// is dropped, as a sendto's error would drop it, and the rest still go.
// With wait, a full socket buffer is waited out (and the write deadline
// honoured); without, the rest are dropped.
func (c *batchUDP) send(ps []outPacket, wait bool) {
	for len(ps) > 0 {
		n := min(len(ps), udpBatchSize)
		for i := range n {
			p := &ps[i]
			if len(p.buf) > 0 {
				c.wiovs[i].Base = &p.buf[0]
			}
			c.wiovs[i].SetLen(len(p.buf))
			h := &c.wmsgs[i].hdr
			h.Name = &p.to[0]
			h.Namelen = p.toLen
			h.Iov = &c.wiovs[i]
			h.SetIovlen(1)
		}
		var sent int
		var errno syscall.Errno
		sendmmsg := func(fd uintptr) bool {
			r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&c.wmsgs[0])), uintptr(n), 0, 0, 0)
			sent, errno = int(r), e
			return e != unix.EAGAIN || !wait
		}
		var err error
		if wait {
			err = c.raw.Write(sendmmsg) // false: wait until the socket can take more
		} else {
			err = c.raw.Control(func(fd uintptr) { sendmmsg(fd) })
			if err == nil && errno == unix.EAGAIN {
				err = errno
			}
		}
		c.sendCalls.Add(1)
		clear(c.wmsgs[:n])
		clear(c.wiovs[:n])
		if err != nil {
			return // closed, past the deadline, or full without wait: the rest are dropped
		}
		if errno != 0 {
			// sendmmsg reports an error only for its first message.
			if ce := c.log.Check(zap.DebugLevel, "UDP packet not sent"); ce != nil {
				ce.Write(zap.Error(errno))
			}
			sent = 1
		} else {
			c.sentPackets.Add(uint64(sent))
		}
		sent = max(sent, 1) // (sendmmsg sends at least one or fails)
		ps = ps[sent:]
	}
}

// ReadFromAddrPort returns the next datagram, reading up to udpBatchSize
// at once when none is left from the last read. A datagram longer than
// udpReadSize, or from an address that is not IP, is skipped: no ICE,
// DTLS or SCTP packet is either, and an error here would end pion's
// UDPMux, whose reader stops at the first.
func (c *batchUDP) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	c.rmu.Lock()
	defer c.rmu.Unlock()
	for {
		if c.rnext == c.rcount {
			if err := c.fill(); err != nil {
				return 0, netip.AddrPort{}, c.closedErr(err)
			}
		}
		i := c.rnext
		c.rnext++
		m := &c.rmsgs[i]
		from, ok := sockaddrAddrPort(&c.rnames[i], m.hdr.Namelen)
		if !ok || m.hdr.Flags&unix.MSG_TRUNC != 0 {
			if ce := c.log.Check(zap.DebugLevel, "UDP datagram skipped: too long, or not from an IP address"); ce != nil {
				ce.Write(zap.Uint32("bytes", m.n), zap.Stringer("from", from))
			}
			continue
		}
		return copy(b, c.rbufs[i][:m.n]), from, nil
	}
}

// closedErr is err, or net.ErrClosed if Close has begun: pion ends a
// socket's reads with a deadline and then closes it, and takes any error
// but net.ErrClosed for a failure worth a warning. Close here waits for
// the writer's last flush before it closes the socket itself, so a
// reader would otherwise see the deadline first.
func (c *batchUDP) closedErr(err error) error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed && !errors.Is(err, net.ErrClosed) {
		return &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: net.ErrClosed}
	}
	return err
}

// fill reads as many datagrams as the socket holds, up to the slots in
// use, waiting for the first. A socket starts with one slot and doubles
// them, up to udpBatchSize, each time a read fills them all: a quiet
// socket (a client's, in the SDK) keeps one 8 KiB buffer, a busy one
// (the server's) soon reads 64 datagrams a call.
func (c *batchUDP) fill() error {
	for i := range c.rslots {
		c.rmsgs[i].hdr.Namelen = uint32(len(sockaddr{}))
		c.rmsgs[i].hdr.Flags = 0
		c.rmsgs[i].n = 0
	}
	var got int
	var errno syscall.Errno
	err := c.raw.Read(func(fd uintptr) bool {
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&c.rmsgs[0])), uintptr(c.rslots), 0, 0, 0)
		if e == unix.EAGAIN {
			return false
		}
		got, errno = int(r), e
		return true
	})
	if err == nil && errno != 0 {
		err = errno
	}
	if err != nil {
		c.rnext, c.rcount = 0, 0
		return &net.OpError{Op: "read", Net: "udp", Source: c.LocalAddr(), Err: err}
	}
	c.rnext, c.rcount = 0, got
	c.readCalls.Add(1)
	c.readPackets.Add(uint64(got))
	if got == c.rslots && c.rslots < udpBatchSize {
		c.growSlots(min(2*c.rslots, udpBatchSize))
	}
	return nil
}

func (c *batchUDP) stats() UDPBatchStats {
	return UDPBatchStats{
		PacketsSent: c.sentPackets.Load(), SendCalls: c.sendCalls.Load(),
		PacketsReceived: c.readPackets.Load(), ReceiveCalls: c.readCalls.Load(),
	}
}

// sockaddrAddrPort decodes the sockaddr the kernel wrote.
func sockaddrAddrPort(sa *sockaddr, n uint32) (netip.AddrPort, bool) {
	switch (*unix.RawSockaddr)(unsafe.Pointer(&sa[0])).Family {
	case unix.AF_INET:
		if n < unix.SizeofSockaddrInet4 {
			return netip.AddrPort{}, false
		}
		s := (*unix.RawSockaddrInet4)(unsafe.Pointer(&sa[0]))
		return netip.AddrPortFrom(netip.AddrFrom4(s.Addr), bits.ReverseBytes16(s.Port)), true
	case unix.AF_INET6:
		if n < unix.SizeofSockaddrInet6 {
			return netip.AddrPort{}, false
		}
		s := (*unix.RawSockaddrInet6)(unsafe.Pointer(&sa[0]))
		return netip.AddrPortFrom(netip.AddrFrom16(s.Addr), bits.ReverseBytes16(s.Port)), true
	}
	return netip.AddrPort{}, false
}

// ReadFrom is ReadFromAddrPort with a *net.UDPAddr.
func (c *batchUDP) ReadFrom(b []byte) (int, net.Addr, error) {
	n, from, err := c.ReadFromAddrPort(b)
	if err != nil {
		return n, nil, err
	}
	return n, net.UDPAddrFromAddrPort(from), nil
}

// Close ends the writer, once it has sent what was queued (closeFlush at
// most), and closes the socket.
func (c *batchUDP) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return c.UDPConn.Close()
	}
	c.closed = true
	c.room.Broadcast()
	close(c.wake)
	c.mu.Unlock()
	_ = c.UDPConn.SetWriteDeadline(time.Now().Add(closeFlush)) // a write the writer is waiting in
	<-c.done
	return c.UDPConn.Close()
}

// closeFlush bounds Close's wait for a writer blocked on a full socket
// buffer.
const closeFlush = time.Second
