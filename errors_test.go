package parley

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSentinelErrors(t *testing.T) {
	sentinels := []struct {
		err  error
		text string
	}{
		{ErrInvalidArgument, "parley: invalid argument"},
		{ErrAlreadyInRoom, "parley: already in room"},
		{ErrAlreadyLoggedIn, "parley: already logged in"},
		{ErrNotLoggedIn, "parley: not logged in"},
		{ErrEngineClosed, "parley: engine closed"},
		{ErrRoomClosed, "parley: room closed"},
	}
	for _, s := range sentinels {
		t.Run(s.text, func(t *testing.T) {
			require.EqualError(t, s.err, s.text)

			wrapped := fmt.Errorf("join room r1: %w", s.err)
			require.ErrorIs(t, wrapped, s.err)
			require.EqualError(t, wrapped, "join room r1: "+s.text)

			twice := fmt.Errorf("outer: %w", wrapped)
			require.ErrorIs(t, twice, s.err)

			joined := errors.Join(errors.New("other"), wrapped)
			require.ErrorIs(t, joined, s.err)

			// Distinct sentinels never match each other.
			for _, o := range sentinels {
				if o.err != s.err {
					require.NotErrorIs(t, wrapped, o.err)
				}
			}
		})
	}
}

func TestInvalidArg(t *testing.T) {
	err := invalidArg("room ID %q", "a b")
	require.ErrorIs(t, err, ErrInvalidArgument)
	require.EqualError(t, err, `parley: invalid argument: room ID "a b"`)

	err = invalidArg("extra info is %d bytes, over %d", 201, 200)
	require.ErrorIs(t, err, ErrInvalidArgument)
	require.EqualError(t, err, "parley: invalid argument: extra info is 201 bytes, over 200")

	err = invalidArg("empty AppID")
	require.ErrorIs(t, err, ErrInvalidArgument)
	require.EqualError(t, err, "parley: invalid argument: empty AppID")
	require.NotErrorIs(t, err, ErrAlreadyInRoom)
}
