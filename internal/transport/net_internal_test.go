//go:build unix

package transport

import (
	"net"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

var loopback = &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}

// TestBufferSizesAsAsked: bufferSizes reports a grant in the units it was
// asked in (Linux reports double; it is halved).
func TestBufferSizesAsAsked(t *testing.T) {
	c, err := net.ListenUDP("udp4", loopback)
	require.NoError(t, err)
	defer c.Close()
	const size = 64 << 10 // under every default limit, over every minimum
	require.NoError(t, c.SetReadBuffer(size))
	require.NoError(t, c.SetWriteBuffer(size))
	rcv, snd, err := bufferSizes(c)
	require.NoError(t, err)
	if runtime.GOOS == "linux" {
		require.Equal(t, size, rcv)
		require.Equal(t, size, snd)
	} else {
		require.GreaterOrEqual(t, rcv, size)
		require.GreaterOrEqual(t, snd, size)
	}
}

// TestListenUDPWarnsOnShortBuffers: ListenUDP logs one Warn exactly
// when the kernel grants less than SocketBuffer, as read back from the
// socket; and asking for a size no kernel limit allows (1 GiB) always
// warns, with the sizes granted.
func TestListenUDPWarnsOnShortBuffers(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	c, err := ListenUDP(loopback, zap.New(core))
	require.NoError(t, err)
	defer c.Close()
	rcv, snd, err := bufferSizes(c)
	require.NoError(t, err)
	short := rcv < SocketBuffer || snd < SocketBuffer
	t.Logf("granted receive %d, send %d of %d asked", rcv, snd, SocketBuffer)
	require.Equal(t, short, logs.FilterLevelExact(zapcore.WarnLevel).Len() == 1)
	require.LessOrEqual(t, logs.FilterLevelExact(zapcore.WarnLevel).Len(), 1)

	core, logs = observer.New(zapcore.DebugLevel)
	const huge = 1 << 30
	require.False(t, setBuffers(c, huge, zap.New(core), zapcore.WarnLevel))
	warns := logs.FilterLevelExact(zapcore.WarnLevel).AllUntimed()
	require.Len(t, warns, 1)
	rcv, snd, err = bufferSizes(c)
	require.NoError(t, err)
	require.Equal(t, map[string]any{"asked": int64(huge), "receive": int64(rcv), "send": int64(snd)}, warns[0].ContextMap())
}

// TestBufferedNetWarnsOnce: the sockets pion opens for ICE report a short
// grant at Warn the first time and at Debug after.
func TestBufferedNetWarnsOnce(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	n, err := newBufferedNet(zap.New(core), true)
	require.NoError(t, err)
	bn := n.(bufferedNet)
	bn.size = 1 << 30 // more than any kernel grants
	for range 3 {
		c, err := bn.ListenUDP("udp4", loopback)
		require.NoError(t, err)
		require.NoError(t, c.Close())
	}
	pc, err := bn.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, pc.Close())
	require.Equal(t, 1, logs.FilterLevelExact(zapcore.WarnLevel).Len())
	require.Equal(t, 3, logs.FilterLevelExact(zapcore.DebugLevel).FilterMessageSnippet("smaller than asked").Len())
}
