package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// startLimited starts a loopback server with cfg's limits.
func startLimited(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	cfg.Apps = map[string]string{"012345678901234567890123": "k"}
	s, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, s.Start())
	t.Cleanup(func() { require.NoError(t, s.Shutdown(context.Background())) })
	return s
}

// dialRaw opens a raw signaling connection and reads its Welcome.
func dialRaw(t *testing.T, s *Server, h http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	ws, resp, err := websocket.DefaultDialer.Dial(s.URL(), h)
	if err != nil {
		return nil, resp, err
	}
	t.Cleanup(func() { ws.Close() })
	require.NoError(t, ws.SetReadDeadline(time.Now().Add(10*time.Second)))
	_, _, err = ws.ReadMessage()
	require.NoError(t, err, "Welcome")
	return ws, resp, nil
}

func closes(s *Server, label string) float64 {
	return testutil.ToFloat64(s.metrics.closes.WithLabelValues(label))
}

func TestOriginPolicy(t *testing.T) {
	s := startLimited(t, Config{AllowedOrigins: []string{"https://app.example"}})
	_, _, err := dialRaw(t, s, nil) // a program: no Origin
	require.NoError(t, err)
	_, _, err = dialRaw(t, s, http.Header{"Origin": {"https://app.example"}})
	require.NoError(t, err)
	_, resp, err := dialRaw(t, s, http.Header{"Origin": {"https://evil.example"}})
	require.Error(t, err)
	require.Equal(t, http.StatusForbidden, resp.StatusCode)
	require.Equal(t, 1.0, closes(s, closeOrigin))
}

func TestConnectionCaps(t *testing.T) {
	t.Run("per address", func(t *testing.T) {
		s := startLimited(t, Config{MaxConnsPerAddress: 2})
		a, _, err := dialRaw(t, s, nil)
		require.NoError(t, err)
		_, _, err = dialRaw(t, s, nil)
		require.NoError(t, err)
		_, resp, err := dialRaw(t, s, nil)
		require.Error(t, err)
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		require.Equal(t, 1.0, closes(s, closePerAddress))
		// A place frees when a connection ends.
		require.NoError(t, a.Close())
		require.Eventually(t, func() bool {
			ws, _, err := websocket.DefaultDialer.Dial(s.URL(), nil)
			if err != nil {
				return false
			}
			ws.Close()
			return true
		}, 10*time.Second, 10*time.Millisecond)
	})
	t.Run("unauthenticated", func(t *testing.T) {
		s := startLimited(t, Config{MaxUnauthenticated: 1})
		_, _, err := dialRaw(t, s, nil)
		require.NoError(t, err)
		_, resp, err := dialRaw(t, s, nil)
		require.Error(t, err)
		require.Equal(t, http.StatusTooManyRequests, resp.StatusCode)
		require.Equal(t, 1.0, closes(s, closeUnauthCap))
	})
}

func TestFrameRateLimit(t *testing.T) {
	s := startLimited(t, Config{MaxFramesPerSecond: 10})
	calm, _, err := dialRaw(t, s, nil)
	require.NoError(t, err)
	flood, _, err := dialRaw(t, s, nil)
	require.NoError(t, err)
	leave, err := proto.Marshal(&pb.ClientFrame{RequestId: 1, Body: &pb.ClientFrame_Leave{Leave: &pb.LeaveRequest{RoomId: "r"}}})
	require.NoError(t, err)
	// 10/s with a burst of 20: the 21st frame in a burst breaks the limit.
	var closeErr error
	for i := 0; i < 1000 && closeErr == nil; i++ {
		if err := flood.WriteMessage(websocket.BinaryMessage, leave); err != nil {
			break
		}
	}
	for {
		if _, _, err := flood.ReadMessage(); err != nil {
			closeErr = err
			break
		}
	}
	var ce *websocket.CloseError
	require.ErrorAs(t, closeErr, &ce)
	require.Equal(t, websocket.ClosePolicyViolation, ce.Code)
	require.True(t, strings.Contains(ce.Text, "frames per second"), ce.Text)
	require.Equal(t, 1.0, closes(s, closeRateLimited))
	// The calm connection did not notice.
	require.NoError(t, calm.WriteMessage(websocket.BinaryMessage, leave))
	_, b, err := calm.ReadMessage()
	require.NoError(t, err)
	var f pb.ServerFrame
	require.NoError(t, proto.Unmarshal(b, &f))
	require.NotNil(t, f.GetLeave())
}
