package server

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRetentionWatch: a watched retention signals each way a message can
// go (the wait of a node leaving, settleMoving, rests on it), never a
// message coming, and nothing once unwatched; the signal never blocks the
// retention.
func TestRetentionWatch(t *testing.T) {
	r := &retention{user: "b"}
	c := make(chan struct{}, 1)
	signalled := func() bool {
		select {
		case <-c:
			return true
		default:
			return false
		}
	}
	for id := range int64(6) {
		_, ok, _ := r.add(retained{sender: "a", id: id + 1, cost: 1}, 0)
		require.True(t, ok)
	}
	r.watch(c)
	_, ok, _ := r.add(retained{sender: "a", id: 7, cost: 1}, 0)
	require.True(t, ok)
	assert.False(t, signalled(), "a message coming is no signal")

	r.settle("nobody", 10)
	assert.False(t, signalled(), "an ack that settles nothing is no signal")
	r.settle("a", 2)
	assert.True(t, signalled(), "an ack")
	r.settleOne("a", 3)
	assert.True(t, signalled(), "a message that did not go")
	_, ok = r.take("a", nil, 4)
	require.True(t, ok)
	assert.True(t, signalled(), "a message taken back")

	r.settle("a", 5)
	r.settleOne("a", 6) // a second signal while one is pending does not block
	assert.True(t, signalled())
	assert.False(t, signalled(), "one pending signal, however many went")

	r.unwatch()
	r.settleOne("a", 7)
	assert.False(t, signalled(), "unwatched")
	r.watch(c)
	_, ok, _ = r.add(retained{sender: "a", id: 8, cost: 1}, 0)
	require.True(t, ok)
	r.drain()
	assert.True(t, signalled(), "the receiver gone")
}
