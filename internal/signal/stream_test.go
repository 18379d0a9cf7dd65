package signal

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestStreamReplaysWhatWasNotAcknowledged(t *testing.T) {
	s := NewStream(1 << 20)
	var wire [][]byte
	write := func(b []byte) error { wire = append(wire, b); return nil }
	enc := func(tag byte) func(seq, acked uint64) []byte {
		return func(seq, acked uint64) []byte { return []byte{tag, byte(seq), byte(acked)} }
	}
	require.NoError(t, s.Send(enc('a'))) // detached: kept only
	require.NoError(t, s.Attach(0, write, write))
	require.Equal(t, [][]byte{{'a', 1, 0}}, wire)
	require.NoError(t, s.Send(enc('b')))
	require.NoError(t, s.Send(enc('c')))
	require.Len(t, wire, 3)

	// The peer acknowledges 2; the connection drops; on resume it says it
	// has 2: only 3 is replayed.
	ok, err := s.Receive(1, 2)
	require.NoError(t, err)
	require.True(t, ok)
	s.Detach()
	require.NoError(t, s.Send(enc('d')))
	wire = nil
	require.NoError(t, s.Attach(2, write, write))
	require.Equal(t, [][]byte{{'c', 3, 0}, {'d', 4, 1}}, wire)
}

func TestStreamDropsDuplicatesAndRefusesGaps(t *testing.T) {
	s := NewStream(1 << 20)
	for _, tc := range []struct {
		seq  uint64
		ok   bool
		fail bool
	}{{1, true, false}, {1, false, false}, {2, true, false}, {0, true, false}, {2, false, false}, {4, false, true}} {
		ok, err := s.Receive(tc.seq, 0)
		require.Equal(t, tc.ok, ok, "seq %d", tc.seq)
		require.Equal(t, tc.fail, err != nil, "seq %d", tc.seq)
	}
	require.Equal(t, uint64(2), s.Received())
	require.Equal(t, uint64(2), s.Unacknowledged())
}

func TestStreamReplayBound(t *testing.T) {
	s := NewStream(10)
	big := func(seq, acked uint64) []byte { return make([]byte, 6) }
	require.NoError(t, s.Send(big))
	require.ErrorIs(t, s.Send(big), ErrReplayFull)
	_, _ = s.Receive(0, 1) // acknowledged: room again
	require.NoError(t, s.Send(big))
}
