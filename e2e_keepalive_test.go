package parley_test

import (
	"encoding/binary"
	"sync"
	"testing"
	"time"

	"github.com/pion/transport/v5/vnet"
	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
)

// stunRequests counts the STUN binding requests a vnet router carries, by
// whether the server sent them, and signals each one the client sent.
type stunRequests struct {
	server string // the server's ICE address

	mu         sync.Mutex
	connected  bool // counting: the join is done; guarded by mu
	fromServer int  // guarded by mu
	client     chan struct{}
}

// filter is a router chunk filter that passes every packet.
func (s *stunRequests) filter(c vnet.Chunk) bool {
	b := c.UserData()
	// A binding request: type 0x0001 and the magic cookie (RFC 5389).
	if len(b) < 20 || binary.BigEndian.Uint16(b) != 0x0001 || binary.BigEndian.Uint32(b[4:]) != 0x2112A442 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.connected {
		return true
	}
	if c.SourceAddr().String() == s.server {
		s.fromServer++
	} else {
		select {
		case s.client <- struct{}{}:
		default:
		}
	}
	return true
}

// TestServerSendsNoKeepalives: once a PeerConnection is up, its ICE pair
// is kept alive by the client's keepalives, which the server answers; the
// server sends none of its own, which would double the STUN traffic of an
// idle member (every 2 s at pion's default). The pair stays connected:
// messages still go both ways after several of the client's keepalives.
func TestServerSendsNoKeepalives(t *testing.T) {
	lossy, nets := newLossyNet(t, 2)
	srv := newVNetServer(t, nets[0])
	reqs := &stunRequests{server: srv.ice.String(), client: make(chan struct{}, 16)}
	lossy.router.AddChunkFilter(reqs.filter)

	alice := newVNetPeer(t, srv, nets[1], "keepalive", "alice", 16)
	require.NoError(t, alice.room.JoinRoom(srv.token(t, "keepalive", "alice"), alice.info, parley.RoomConfig{}))
	require.Equal(t, 0, alice.rec.NextRoomState(t).State, "room state after JoinRoom")
	reqs.mu.Lock()
	reqs.connected = true
	reqs.mu.Unlock()

	const keepalives = 3 // 4–6 s at pion's 2 s
	timeout := time.After(30 * time.Second)
	for i := range keepalives {
		select {
		case <-reqs.client:
		case <-timeout:
			t.Fatalf("%d of the client's %d keepalives in 30 s", i, keepalives)
		}
	}
	reqs.mu.Lock()
	fromServer := reqs.fromServer
	reqs.mu.Unlock()
	require.Zero(t, fromServer, "binding requests from the server while the client sent %d", keepalives)

	// Still connected: the client's keepalives and the server's answers kept
	// the pair alive both ways.
	id := alice.room.SendRoomMessage("still here")
	require.Positive(t, id)
	alice.rec.WaitResults(t, id)
}
