package parley_test

import (
	"fmt"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
)

// TestUDPBatchMetrics: the server's metrics count the datagrams of its
// ICE socket and the system calls that carried them (Linux's sendmmsg and
// recvmmsg, internal/transport's udpbatch.go).
func TestUDPBatchMetrics(t *testing.T) {
	if runtime.GOOS != "linux" || (runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64") {
		t.Skip("sockets are batched on Linux amd64 and arm64 only")
	}
	srv := parleytest.NewServer(t)
	peers := []*peer{newPeer(t, srv, "A", "alice"), newPeer(t, srv, "A", "bob"), newPeer(t, srv, "A", "carol")}
	joinAll(t, peers...)
	const n = 100
	ids := make([]int64, n)
	for i := range ids {
		ids[i] = peers[0].room.SendRoomMessage(fmt.Sprint(i))
	}
	for _, p := range peers[1:] {
		for i := range n {
			require.Equal(t, roomMsg("alice", true, false, []byte(fmt.Sprint(i))), expect[parleytest.Message](t, p.rec))
		}
	}
	for _, id := range ids {
		require.Equal(t, roomResult(id, parley.RoomMessageSendResultSuccess), expect[parleytest.SendResult](t, peers[0].rec))
	}
	m := scrape(t, srv)
	sent, calls := m["parley_udp_packets_sent_total"], m["parley_udp_send_calls_total"]
	got, reads := m["parley_udp_packets_received_total"], m["parley_udp_receive_calls_total"]
	require.Greater(t, calls, 0.0)
	require.Greater(t, reads, 0.0)
	// The writers coalesce a burst into few packets, and how many share a
	// call depends on the scheduler (TestBatchUDPSendCalls, in
	// internal/transport, holds the batching itself).
	require.GreaterOrEqual(t, sent, calls)
	require.GreaterOrEqual(t, got, reads)
}
