package server

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/pion/datachannel"
	"github.com/pion/webrtc/v4"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/parleyhq/parley/internal/transport"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// peer is a raw client of a test server: a signaling connection whose
// frames a goroutine reads into a channel, and, once in a room, a real
// pion PeerConnection on loopback that carries all its rooms. Frames are
// sent unsequenced (seq 0), so the server never waits for them in order.
type peer struct {
	t      *testing.T
	s      *Server
	ws     *websocket.Conn
	frames chan *pb.ServerFrame
	done   chan struct{}
	err    error      // why the connection ended: set before done is closed
	wmu    sync.Mutex // one writer at a time on ws
	reqID  atomic.Uint64
	api    *webrtc.API

	// Used by the test's goroutine only.
	pc      *webrtc.PeerConnection // the transport of its rooms; nil before the first join
	chans   transport.Channels
	handles map[string]uint32 // room handles: the first room joined is 1 (packet's default)
}

// newPeer dials s and starts reading its frames; all closed in t.Cleanup.
func newPeer(t *testing.T, s *Server) *peer {
	t.Helper()
	p := &peer{
		t: t, s: s, ws: dial(t, s),
		frames: make(chan *pb.ServerFrame, 1<<14),
		done:   make(chan struct{}),
		api:    transport.NewAPI(transport.Options{LoopbackOnly: true}),
	}
	go func() {
		defer close(p.done)
		defer close(p.frames)
		for {
			_, b, err := p.ws.ReadMessage()
			if err != nil {
				p.err = err
				return
			}
			var f pb.ServerFrame
			if proto.Unmarshal(b, &f) != nil {
				return
			}
			if f.GetAckOnly() != nil {
				continue
			}
			select {
			case p.frames <- &f:
			default:
				t.Error("peer: frame buffer full")
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = p.ws.Close()
		<-p.done
	})
	return p
}

// send sends f, with a request ID of its own if it has none.
func (p *peer) send(f *pb.ClientFrame) {
	p.t.Helper()
	if f.RequestId == 0 {
		f.RequestId = p.reqID.Add(1)
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	b, err := proto.Marshal(f)
	require.NoError(p.t, err)
	require.NoError(p.t, p.ws.SetWriteDeadline(time.Now().Add(waitTimeout)))
	require.NoError(p.t, p.ws.WriteMessage(websocket.BinaryMessage, b))
}

// next returns the next frame for which match is true; the frames before
// it are dropped.
func (p *peer) next(match func(*pb.ServerFrame) bool) *pb.ServerFrame {
	p.t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case f, ok := <-p.frames:
			require.True(p.t, ok, "connection closed while waiting for a frame")
			if match(f) {
				return f
			}
		case <-deadline:
			p.t.Fatal("no matching frame in time")
		}
	}
}

// login logs the peer in as user.
func (p *peer) login(user string) {
	p.t.Helper()
	id := p.reqID.Add(1)
	p.send(&pb.ClientFrame{RequestId: id, Body: &pb.ClientFrame_Login{Login: &pb.LoginRequest{
		AppId: testAppID, Token: validToken(p.t, "", user), UserId: user,
	}}})
	f := p.next(func(f *pb.ServerFrame) bool { return f.RequestId == id && f.GetLogin() != nil })
	require.Equal(p.t, int32(loginOK), f.GetLogin().Code, f.GetLogin().Reason)
}

// join joins room as user and returns the peer's PeerConnection and its
// open channels once the join is complete: the last RoomJoined page has
// come. The first join sets the transport up after its JoinRequest, as
// the SDK does; later joins use it. A rejoin (on this connection) first
// replaces the transport, as the SDK does after its transport failed.
func (p *peer) join(room, user string, rejoin bool) (*webrtc.PeerConnection, transport.Channels) {
	p.t.Helper()
	if p.handles == nil {
		p.handles = make(map[string]uint32)
	}
	h, ok := p.handles[room]
	if !ok {
		h = uint32(len(p.handles) + 1)
		p.handles[room] = h
	}
	var opened <-chan transport.Channels
	var tid uint64
	if rejoin {
		opened, tid = p.offerTransport()
	}
	id := p.reqID.Add(1)
	p.send(&pb.ClientFrame{RequestId: id, Body: &pb.ClientFrame_Join{Join: &pb.JoinRequest{
		AppId: testAppID, RoomId: room, UserId: user, Token: validToken(p.t, room, user),
		Rejoin: rejoin, Room: h, PacketVersion: packetVersionRooms,
	}}})
	if p.pc == nil {
		opened, tid = p.offerTransport()
	}
	// Both answers, in the order they come (next drops what it skips).
	var jr *pb.JoinResponse
	var tr *pb.TransportResponse
	for jr == nil || (opened != nil && tr == nil) {
		f := p.next(func(f *pb.ServerFrame) bool {
			return (f.RequestId == id && f.GetJoin() != nil) || (f.RequestId == tid && f.GetTransport() != nil)
		})
		if f.GetJoin() != nil {
			jr = f.GetJoin()
		} else {
			tr = f.GetTransport()
		}
	}
	require.Zero(p.t, jr.Code, jr.Reason)
	if opened != nil {
		require.Zero(p.t, tr.Code, tr.Reason)
		require.NoError(p.t, p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: tr.SdpAnswer}))
		select {
		case p.chans = <-opened:
		case <-time.After(waitTimeout):
			p.t.Fatal("data channels did not open")
		}
	}
	p.next(func(f *pb.ServerFrame) bool {
		rj := f.GetRoomJoined()
		return rj != nil && rj.RoomId == room && !rj.More
	})
	return p.pc, p.chans
}

// offerTransport makes the peer a new PeerConnection (the old one, if
// any, stays open until t's cleanup, as a dead one would) and sends its
// TransportRequest; the channels come on the returned channel once open.
func (p *peer) offerTransport() (<-chan transport.Channels, uint64) {
	p.t.Helper()
	pc, err := p.api.NewPeerConnection(webrtc.Configuration{})
	require.NoError(p.t, err)
	p.t.Cleanup(func() { _ = pc.Close() })
	dcs, err := transport.CreateChannels(pc)
	require.NoError(p.t, err)
	opened := make(chan transport.Channels, 1)
	transport.OnOpen(dcs, func(ch transport.Channels) { opened <- ch }, func(err error) { p.t.Error(err) })
	offer, err := pc.CreateOffer(nil)
	require.NoError(p.t, err)
	require.NoError(p.t, pc.SetLocalDescription(offer))
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	require.NoError(p.t, transport.WaitGathered(ctx, pc))
	p.pc = pc
	id := p.reqID.Add(1)
	p.send(&pb.ClientFrame{RequestId: id, Body: &pb.ClientFrame_Transport{Transport: &pb.TransportRequest{
		SdpOffer: pc.LocalDescription().SDP, PacketVersion: packetVersionRooms,
	}}})
	return opened, id
}

// eachPacket calls f with the packet in b, or with each entry of the
// batch in b; false if b does not decode.
func eachPacket(b []byte, f func(*pb.Packet)) bool {
	var p pb.Packet
	if proto.Unmarshal(b, &p) != nil {
		return false
	}
	if len(p.Batch) == 0 {
		f(&p)
		return true
	}
	for _, q := range p.Batch {
		f(q)
	}
	return true
}

// packets reads rw, a data channel of pc, into a channel of packets, until
// pc closes (at the latest in t.Cleanup).
func packets(t *testing.T, pc *webrtc.PeerConnection, rw datachannel.ReadWriteCloser) <-chan *pb.Packet {
	t.Helper()
	out := make(chan *pb.Packet, 1<<14)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = transport.ReadLoop(rw, func(b []byte) {
			ok := eachPacket(b, func(p *pb.Packet) {
				select {
				case out <- p:
				default:
					t.Error("packet buffer full")
				}
			})
			if !ok {
				t.Error("a packet that does not decode")
			}
		})
	}()
	t.Cleanup(func() {
		_ = pc.Close()
		<-done
	})
	return out
}

// nextPacket returns the next packet from in for which match is true.
func nextPacket(t *testing.T, in <-chan *pb.Packet, match func(*pb.Packet) bool) *pb.Packet {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case p := <-in:
			if match(p) {
				return p
			}
		case <-deadline:
			t.Fatal("no matching packet in time")
			return nil
		}
	}
}

// packet encodes a data channel packet, of room handle 1 (the peer's
// first room) unless it names another.
func packet(t *testing.T, p *pb.Packet) []byte {
	t.Helper()
	if p.Room == 0 && len(p.Batch) == 0 {
		p.Room = 1
	}
	b, err := proto.Marshal(p)
	require.NoError(t, err)
	return b
}
