package server

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	pb "github.com/parleyhq/parley/proto/parley/v1"
	"github.com/parleyhq/parley/token"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitTimeout only guards against a hang; every wait ends on a frame.
const waitTimeout = 15 * time.Second

const (
	testAppID  = "0123456789abcdef01234567"
	testAppKey = "test-app-key"
)

// startServer runs a loopback server with one app, shut down in t.Cleanup.
func startServer(t *testing.T) *Server {
	t.Helper()
	return startWith(t, Config{})
}

// startWith runs a loopback server of cfg with the test app, shut down in
// t.Cleanup.
func startWith(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Listen = "127.0.0.1:0"
	cfg.Apps = map[string]string{testAppID: testAppKey}
	cfg.LoopbackOnly = true
	s, err := New(cfg)
	require.NoError(t, err)
	require.NoError(t, s.Start())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		require.NoError(t, s.Shutdown(ctx))
	})
	return s
}

// dial opens a raw signaling connection and reads the Welcome.
func dial(t *testing.T, s *Server) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: waitTimeout}
	ws, _, err := d.Dial(s.URL(), nil)
	require.NoError(t, err)
	t.Cleanup(func() { _ = ws.Close() })
	w := read(t, ws).GetWelcome()
	require.NotNil(t, w, "first frame is Welcome")
	require.NotEmpty(t, w.SessionId)
	return ws
}

func read(t *testing.T, ws *websocket.Conn) *pb.ServerFrame {
	t.Helper()
	require.NoError(t, ws.SetReadDeadline(time.Now().Add(waitTimeout)))
	typ, b, err := ws.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, websocket.BinaryMessage, typ)
	var f pb.ServerFrame
	require.NoError(t, proto.Unmarshal(b, &f))
	return &f
}

func write(t *testing.T, ws *websocket.Conn, f *pb.ClientFrame) {
	t.Helper()
	b, err := proto.Marshal(f)
	require.NoError(t, err)
	require.NoError(t, ws.SetWriteDeadline(time.Now().Add(waitTimeout)))
	require.NoError(t, ws.WriteMessage(websocket.BinaryMessage, b))
}

// validToken is a good token for roomID and userID, whatever they are: a
// refused join is then refused for its IDs, not its token.
func validToken(t *testing.T, roomID, userID string) string {
	t.Helper()
	tok := token.New(testAppID, testAppKey, roomID, userID)
	expire := time.Now().Add(time.Hour)
	tok.ExpireTime(expire)
	tok.AddPrivilege(token.PrivPublishStream, expire)
	tok.AddPrivilege(token.PrivSubscribeStream, expire)
	raw, err := tok.Serialize()
	require.NoError(t, err)
	return raw
}

// joins is the parley_joins_total counter for result.
func joins(t *testing.T, s *Server, result string) float64 {
	t.Helper()
	var m dto.Metric
	require.NoError(t, s.metrics.joins.WithLabelValues(result).Write(&m))
	return m.GetCounter().GetValue()
}

// TestJoinRefused: the server applies the ID, extra-info and token rules
// itself, whatever the client checked: a join that breaks one is refused
// with its ByteRTC code, counted, and the connection stays usable.
func TestJoinRefused(t *testing.T) {
	long := strings.Repeat("x", 129)
	cases := []struct {
		name           string
		room, user     string
		extra, token   string // token "" means a valid one for room and user
		v2             bool   // a version 2 join: an SDP offer, no room handle
		code           int32
		result, reason string // metric label, a word of the reason
	}{
		{"empty user ID", "room1", "", "", "", false, codeJoinRoom, joinInvalidID, "user ID"},
		{"user ID with a space", "room1", "a b", "", "", false, codeJoinRoom, joinInvalidID, "user ID"},
		{"user ID *", "room1", "*", "", "", false, codeJoinRoom, joinInvalidID, "user ID"},
		{"user ID of 129 bytes", "room1", long, "", "", false, codeJoinRoom, joinInvalidID, "user ID"},
		{"extra info of 201 bytes", "room1", "alice", strings.Repeat("i", 201), "", false, codeJoinRoom, joinInvalidID, "extra info"},
		{"empty room ID", "", "alice", "", "", false, codeRoomIDIllegal, joinInvalidID, "room ID"},
		{"room ID with a space", "room 1", "alice", "", "", false, codeRoomIDIllegal, joinInvalidID, "room ID"},
		{"room ID *", "*", "alice", "", "", false, codeRoomIDIllegal, joinInvalidID, "room ID"},
		{"room ID of 129 bytes", long, "alice", "", "", false, codeRoomIDIllegal, joinInvalidID, "room ID"},
		{"room and user ID illegal", "room 1", "a b", "", "", false, codeRoomIDIllegal, joinInvalidID, "room ID"},
		{"garbage token", "room1", "alice", "", "garbage", false, codeInvalidToken, joinInvalidToken, "token"},
		{"version 2: a PeerConnection per room", "room1", "alice", "", "", true, codeJoinRoom, joinFailed, "packet version 2 is not served"},
	}
	s := startServer(t)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := joins(t, s, c.result)
			ws := dial(t, s)
			tok := c.token
			if tok == "" {
				tok = validToken(t, c.room, c.user)
			}
			reqID := uint64(100 + i)
			j := &pb.JoinRequest{AppId: testAppID, RoomId: c.room, UserId: c.user, ExtraInfo: c.extra, Token: tok, Room: 1, PacketVersion: packetVersionRooms}
			if c.v2 {
				j.Room, j.PacketVersion, j.SdpOffer = 0, 2, "v=0"
			}
			write(t, ws, &pb.ClientFrame{RequestId: reqID, Body: &pb.ClientFrame_Join{Join: j}})
			f := read(t, ws)
			require.Equal(t, reqID, f.RequestId)
			jr := f.GetJoin()
			require.NotNil(t, jr, "want a JoinResponse, got %v", f)
			require.Equal(t, c.code, jr.Code, "reason %q", jr.Reason)
			require.Contains(t, jr.Reason, c.reason)
			require.Empty(t, jr.SdpAnswer)
			require.Equal(t, before+1, joins(t, s, c.result))

			// The connection is still served, and holds no member.
			write(t, ws, &pb.ClientFrame{RequestId: reqID + 1000, Body: &pb.ClientFrame_Leave{Leave: &pb.LeaveRequest{RoomId: c.room}}})
			f = read(t, ws)
			require.Equal(t, reqID+1000, f.RequestId)
			require.NotNil(t, f.GetLeave())
			s.mu.Lock()
			rooms := len(s.rooms)
			s.mu.Unlock()
			require.Zero(t, rooms, "a refused join creates no room")
		})
	}
}

// TestQuotaPerUser: a user's sessions hold one quota between them, and
// the server forgets it when the last lets go: here a login, a second
// login of the same user that logs the first out, and a logout.
func TestQuotaPerUser(t *testing.T) {
	s := startServer(t)
	key := quotaKey{testAppID, "alice"}
	held := func() (*userQuota, int) {
		s.qmu.Lock()
		defer s.qmu.Unlock()
		if q := s.quotas[key]; q != nil {
			return q, q.refs
		}
		return nil, 0
	}
	login := func(ws *websocket.Conn) {
		t.Helper()
		write(t, ws, &pb.ClientFrame{RequestId: 1, Body: &pb.ClientFrame_Login{Login: &pb.LoginRequest{
			AppId: testAppID, Token: validToken(t, "", "alice"), UserId: "alice",
		}}})
		require.Equal(t, int32(loginOK), read(t, ws).GetLogin().GetCode())
	}

	first, second := dial(t, s), dial(t, s)
	login(first)
	q, refs := held()
	require.NotNil(t, q)
	require.Equal(t, 1, refs)

	login(second) // shares the quota, then the first is logged out
	require.NotNil(t, read(t, first).GetLoggedOut())
	q2, refs := held()
	require.Same(t, q, q2, "one quota for the user's sessions")
	require.Equal(t, 1, refs, "the logged-out session let go")

	write(t, second, &pb.ClientFrame{RequestId: 2, Body: &pb.ClientFrame_Logout{Logout: &pb.LogoutRequest{}}})
	require.NotNil(t, read(t, second).GetLogout())
	q, refs = held()
	require.Nil(t, q, "forgotten once no session holds it")
	require.Zero(t, refs)
}

// TestKill: Kill is a crash. Every connection is cut without a close
// frame, nobody hears of anybody leaving or of a message that will never
// be acknowledged, the sessions (connected or detached), rooms and logins
// are gone, every PeerConnection is closed, and the ports are free again
// when it returns.
func TestKill(t *testing.T) {
	s := startServer(t)
	alice, bob := newPeer(t, s), newPeer(t, s)
	alice.join("room1", "alice", false)
	bob.join("room1", "bob", false)
	alice.next(func(f *pb.ServerFrame) bool { return f.GetUserJoined().GetMember().GetUserId() == "bob" })
	carol := newPeer(t, s)
	carol.login("carol")
	// An outside-room message carol never acknowledges: its sender would
	// get NoReceiver if carol's login ended on a live server.
	alice.login("alice")
	alice.send(&pb.ClientFrame{Body: &pb.ClientFrame_Send{Send: &pb.OutsideMessage{To: "carol", MsgId: 1, Payload: []byte("hi"), Reliable: true}}})
	carol.next(func(f *pb.ServerFrame) bool { return f.GetMessage() != nil })
	// dave's connection is gone: his session waits for a resume.
	dave := newPeer(t, s)
	dave.login("dave")
	require.NoError(t, dave.ws.UnderlyingConn().Close())
	require.Eventually(t, func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, ss := range s.sessions {
			ss.mu.Lock()
			detached := ss.login == "dave" && ss.link == nil
			ss.mu.Unlock()
			if detached {
				return true
			}
		}
		return false
	}, waitTimeout, time.Millisecond, "dave's session detached")
	tcp, udp := s.Addr().String(), s.UDPAddr().String()

	require.NoError(t, s.Kill())
	for name, p := range map[string]*peer{"alice": alice, "bob": bob, "carol": carol} {
		select {
		case <-p.done:
		case <-time.After(waitTimeout):
			t.Fatalf("%s's connection still open", name)
		}
		for f := range p.frames {
			switch {
			case f.GetGoAway() != nil, f.GetUserLeft() != nil, f.GetPresence() != nil,
				f.GetLoggedOut() != nil, f.GetResult() != nil, f.GetRoomRemoved() != nil:
				t.Errorf("%s was told %v", name, f)
			}
		}
		require.True(t, websocket.IsCloseError(p.err, websocket.CloseAbnormalClosure), "%s: no close frame: %v", name, p.err)
	}

	s.mu.Lock()
	require.Empty(t, s.sessions)
	require.Empty(t, s.rooms)
	require.Empty(t, s.logins)
	s.mu.Unlock()
	for name, g := range map[string]prometheus.Gauge{"sessions": s.metrics.sessions, "rooms": s.metrics.rooms,
		"members": s.metrics.members, "transports": s.metrics.transports} {
		var m dto.Metric
		require.NoError(t, g.Write(&m))
		require.Zero(t, m.GetGauge().GetValue(), name)
	}
	ln, err := net.Listen("tcp", tcp)
	require.NoError(t, err, "the TCP port is free")
	require.NoError(t, ln.Close())
	uaddr, err := net.ResolveUDPAddr("udp4", udp)
	require.NoError(t, err)
	uc, err := net.ListenUDP("udp4", uaddr)
	require.NoError(t, err, "the UDP port is free")
	require.NoError(t, uc.Close())

	require.NoError(t, s.Kill(), "a second Kill does nothing")
	require.NoError(t, s.Shutdown(context.Background()), "nor does Shutdown after it")
}
