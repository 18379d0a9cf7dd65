package parley_test

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
	pb "github.com/parleyhq/parley/proto/parley/v1"
	"github.com/parleyhq/parley/server"
)

// maxFrame is the largest signaling frame the server reads (1 MiB).
const maxFrame = 1 << 20

// rawConn opens a signaling WebSocket to srv as a client would, without an
// Engine, and reads the server's Welcome. The connection is closed in
// t.Cleanup.
func rawConn(t *testing.T, srv *parleytest.Server) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: waitTimeout}
	ws, _, err := d.Dial(srv.URL, nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ws.Close() })
	f := readFrame(t, ws)
	require.NotNil(t, f.GetWelcome(), "first frame is Welcome, got %v", f)
	return ws
}

// readFrame reads one binary frame and decodes it as a ServerFrame.
func readFrame(t *testing.T, ws *websocket.Conn) *pb.ServerFrame {
	t.Helper()
	require.NoError(t, ws.SetReadDeadline(time.Now().Add(waitTimeout)))
	typ, b, err := ws.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, websocket.BinaryMessage, typ)
	var f pb.ServerFrame
	require.NoError(t, proto.Unmarshal(b, &f))
	return &f
}

// writeFrame sends f as one binary frame.
func writeFrame(t *testing.T, ws *websocket.Conn, f *pb.ClientFrame) {
	t.Helper()
	b, err := proto.Marshal(f)
	require.NoError(t, err)
	require.NoError(t, ws.SetWriteDeadline(time.Now().Add(waitTimeout)))
	require.NoError(t, ws.WriteMessage(websocket.BinaryMessage, b))
}

// requireClosedWith reads until the server closes the connection and
// requires the close code: the wait ends on the close, not on a timer.
func requireClosedWith(t *testing.T, ws *websocket.Conn, code int) {
	t.Helper()
	require.NoError(t, ws.SetReadDeadline(time.Now().Add(waitTimeout)))
	for {
		_, _, err := ws.ReadMessage()
		if err == nil {
			continue // an event frame queued before the close
		}
		var ce *websocket.CloseError
		require.ErrorAs(t, err, &ce, "want a close frame with code %d", code)
		require.Equal(t, code, ce.Code, "close code (reason %q)", ce.Text)
		return
	}
}

// TestBadFrames: a connection that breaks the signaling protocol is closed
// with the matching WebSocket close code, and only that connection: the
// members of a room on the same server stay joined, and a newcomer joins
// and is seen by them.
func TestBadFrames(t *testing.T) {
	noBody, err := proto.Marshal(&pb.ClientFrame{RequestId: 7})
	require.NoError(t, err)
	cases := []struct {
		name  string
		typ   int
		frame []byte
		code  int
	}{
		{"frame over 1 MiB", websocket.BinaryMessage, bytes.Repeat([]byte{0x08}, maxFrame+1), websocket.CloseMessageTooBig},
		{"text frame", websocket.TextMessage, []byte("hello"), websocket.CloseUnsupportedData},
		{"not a protobuf", websocket.BinaryMessage, []byte{0xff, 0xff, 0xff, 0xff}, websocket.CloseInvalidFramePayloadData},
		{"no body", websocket.BinaryMessage, noBody, websocket.CloseInvalidFramePayloadData},
		{"empty frame", websocket.BinaryMessage, nil, websocket.CloseInvalidFramePayloadData},
	}

	srv := parleytest.NewServer(t)
	alice := joined(t, srv, "room1", "alice", "")
	bob := joined(t, srv, "room1", "bob", "")
	requireJoined(t, bob.rec, alice.info)
	requireJoined(t, alice.rec, bob.info)

	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ws := rawConn(t, srv)
			require.NoError(t, ws.SetWriteDeadline(time.Now().Add(waitTimeout)))
			// The server may close before it has read all of a frame over
			// the limit; the write's error is then expected.
			werr := ws.WriteMessage(c.typ, c.frame)
			if len(c.frame) <= maxFrame {
				require.NoError(t, werr)
			}
			requireClosedWith(t, ws, c.code)

			// The room on the same server is untouched.
			newcomer := joined(t, srv, "room1", fmt.Sprintf("newcomer%d", i), "")
			requireJoined(t, newcomer.rec, alice.info)
			requireJoined(t, newcomer.rec, bob.info)
			requireJoined(t, alice.rec, newcomer.info)
			requireJoined(t, bob.rec, newcomer.info)
			require.NoError(t, newcomer.room.LeaveRoom())
			requireLeft(t, newcomer.rec)
			requireLeave(t, alice.rec, newcomer.info.UserID, parley.UserOfflineReasonQuit)
			requireLeave(t, bob.rec, newcomer.info.UserID, parley.UserOfflineReasonQuit)
		})
	}
}

// TestAuthTimeout: a connection that has not joined a room within
// AuthTimeout is closed with 1008, a refused join included; a joined
// Engine's connection is not. AuthTimeout is short, but long enough for an
// Engine to connect and join under -race on a loaded machine.
func TestAuthTimeout(t *testing.T) {
	const authTimeout = time.Second
	srv := parleytest.NewServer(t, parleytest.WithConfig(func(c *server.Config) { c.AuthTimeout = authTimeout }))
	alice := joined(t, srv, "room1", "alice", "")

	t.Run("idle", func(t *testing.T) {
		start := time.Now()
		ws := rawConn(t, srv)
		requireClosedWith(t, ws, websocket.ClosePolicyViolation)
		require.GreaterOrEqual(t, time.Since(start), authTimeout)
	})
	t.Run("refused join", func(t *testing.T) {
		start := time.Now()
		ws := rawConn(t, srv)
		writeFrame(t, ws, &pb.ClientFrame{RequestId: 1, Body: &pb.ClientFrame_Join{Join: &pb.JoinRequest{
			RoomId: "room1", UserId: "bob", Token: "not a token",
		}}})
		f := readFrame(t, ws)
		require.Equal(t, uint64(1), f.RequestId)
		require.Equal(t, int32(parley.ErrorCodeInvalidToken), f.GetJoin().GetCode())
		requireClosedWith(t, ws, websocket.ClosePolicyViolation)
		require.GreaterOrEqual(t, time.Since(start), authTimeout)
	})

	// alice's connection, older than AuthTimeout by now, is still there.
	requireNothingBefore(t, srv, alice, "bob")
}
