package transport

import (
	"net"
	"sync/atomic"
	"syscall"

	"github.com/pion/transport/v5"
	"github.com/pion/transport/v5/stdnet"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// bufferedNet is the standard network with SocketBuffer-sized UDP socket
// buffers on every socket pion opens for ICE.
type bufferedNet struct {
	*stdnet.Net
	log    *zap.Logger
	size   int          // the buffer size asked for: SocketBuffer
	warned *atomic.Bool // a short buffer was reported at Warn once already
	batch  bool         // ICE sockets batch their system calls (udpbatch.go)
}

func newBufferedNet(log *zap.Logger, batch bool) (transport.Net, error) {
	n, err := stdnet.NewNet()
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	return bufferedNet{Net: n, log: log, size: SocketBuffer, warned: new(atomic.Bool), batch: batch}, nil
}

func (n bufferedNet) ListenUDP(network string, laddr *net.UDPAddr) (transport.UDPConn, error) {
	c, err := n.Net.ListenUDP(network, laddr)
	if err != nil {
		return nil, err
	}
	if u, ok := c.(*net.UDPConn); ok {
		n.setBuffers(u)
		if n.batch {
			return newBatchUDP(u, n.log), nil
		}
	}
	return c, nil
}

func (n bufferedNet) ListenPacket(network, address string) (net.PacketConn, error) {
	c, err := n.Net.ListenPacket(network, address)
	if err != nil {
		return nil, err
	}
	if u, ok := c.(*net.UDPConn); ok {
		n.setBuffers(u)
	}
	return c, nil
}

// setBuffers sizes c's buffers. Each join opens sockets, and a host's
// limits do not change: a short grant is a Warn the first time, then
// Debug.
func (n bufferedNet) setBuffers(c *net.UDPConn) {
	level := zapcore.WarnLevel
	if n.warned.Load() {
		level = zapcore.DebugLevel
	}
	if !setBuffers(c, n.size, n.log, level) {
		n.warned.Store(true)
	}
}

// setBuffers asks the kernel for size-byte receive and send buffers on c
// and reads back what it granted. It logs at level on log, and reports
// false, when it granted less (on Linux, net.core.rmem_max and
// net.core.wmem_max cap the grant, 208 KiB by default); bursts then
// overflow the buffer and SCTP waits out its retransmission timer. A
// platform where the sizes cannot be read reports true.
func setBuffers(c *net.UDPConn, size int, log *zap.Logger, level zapcore.Level) bool {
	_ = c.SetReadBuffer(size)
	_ = c.SetWriteBuffer(size)
	rcv, snd, err := bufferSizes(c)
	if err != nil {
		log.Debug("UDP socket buffer sizes unknown", zap.Error(err))
		return true
	}
	if rcv >= size && snd >= size {
		return true
	}
	if ce := log.Check(level, "UDP socket buffers are smaller than asked for; raise the kernel's limits (Linux: sysctl net.core.rmem_max and net.core.wmem_max)"); ce != nil {
		ce.Write(zap.Int("asked", size), zap.Int("receive", rcv), zap.Int("send", snd))
	}
	return false
}

// bufferSizes returns the receive and send buffer sizes the kernel granted
// c, as the size asked for: Linux reports double what it grants to the
// data (the rest is its bookkeeping), and this halves it.
func bufferSizes(c syscall.Conn) (rcv, snd int, err error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, 0, err
	}
	var serr error
	if err := raw.Control(func(fd uintptr) { rcv, snd, serr = getBufferSizes(fd) }); err != nil {
		return 0, 0, err
	}
	return rcv, snd, serr
}
