//go:build unix

package server

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"
	"net/http"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// rawUpgrade opens a WebSocket to s by hand, sends one frame and returns
// the TCP connection; the client side costs a socket and little else, so
// what the heap grows by is the server's.
func rawUpgrade(addr string, frame []byte) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		return nil, err
	}
	_ = c.SetDeadline(time.Now().Add(waitTimeout))
	req := "GET /rtc HTTP/1.1\r\nHost: " + addr + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	if _, err := c.Write([]byte(req)); err != nil {
		c.Close()
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 256), nil)
	if err != nil {
		c.Close()
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		c.Close()
		return nil, &net.OpError{Op: "upgrade", Err: syscall.EPROTO}
	}
	// One masked binary frame (the mask is zero: the payload goes as is).
	var hdr bytes.Buffer
	hdr.WriteByte(0x82)
	switch n := len(frame); {
	case n < 126:
		hdr.WriteByte(0x80 | byte(n))
	default:
		hdr.WriteByte(0x80 | 126)
		_ = binary.Write(&hdr, binary.BigEndian, uint16(n))
	}
	hdr.Write([]byte{0, 0, 0, 0})
	hdr.Write(frame)
	if _, err := c.Write(hdr.Bytes()); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// raiseFileLimit raises the soft limit on open files to at least n, or
// skips the test.
func raiseFileLimit(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim))
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		t.Skipf("needs %d open files; the hard limit is %d (raise it with ulimit -Hn)", n, lim.Max)
	}
	old := lim
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("needs %d open files; cannot raise the limit from %d: %v", n, old.Cur, err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

// memInUse is the heap in use and the goroutine stacks, after a GC.
func memInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc + m.StackInuse
}

// TestUnauthenticatedMemory: 1,000 connections that have not
// authenticated, each of which has sent a join the server refuses (and
// never read or acknowledged the answer), cost the server under 64 MiB of
// heap and stacks.
func TestUnauthenticatedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 1,000 connections")
	}
	const n = 1000
	raiseFileLimit(t, 2*n+256)
	s := startLimited(t, Config{MaxConnsPerAddress: 2 * n, MaxUnauthenticated: 2 * n, AuthTimeout: 5 * time.Minute})
	join, err := proto.Marshal(&pb.ClientFrame{RequestId: 1, Seq: 1, Body: &pb.ClientFrame_Join{Join: &pb.JoinRequest{
		AppId: "012345678901234567890123", RoomId: "room1", UserId: "alice", Token: "garbage",
		ExtraInfo: string(bytes.Repeat([]byte("o"), 200)), Room: 1, PacketVersion: packetVersionRooms,
	}}})
	require.NoError(t, err)

	before := memInUse()
	conns := make([]net.Conn, 0, n)
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for len(conns) < n {
		require.True(t, time.Now().Before(deadline), "opened %d connections in 2 minutes", len(conns))
		c, err := rawUpgrade(s.Addr().String(), join)
		require.NoError(t, err, "connection %d", len(conns))
		conns = append(conns, c)
	}
	require.Eventually(t, func() bool { return joins(t, s, joinInvalidToken) == n }, time.Minute, 10*time.Millisecond,
		"the server refused every join")
	after := memInUse()
	grew := int64(after) - int64(before)
	t.Logf("%d unauthenticated connections: heap and stacks grew by %.1f MiB (%.1f KiB each)",
		n, float64(grew)/(1<<20), float64(grew)/n/1024)
	require.Less(t, grew, int64(64<<20))
	s.admission.mu.Lock()
	require.Equal(t, n, s.admission.unauth)
	s.admission.mu.Unlock()
}
