package signal

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// TestIsRefused: a dial answered 401, 403 or 404 is refused for good;
// another status, or no server, is worth retrying.
func TestIsRefused(t *testing.T) {
	ws := newWelcomeServer(t)
	t.Cleanup(ws.Close)
	url := "ws" + strings.TrimPrefix(ws.URL, "http")
	for _, tt := range []struct {
		status  int
		refused bool
	}{
		{http.StatusUnauthorized, true},
		{http.StatusForbidden, true},
		{http.StatusNotFound, true},
		{http.StatusServiceUnavailable, false},
		{http.StatusTooManyRequests, false},
	} {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			ws.mu.Lock()
			ws.refuse = tt.status
			ws.mu.Unlock()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := Dial(ctx, ClientConfig{URL: url})
			require.Error(t, err)
			require.Equal(t, tt.refused, IsRefused(err), "%v", err)
		})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := Dial(ctx, ClientConfig{URL: "ws://127.0.0.1:1/rtc"})
	require.Error(t, err)
	require.False(t, IsRefused(err), "no server: %v", err)
	require.False(t, IsRefused(nil))
}

// TestMustMarshal: it encodes, and panics naming the message type on what
// protobuf refuses (a string field that is not UTF-8).
func TestMustMarshal(t *testing.T) {
	require.NotEmpty(t, MustMarshal(&pb.Member{UserId: "alice"}))
	require.PanicsWithValue(t, "parley: marshal parley.v1.Member: string field contains invalid UTF-8",
		func() { MustMarshal(&pb.Member{UserId: "\xff"}) })
}
