package acks

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestBookSettlesPrefixes(t *testing.T) {
	var b Book
	for _, id := range []int64{1, 3, 4, 9} {
		b.Expect("a", id)
	}
	b.Expect("b", 2)
	require.Equal(t, []int64{1, 3}, b.Settle("a", 3))
	require.Empty(t, b.Settle("a", 3))
	require.Empty(t, b.Settle("nobody", 100))
	b.Expect("a", 10)
	b.Remove("a", 10)
	b.Remove("a", 99) // not there: nothing happens
	require.Equal(t, []int64{4, 9}, b.Settle("a", 100))
	require.Equal(t, map[string][]int64{"b": {2}}, b.Drain())
	require.Empty(t, b.Drain())
}

func TestBatcherSendsOneCumulativeAckPerPeer(t *testing.T) {
	got := make(chan map[string]int64, 4)
	b := &Batcher{Delay: time.Millisecond, Flush: func(m map[string]int64) { got <- m }}
	for _, id := range []int64{1, 5, 3} {
		b.Ack("a", id)
	}
	b.Ack("b", 7)
	select {
	case m := <-got:
		require.Equal(t, map[string]int64{"a": 5, "b": 7}, m)
	case <-time.After(5 * time.Second):
		t.Fatal("no flush")
	}
	b.Ack("a", 6)
	select {
	case m := <-got:
		require.Equal(t, map[string]int64{"a": 6}, m)
	case <-time.After(5 * time.Second):
		t.Fatal("no second flush")
	}
}
