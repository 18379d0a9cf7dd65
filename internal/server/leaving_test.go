package server

import (
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	clusterpb "github.com/parleyhq/parley/proto/parley/cluster/v1"
)

// stepClock is a clock that moves only when told to; its timers never
// fire (the grace timers of moving proxies are not what these tests are
// about).
type stepClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) AfterFunc(time.Duration, func()) func() bool { return func() bool { return true } }

func (c *stepClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// TestMoversKeptForTheGracePeriod: what a leaving node's Bye says of a
// room is kept for the grace period, for this node's apps only; a room
// that opens meanwhile gets those members as moving proxies, once each,
// but not a user it knows on another node; after the grace period nothing
// is kept.
func TestMoversKeptForTheGracePeriod(t *testing.T) {
	clk := &stepClock{now: time.Unix(1_000_000, 0)}
	s, err := New(Config{
		Apps: map[string]string{testAppID: testAppKey}, NATS: "nats://127.0.0.1:1", NodeID: "n1",
		Clock: clk, GracePeriod: 10 * time.Second,
	})
	require.NoError(t, err)
	members := []*clusterpb.Member{{UserId: "bob", Joined: 5}, {UserId: "carol", Joined: 6}}
	s.keepMovers("n2", []*clusterpb.MovingRoom{
		{App: testAppID, Room: "r", Members: members},
		{App: "not-an-app-of-this-node!", Room: "r", Members: members},
	})
	key := roomKey{testAppID, "r"}
	kept := s.moversOf(key)
	require.Len(t, kept, 1)
	require.Equal(t, "n2", kept[0].node)
	require.Nil(t, s.moversOf(roomKey{"not-an-app-of-this-node!", "r"}), "another app's room kept")

	r := &room{srv: s, key: key, id: "r", members: make(map[string]*member)}
	r.remote = newRemoteRoom(r, s.cluster)
	r.mu.Lock()
	r.remote.joinLocked("n3", &clusterpb.Member{UserId: "carol", Joined: 7}) // carol is on n3 already
	for range 2 {
		r.remote.seedMovingLocked(kept[0].node, kept[0].members)
	}
	bob, carol := r.members["bob"], r.members["carol"]
	require.NotNil(t, bob)
	require.Equal(t, "n2", bob.node)
	require.Equal(t, stateSuspended, bob.state, "bob is moving")
	require.Contains(t, r.remote.moving, bob)
	require.Equal(t, "n3", carol.node, "a user known on another node is not moving")
	require.Equal(t, stateActive, carol.state)
	require.Equal(t, 2, r.remote.proxies, "seeded twice, counted once")
	r.mu.Unlock()

	clk.advance(10 * time.Second)
	require.Nil(t, s.moversOf(key), "kept past the grace period")
	s.mu.Lock()
	require.Empty(t, s.movers)
	s.mu.Unlock()
}

// TestFitBye: a Bye too big for NATS names fewer rooms, until it fits; one
// that fits is left alone.
func TestFitBye(t *testing.T) {
	bye := &clusterpb.Bye{GraceMs: 1000}
	for i := range 100 {
		bye.Rooms = append(bye.Rooms, &clusterpb.MovingRoom{App: testAppID, Room: "room-" + strconv.Itoa(i), Members: []*clusterpb.Member{{UserId: "user-" + strconv.Itoa(i), Joined: int64(i)}}})
	}
	size := int64(proto.Size(bye))
	require.True(t, fitBye(bye, size+byeSlack), "a Bye that fits")
	require.Len(t, bye.Rooms, 100)

	require.False(t, fitBye(bye, size/3+byeSlack))
	require.NotEmpty(t, bye.Rooms)
	require.LessOrEqual(t, int64(proto.Size(bye)+byeSlack), size/3+byeSlack)
	require.Equal(t, "room-0", bye.Rooms[0].Room, "the first rooms stay")

	require.False(t, fitBye(bye, 10))
	require.Empty(t, bye.Rooms, "none fits: the Bye goes without rooms")
}
