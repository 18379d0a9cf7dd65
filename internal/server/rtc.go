package server

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"

	"github.com/parleyhq/parley/internal/transport"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// A session has one PeerConnection, its rtc, which carries every room of
// the session: a bot in 1,000 rooms costs the server one PeerConnection,
// three data channels and three read loops, not 1,000 of each. Each packet
// names its room by the handle the client chose in its JoinRequest; the
// rtc's readers hand each packet to the session's member of that room,
// and the writers keep a queue per room (transport.Writer), so one room's
// backlog does not hold up another's packets.
//
// The client sets the rtc up with a TransportRequest once a join or login
// has been accepted on the session, and replaces it the same way after it
// failed. Members wait for it to open (activate, or reopen after a
// rejoin); members on a failed or replaced rtc are suspended for the grace
// period, as they were when each had its own PeerConnection.

// packetVersionRooms is the packet version with rooms on the session's
// PeerConnection (Packet.room) and batches: the only one served.
const packetVersionRooms = 3

// serverICEDisconnected is how long a session's ICE pair may receive
// nothing before it is called disconnected: the server sends no ICE
// keepalives of its own, and its clients send theirs every 2 s (browsers
// every 5 s or so). See NewAPI's options in Start.
const serverICEDisconnected = 10 * time.Second

// rtc is a session's PeerConnection and its data channels.
type rtc struct {
	sess *session
	pc   *webrtc.PeerConnection
	log  *zap.Logger

	// Set before open is closed, then read-only.
	chans transport.Channels
	ws    [transport.NumChannels]*transport.Writer // per-room queues, coalescing (see transport.Writer)

	open     chan struct{} // closed when the data channels are open
	counted  bool          // guarded by sess.mu; in the transports gauge
	ended    bool          // guarded by sess.mu; fail has begun: it is never installed
	failOnce sync.Once
}

// handleTransport sets up the session's PeerConnection from the client's
// offer, or replaces the one it has: the members on the old one are
// suspended until the client rejoins their rooms.
func (ss *session) handleTransport(reqID uint64, t *pb.TransportRequest) {
	answer := func(code int32, reason, sdp string) {
		ss.send(reqID, &pb.ServerFrame{Body: &pb.ServerFrame_Transport{Transport: &pb.TransportResponse{
			Code: code, Reason: reason, SdpAnswer: sdp, PacketVersion: packetVersionRooms,
		}}})
	}
	ss.mu.Lock()
	switch {
	case ss.ended:
		ss.mu.Unlock()
		return
	case !ss.authed:
		// A PeerConnection costs the server: only a client with a token
		// (or a login) gets one.
		ss.mu.Unlock()
		ss.log.Info("transport refused: no join or login accepted yet")
		answer(codeJoinRoom, "no join or login accepted on this session yet", "")
		return
	case t.PacketVersion < packetVersionRooms:
		ss.mu.Unlock()
		answer(codeJoinRoom, fmt.Sprintf("packet version %d is not served: 3 needed", t.PacketVersion), "")
		return
	}
	ss.mu.Unlock()
	x := &rtc{sess: ss, log: ss.log, open: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	sdp, err := x.connect(ctx, t.SdpOffer)
	if err != nil {
		x.fail(err.Error())
		ss.log.Info("transport refused", zap.Error(err))
		answer(codeJoinRoom, err.Error(), "")
		return
	}
	ss.mu.Lock()
	if ss.ended || x.ended {
		ss.mu.Unlock()
		x.fail("session ended")
		answer(codeJoinRoom, "the transport failed as it was set up", "")
		return
	}
	old := ss.rtc
	x.counted = true
	ss.srv.metrics.transports.Inc()
	ss.rtc = x
	ss.mu.Unlock()
	if old != nil {
		// Its members wait, suspended, for their rooms' rejoins, which
		// put them on x.
		old.fail("replaced by a new transport")
	}
	answer(0, "", sdp)
}

// connect builds the PeerConnection from offer and returns the complete
// answer. The channels open later, once the client has the answer.
func (x *rtc) connect(ctx context.Context, offer string) (string, error) {
	srv := x.sess.srv
	cert, err := srv.certs.current()
	if err != nil {
		return "", err
	}
	pc, err := srv.api.NewPeerConnection(webrtc.Configuration{Certificates: []webrtc.Certificate{cert}})
	if err != nil {
		return "", fmt.Errorf("new peer connection: %w", err)
	}
	x.pc = pc
	dcs, err := transport.CreateChannels(pc)
	if err != nil {
		return "", err
	}
	transport.OnOpen(dcs, func(ch transport.Channels) { x.opened(dcs, ch) }, func(err error) {
		x.log.Warn("data channels failed", zap.Error(err))
		x.fail(err.Error())
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateClosed {
			x.fail("PeerConnection " + st.String())
		}
	})
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return "", fmt.Errorf("bad SDP offer: %w", err)
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return "", fmt.Errorf("create answer: %w", err)
	}
	if err := pc.SetLocalDescription(answer); err != nil {
		return "", fmt.Errorf("set local description: %w", err)
	}
	if err := transport.WaitGathered(ctx, pc); err != nil {
		return "", err
	}
	return pc.LocalDescription().SDP, nil
}

// opened runs when the three data channels are open: the rtc starts
// reading, and the session's members waiting for it go on it.
func (x *rtc) opened(dcs [transport.NumChannels]*webrtc.DataChannel, chans transport.Channels) {
	x.chans = chans
	for i := range x.ws {
		// The relay never waits for SCTP: deliver and deliverReliable
		// bound each member's queue.
		x.ws[i] = transport.NewWriter(dcs[i], chans[i], false)
	}
	close(x.open)
	x.readChannels()
	ss := x.sess
	ss.mu.Lock()
	if ss.rtc != x {
		ss.mu.Unlock()
		return // replaced (or failed) before it opened
	}
	waiting := ss.waiting
	ss.waiting = nil
	ss.mu.Unlock()
	x.log.Debug("transport open", zap.Int("waiting", len(waiting)))
	for _, m := range waiting {
		m.attach(x)
	}
}

// isOpen reports whether x's channels are open.
func (x *rtc) isOpen() bool {
	select {
	case <-x.open:
		return true
	default:
		return false
	}
}

// readChannels starts a read loop on each channel.
func (x *rtc) readChannels() {
	srv := x.sess.srv
	srv.wg.Add(len(x.chans))
	for i, ch := range x.chans {
		go func() {
			defer srv.wg.Done()
			err := transport.ReadLoopRoom(ch, readHeadroom, readTailroom, func(buf []byte, off, end int) {
				x.onPacket(i, buf, off, end)
			})
			if err != nil {
				x.log.Debug("data channel read ended", zap.Int("channel", i), zap.Error(err))
			}
		}()
	}
}

// fail ends x: its PeerConnection is closed, and the members on it are
// suspended (kept for the grace period, until the client rejoins their
// rooms on a new transport). It runs once.
func (x *rtc) fail(why string) {
	x.failOnce.Do(func() {
		ss := x.sess
		ss.mu.Lock()
		x.ended = true
		if ss.rtc == x {
			ss.rtc = nil
		}
		if x.counted {
			ss.srv.metrics.transports.Dec()
		}
		on := make([]*member, 0, len(ss.members))
		for _, m := range ss.members {
			on = append(on, m)
		}
		ss.mu.Unlock()
		for _, w := range x.ws {
			if w != nil {
				w.Close()
			}
		}
		if x.pc != nil {
			if err := x.pc.Close(); err != nil {
				x.log.Debug("close peer connection", zap.Error(err))
			}
		}
		for _, m := range on {
			m.room.suspend(m, x) // only those on x
		}
		x.log.Info("transport ended", zap.String("why", why))
	})
}

// attachWhenOpen puts m on the session's transport once it is open: at
// once if it is, else when it opens (rtc.opened).
func (ss *session) attachWhenOpen(m *member) {
	ss.mu.Lock()
	x := ss.rtc
	if x == nil || !x.isOpen() {
		ss.waiting = append(ss.waiting, m)
		ss.mu.Unlock()
		return
	}
	ss.mu.Unlock()
	m.attach(x)
}

// attach puts m on the open transport x: a pending member becomes active,
// a member back after a rejoin is reopened.
func (m *member) attach(x *rtc) {
	m.room.mu.Lock()
	st := m.state
	m.room.mu.Unlock()
	switch st {
	case statePending:
		m.opened(x)
	case stateActive, stateSuspended:
		m.reopened(x)
	}
}

// memberOf returns the session's member of the room the client calls
// handle, or nil.
func (ss *session) memberOf(handle uint32) *member {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.handles[handle]
}

// onPacket handles one data-channel message, found at buf[off:end] with
// free space around it (see stamp): a batch entry by entry, in order. A
// packet that does not decode is dropped and counted; it never reaches
// anyone.
func (x *rtc) onPacket(ch int, buf []byte, off, end int) {
	batched, err := eachBatched(buf[off:end], func(p []byte) {
		// Stamping re-frames a message in place, which would overwrite
		// the next entry: each entry gets a buffer with room around it.
		s := scratch.Get().(*[]byte)
		n := copy((*s)[readHeadroom:], p)
		x.onOne(ch, *s, readHeadroom, readHeadroom+n)
		scratch.Put(s)
	})
	switch {
	case err != nil:
		x.sess.srv.metrics.badPackets.Inc()
		x.log.Debug("malformed batch dropped", zap.Int("channel", ch))
	case !batched:
		x.onOne(ch, buf, off, end)
	}
}

// onOne hands one packet, not a batch, to the member of its room.
func (x *rtc) onOne(ch int, buf []byte, off, end int) {
	srv := x.sess.srv
	p, err := scanPacket(buf, off, end)
	if err != nil {
		srv.metrics.badPackets.Inc()
		x.log.Debug("malformed packet dropped", zap.Int("channel", ch))
		return
	}
	m := x.sess.memberOf(p.room)
	if m != nil {
		m.room.mu.Lock()
		on := m.rtc == x && m.state == stateActive
		m.room.mu.Unlock()
		if !on {
			m = nil
		}
	}
	if m == nil {
		// A room just left (its packets were in flight), one the client
		// never joined, or one whose member is not active on x (still
		// joining, or waiting for its rejoin).
		srv.metrics.strayPackets.Inc()
		return
	}
	m.onBody(ch, buf, p)
}
