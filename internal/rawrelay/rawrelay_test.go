package rawrelay

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

// TestMain fails the package if a goroutine outlives its tests: Load
// closes its members and Close the relay's.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newServer starts a raw relay on loopback, closed when t ends, and gives
// a context bounding the test's load.
func newServer(t *testing.T) (*Server, context.Context) {
	t.Helper()
	s, err := Listen("127.0.0.1:0", "127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, s.Close()) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return s, ctx
}

// TestLoad runs a small load through a real relay, real pion
// PeerConnections on loopback, and checks that every measured message
// reached every other member of its room and was measured.
func TestLoad(t *testing.T) {
	s, ctx := newServer(t)
	res, err := Load(ctx, LoadConfig{
		URL: s.URL(), Members: 7, RoomSize: 3, Rate: 40, Payload: 64,
		Warmup: 200 * time.Millisecond, Duration: time.Second,
	})
	require.NoError(t, err)
	require.Equal(t, 3, res.Rooms, "rooms of 3, 3 and 1")
	require.Positive(t, res.Sent)
	// The room of one sends to nobody: the others' messages make all the
	// deliveries, two each.
	require.Equal(t, res.Expected, res.Received, "%v", res)
	require.Less(t, res.Expected, 2*res.Sent)
	require.Positive(t, res.P50)
	require.GreaterOrEqual(t, res.Max, res.P99)
	require.Positive(t, res.ServerCPU)
	require.Zero(t, res.LatencyOverflow)
}

// TestLoadRefusesBadConfig: a load that cannot measure anything is an
// error, not an empty result.
func TestLoadRefusesBadConfig(t *testing.T) {
	_, err := Load(context.Background(), LoadConfig{URL: "http://127.0.0.1:1", Members: 1, RoomSize: 5, Rate: 1, Payload: 64, Duration: time.Second})
	require.Error(t, err)
}

// TestListenLoopbackOnly: the relay's ICE socket is on loopback or
// nowhere.
func TestListenLoopbackOnly(t *testing.T) {
	_, err := Listen("127.0.0.1:0", "0.0.0.0:0")
	require.ErrorContains(t, err, "not a loopback address")
}

// TestServerForgetsMembers: once a load's members have closed, the relay
// holds none of their PeerConnections.
func TestServerForgetsMembers(t *testing.T) {
	s, ctx := newServer(t)
	_, err := Load(ctx, LoadConfig{
		URL: s.URL(), Members: 4, RoomSize: 2, Rate: 20, Payload: 64,
		Warmup: 100 * time.Millisecond, Duration: 300 * time.Millisecond,
	})
	require.NoError(t, err)
	require.Eventually(t, func() bool { return s.members() == 0 }, 30*time.Second, 10*time.Millisecond,
		"the relay still holds %d PeerConnections", s.members())
	s.mu.Lock()
	defer s.mu.Unlock()
	require.Empty(t, s.rooms)
}
