package signal

import (
	"context"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"
)

// newQueueOnly returns a Conn with a queue of n frames and no pumps: the
// test takes frames with next, as the write pump would.
func newQueueOnly(n int) *Conn {
	return &Conn{
		cfg:       Config{QueueLen: n}.withDefaults(),
		wake:      make(chan struct{}, 1),
		closing:   make(chan struct{}),
		readDone:  make(chan struct{}),
		writeDone: make(chan struct{}),
	}
}

// TestConnQueueBound: Send refuses past QueueLen; SendForced does not, and
// its frames do not count toward the bound; WaitRoom returns when the
// write pump takes a bounded frame, and the order on the wire is the order
// queued.
func TestConnQueueBound(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newQueueOnly(2)
		require.NoError(t, c.Send([]byte("a")))
		require.NoError(t, c.Send([]byte("b")))
		require.ErrorIs(t, c.Send([]byte("c")), ErrQueueFull)
		require.True(t, c.Full())
		require.NoError(t, c.SendForced([]byte("x")), "a forced frame goes past the bound")

		room := make(chan error, 1)
		go func() { room <- c.WaitRoom(context.Background()) }()
		synctest.Wait()
		require.Empty(t, room, "WaitRoom returned with the queue full")

		require.Equal(t, "a", string(c.next()))
		synctest.Wait()
		require.NoError(t, <-room)
		require.False(t, c.Full())

		require.Equal(t, "b", string(c.next()))
		// Only x is queued, and it does not count: two more fit.
		require.NoError(t, c.Send([]byte("y")))
		require.NoError(t, c.Send([]byte("z")))
		require.ErrorIs(t, c.Send([]byte("w")), ErrQueueFull)
		for _, want := range []string{"x", "y", "z"} {
			require.Equal(t, want, string(c.next()))
		}
		require.Nil(t, c.next())
	})
}

// TestConnWaitRoomEnds: WaitRoom on a full queue returns ctx's error when
// ctx ends, and ErrClosed when the write pump stops, even with the read
// pump still running (the server's reader waits from onFrame).
func TestConnWaitRoomEnds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newQueueOnly(1)
		require.NoError(t, c.Send([]byte("a")))

		ctx, cancel := context.WithCancel(context.Background())
		room := make(chan error, 1)
		go func() { room <- c.WaitRoom(ctx) }()
		synctest.Wait()
		require.Empty(t, room)
		cancel()
		require.ErrorIs(t, <-room, context.Canceled)

		go func() { room <- c.WaitRoom(context.Background()) }()
		synctest.Wait()
		require.Empty(t, room)
		close(c.writeDone)
		require.ErrorIs(t, <-room, ErrClosed)
	})
}
