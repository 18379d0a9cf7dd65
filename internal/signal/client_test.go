package signal

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// welcomeServer answers every connection with a Welcome and then only
// reads; it can refuse new connections.
type welcomeServer struct {
	*httptest.Server
	mu      sync.Mutex
	refuse  int // HTTP status to refuse with; 0 = accept
	conns   []*websocket.Conn
	session int
}

func newWelcomeServer(t *testing.T) *welcomeServer {
	ws := &welcomeServer{}
	up := websocket.Upgrader{}
	ws.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws.mu.Lock()
		refuse := ws.refuse
		ws.session++
		id := ws.session
		ws.mu.Unlock()
		if refuse != 0 {
			http.Error(w, "no", refuse)
			return
		}
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		ws.mu.Lock()
		ws.conns = append(ws.conns, c)
		ws.mu.Unlock()
		b, _ := proto.Marshal(&pb.ServerFrame{Body: &pb.ServerFrame_Welcome{Welcome: &pb.Welcome{SessionId: strings.Repeat("s", id)}}})
		_ = c.WriteMessage(websocket.BinaryMessage, b)
		for {
			_, m, err := c.ReadMessage()
			if err != nil {
				return
			}
			var f pb.ClientFrame
			if proto.Unmarshal(m, &f) == nil && f.GetResume() != nil {
				// A server that lost every session.
				b, _ := proto.Marshal(&pb.ServerFrame{RequestId: f.RequestId, Body: &pb.ServerFrame_Resume{Resume: &pb.ResumeResponse{Reason: "unknown"}}})
				_ = c.WriteMessage(websocket.BinaryMessage, b)
			}
		}
	}))
	t.Cleanup(ws.Close)
	return ws
}

// dropAll cuts every connection and refuses new ones with status.
func (ws *welcomeServer) dropAll(status int) {
	ws.mu.Lock()
	ws.refuse = status
	conns := ws.conns
	ws.conns = nil
	ws.mu.Unlock()
	for _, c := range conns {
		_ = c.UnderlyingConn().Close()
	}
}

func (ws *welcomeServer) accept() {
	ws.mu.Lock()
	ws.refuse = 0
	ws.mu.Unlock()
}

func TestClientStates(t *testing.T) {
	srv := newWelcomeServer(t)
	states := make(chan ClientState, 16)
	lost := make(chan struct{}, 4)
	c, err := Dial(context.Background(), ClientConfig{
		URL:           "ws" + strings.TrimPrefix(srv.URL, "http"),
		OnEvent:       func(*pb.ServerFrame) {},
		OnState:       func(s ClientState) { states <- s },
		OnSessionLost: func() { lost <- struct{}{} },
		LostAfter:     200 * time.Millisecond,
		BackoffMin:    10 * time.Millisecond,
		BackoffMax:    50 * time.Millisecond,
	})
	require.NoError(t, err)
	defer func() { c.Close(); <-c.Done() }()
	next := func() ClientState {
		select {
		case s := <-states:
			return s
		case <-time.After(10 * time.Second):
			t.Fatal("no state change")
			return 0
		}
	}

	// Down and refusing with a retryable status: Reconnecting, then Lost
	// after LostAfter, still trying; back: Reconnected with a new session.
	srv.dropAll(http.StatusServiceUnavailable)
	require.Equal(t, StateReconnecting, next())
	require.Equal(t, StateLost, next())
	srv.accept()
	require.Equal(t, StateReconnected, next())
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the session the server had lost was not reported")
	}

	// Refused for good: Failed, no more tries.
	srv.dropAll(http.StatusForbidden)
	require.Equal(t, StateReconnecting, next())
	require.Equal(t, StateFailed, next())
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the client did not stop after Failed")
	}
}
