package ids

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		id string
		ok bool
	}{
		{"a", true},
		{"room_1@x-y.z", true},
		{strings.Repeat("a", 128), true},
		{strings.Repeat("a", 129), false},
		{"", false},
		{"has space", false},
		{"slash/", false},
		{"é", false},
		{"nul\x00", false},
		{"*", false},
	} {
		err := Check("room ID", tc.id)
		if tc.ok {
			require.NoError(t, err, tc.id)
		} else {
			require.Error(t, err, tc.id)
		}
	}
}

func TestCheckExtraInfo(t *testing.T) {
	require.NoError(t, CheckExtraInfo(strings.Repeat("x", 200)))
	require.Error(t, CheckExtraInfo(strings.Repeat("x", 201)))
}
