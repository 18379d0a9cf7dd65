package server

import (
	"context"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/parleyhq/parley/internal/transport"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// room is the set of active members of one room ID. Membership changes
// happen under mu, and are numbered there; the room's presence worker
// tells the members about them in that order (see presence.go), so every
// session hears about one room's changes in the same order.
type room struct {
	srv  *Server
	key  roomKey
	id   string
	refs int // members holding the room, pending or active; guarded by srv.mu

	mu      sync.Mutex
	members map[string]*member // active members by user ID; guarded by mu
	seq     uint64             // activation counter, for join order; guarded by mu
	quota   *rate.Limiter      // broadcasts per second in the room
	roster  roster             // the members in join order, for snapshots; guarded by mu
	pres    presence           // changes and joiners for the presence worker; guarded by mu
	fan     fanout             // the broadcasts being fanned out, in order
}

// roomKey names a room: rooms are per app.
type roomKey struct{ app, id string }

type memberState int

const (
	statePending   memberState = iota // PeerConnection being set up
	stateActive                       // data channels open, known to the room
	stateSuspended                    // its PeerConnection failed; the room still counts it, for GracePeriod
	stateGone                         // removed; its PeerConnection is closed or closing
)

// member is one session's presence in one room, with its PeerConnection.
type member struct {
	room      *room
	sess      *session
	userID    string
	extraInfo string
	pbInfo    *pb.Member // userID and extraInfo, as the others are told; read-only
	batches   bool       // the client takes Presence frames; read-only once in the room
	log       *zap.Logger

	pc        *webrtc.PeerConnection
	joinTimer *time.Timer // guarded by room.mu

	// The open channels: set before the member is active, and replaced by
	// a reopen under both room.mu and wmu; guarded by room.mu, or by wmu
	// for the reliable channel once the member is active.
	dcs   [transport.NumChannels]*webrtc.DataChannel
	chans transport.Channels
	ws    [transport.NumChannels]*transport.Writer // chans' writers, which coalesce (see wire.go)

	batch atomic.Bool // the client takes batches (JoinRequest.packet_version)

	state memberState // guarded by room.mu
	seq   uint64      // activation order; guarded by room.mu

	// Presence (see presence.go).
	joinVer uint64        // the presence version of its activation; set under room.mu before it is in the roster, then read-only
	leftVer atomic.Uint64 // the presence version of its departure; 0 while in the room; written under room.mu
	pcursor uint64        // the presence version it has been told of; only the room's presence worker uses it
	quiet   atomic.Bool   // gone: no more presence frames; set under sess.sendMu (silence)

	fanQueued atomic.Int32 // its jobs in the room's fan-out queue, not finished (see fanout.go)

	wmu    sync.Mutex  // orders writes to m's reliable channel with a replay of retain
	retain retention   // reliable messages forwarded to m, not yet acknowledged
	out    *outbox     // m's reliable user messages awaiting their receivers' acks
	grace  func() bool // stops the timer that drops a suspended member

	from []byte // the encoded From field the relay stamps on m's messages

	expireAt   uint32        // the token's expiry, unix seconds; 0 never; guarded by room.mu
	tokenStops []func() bool // the token's warning and expiry timers; guarded by room.mu

	// evicted marks a member the server removed and told why (RoomRemoved):
	// its PeerConnection is left for the client to close (closeAfterClient).
	evicted atomic.Bool

	finishOnce sync.Once
}

func newMember(r *room, ss *session, userID, extraInfo string) *member {
	m := &member{
		room:      r,
		sess:      ss,
		userID:    userID,
		extraInfo: extraInfo,
		pbInfo:    &pb.Member{UserId: userID, ExtraInfo: extraInfo},
		log:       ss.log.With(zap.String("room", r.id), zap.String("user", userID)),
		from:      fromField(userID),
		retain:    retention{user: userID},
	}
	m.out = m.newOutbox()
	return m
}

// start builds the member's PeerConnection from the client's offer and
// returns the complete answer. The member becomes active when its data
// channels open.
func (m *member) start(ctx context.Context, offer string) (string, error) {
	answer, err := m.connect(ctx, offer, m.opened)
	if err != nil {
		return "", err
	}
	m.room.mu.Lock()
	m.joinTimer = time.AfterFunc(m.room.srv.cfg.JoinTimeout, m.joinExpired)
	m.room.mu.Unlock()
	return answer, nil
}

// restart replaces the PeerConnection of a member that lost it (rejoin):
// once the new one is open the member is active again, the messages it
// had not acknowledged are delivered again, and the rest of the room is
// told nothing.
func (m *member) restart(ctx context.Context, offer string) (string, error) {
	return m.connect(ctx, offer, m.reopened)
}

// connect builds a PeerConnection for m from offer, with open to run when
// its channels are open, and returns the answer.
func (m *member) connect(ctx context.Context, offer string, open func(*webrtc.PeerConnection, [transport.NumChannels]*webrtc.DataChannel, transport.Channels)) (string, error) {
	srv := m.room.srv
	pc, err := srv.api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return "", fmt.Errorf("new peer connection: %w", err)
	}
	m.room.mu.Lock()
	old := m.pc
	m.pc = pc // so that finish closes it, whatever happens next
	m.room.mu.Unlock()
	if old != nil {
		_ = old.Close() // its failure was seen already, or is being replaced
	}
	dcs, err := transport.CreateChannels(pc)
	if err != nil {
		return "", err
	}
	transport.OnOpen(dcs, func(ch transport.Channels) { open(pc, dcs, ch) }, func(err error) {
		m.log.Warn("data channels failed", zap.Error(err))
		m.room.remove(m, reasonDropped, true)
	})
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateClosed {
			m.room.suspend(m, pc)
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

// readChannels starts a read loop on each of chans.
func (m *member) readChannels(chans transport.Channels) {
	srv := m.room.srv
	srv.wg.Add(len(chans))
	for i, ch := range chans {
		go func() {
			defer srv.wg.Done()
			err := transport.ReadLoopRoom(ch, readHeadroom, readTailroom, func(buf []byte, off, end int) {
				m.onPacket(i, buf, off, end)
			})
			if err != nil {
				m.log.Debug("data channel read ended", zap.Int("channel", i), zap.Error(err))
			}
		}()
	}
}

// reopened runs when a restarted member's new channels are open.
func (m *member) reopened(pc *webrtc.PeerConnection, dcs [transport.NumChannels]*webrtc.DataChannel, chans transport.Channels) {
	r := m.room
	r.mu.Lock()
	if m.pc != pc || m.state == stateGone {
		r.mu.Unlock()
		for _, ch := range chans {
			_ = ch.Close()
		}
		return
	}
	if m.grace != nil {
		m.grace()
		m.grace = nil
	}
	m.wmu.Lock()
	m.closeWriters()
	m.dcs, m.chans, m.ws = dcs, chans, m.newWriters(dcs, chans)
	was := m.state
	m.state = stateActive
	w := m.ws[transport.ChannelReliable]
	m.retain.each(func(e retained) { _ = w.Write(context.Background(), e.b) })
	m.wmu.Unlock()
	if was == stateSuspended {
		r.srv.metrics.members.Inc()
	}
	r.listLocked(m) // the list again, as of now: the client reconciles its own with it
	r.mu.Unlock()
	m.readChannels(chans)
	m.log.Info("member back on a new PeerConnection")
}

// suspend keeps a member whose PeerConnection failed for the grace period:
// the room still counts it and keeps its reliable messages; a rejoin on
// its session brings it back unnoticed (restart), else it is dropped.
func (r *room) suspend(m *member, pc *webrtc.PeerConnection) {
	r.mu.Lock()
	switch {
	case m.pc != pc || m.state == stateGone || m.state == stateSuspended:
		r.mu.Unlock()
		return
	case m.state == statePending:
		r.mu.Unlock()
		r.remove(m, reasonDropped, true)
		return
	}
	m.state = stateSuspended
	r.srv.metrics.members.Dec()
	m.grace = r.srv.cfg.Clock.AfterFunc(r.srv.cfg.GracePeriod, func() {
		r.mu.Lock()
		still := m.state == stateSuspended
		r.mu.Unlock()
		if still {
			m.log.Info("member dropped: no rejoin within the grace period")
			r.remove(m, reasonDropped, true)
		}
	})
	r.mu.Unlock()
	m.log.Info("member's PeerConnection lost; kept for a rejoin")
}

// opened runs when all three data channels are open: the member starts
// reading them and becomes active.
func (m *member) opened(_ *webrtc.PeerConnection, dcs [transport.NumChannels]*webrtc.DataChannel, chans transport.Channels) {
	m.room.mu.Lock()
	if m.state != statePending {
		m.room.mu.Unlock()
		for _, ch := range chans {
			_ = ch.Close()
		}
		return
	}
	m.dcs, m.chans, m.ws = dcs, chans, m.newWriters(dcs, chans)
	m.room.mu.Unlock()
	m.readChannels(chans)
	m.room.activate(m)
}

func (m *member) joinExpired() {
	m.room.mu.Lock()
	pending := m.state == statePending
	m.room.mu.Unlock()
	if !pending {
		return
	}
	m.log.Info("join timed out: data channels did not open", zap.Duration("timeout", m.room.srv.cfg.JoinTimeout))
	m.sess.send(0, &pb.ServerFrame{Body: &pb.ServerFrame_RoomRemoved{RoomRemoved: &pb.RoomRemoved{
		RoomId: m.room.id, Code: codeJoinRoom, Reason: "data channels did not open in time",
	}}})
	m.room.remove(m, reasonDropped, false)
}

// evictLinger is how long the PeerConnection of an evicted member waits
// for the client to close it.
const evictLinger = 5 * time.Second

// closeAfterClient closes pc, an evicted member's, once the client has
// closed it (the SDK does on reading RoomRemoved), after evictLinger, or
// at shutdown, whichever comes first. Closing it at once would race the
// removal's reason: the transport's end can reach the client before the
// signaling frame that explains it, and look like a network failure the
// SDK should repair by rejoining.
func (s *Server) closeAfterClient(pc *webrtc.PeerConnection, log *zap.Logger) {
	s.mu.Lock()
	closing := s.closing
	if !closing {
		s.wg.Add(1) // before Shutdown can Wait: it sets closing under s.mu first
	}
	s.mu.Unlock()
	closeIt := func() {
		if err := pc.Close(); err != nil {
			log.Debug("close peer connection", zap.Error(err))
		}
	}
	if closing {
		closeIt()
		return
	}
	ended := make(chan struct{})
	var once sync.Once
	over := func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateClosed || st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateDisconnected {
			once.Do(func() { close(ended) })
		}
	}
	pc.OnConnectionStateChange(over)
	over(pc.ConnectionState()) // the client may have been quicker
	go func() {
		defer s.wg.Done()
		t := time.NewTimer(evictLinger)
		defer t.Stop()
		select {
		case <-ended:
			log.Debug("evicted member's PeerConnection closed by the client")
		case <-t.C:
			log.Info("evicted member's PeerConnection not closed by the client; closing it", zap.Duration("after", evictLinger))
		case <-s.ctx.Done():
		}
		closeIt()
	}()
}

// finish releases what the member holds; it runs once, outside room.mu.
func (m *member) finish() {
	m.finishOnce.Do(func() {
		m.room.mu.Lock()
		if m.joinTimer != nil {
			m.joinTimer.Stop()
		}
		m.stopTokenLocked()
		m.room.mu.Unlock()
		m.sess.forget(m)
		switch {
		case m.pc == nil:
		case m.evicted.Load():
			m.room.srv.closeAfterClient(m.pc, m.log)
		default:
			if err := m.pc.Close(); err != nil {
				m.log.Debug("close peer connection", zap.Error(err))
			}
		}
		m.failUnacked()
		m.room.srv.release(m.room)
	})
}

// maxRoomJoinedFrame bounds a RoomJoined frame, whatever the room's size:
// a long member list goes in pages (RoomJoined.more). The client refuses
// frames over 1 MiB; 64 KiB keeps one page from holding up the session's
// other frames for long.
const maxRoomJoinedFrame = 64 << 10

// sendMembersLocked sends ss the members already in the room, list, in
// RoomJoined frames of at most maxRoomJoinedFrame bytes: each holds the
// next members in order, and all but the last have more set. They go back
// to back: the caller holds the session's send lock across them, so no
// other frame of the session comes between. The presence worker calls it,
// outside r.mu.
func (r *room) sendMembersLocked(ss *session, list []*pb.Member) {
	// What a frame costs besides its members: the largest header fields,
	// and the RoomJoined's length growing to three bytes.
	overhead := proto.Size(&pb.ServerFrame{
		Seq: math.MaxUint64, Acked: math.MaxUint64, RequestId: math.MaxUint64,
		Body: &pb.ServerFrame_RoomJoined{RoomJoined: &pb.RoomJoined{RoomId: r.id, More: true}},
	}) + 2
	budget := maxRoomJoinedFrame - overhead
	for {
		n, size := 0, 0
		for n < len(list) {
			c := protowire.SizeTag(2) + protowire.SizeBytes(proto.Size(list[n]))
			if n > 0 && size+c > budget {
				break
			}
			size += c
			n++
		}
		more := n < len(list)
		ss.sendLocked(0, &pb.ServerFrame{Body: &pb.ServerFrame_RoomJoined{RoomJoined: &pb.RoomJoined{
			RoomId: r.id, Members: list[:n:n], More: more,
		}}})
		if !more {
			return
		}
		list = list[n:]
	}
}

// activate makes m an active member: an earlier member with the same user
// ID is removed (-1004 to it, Dropped to the rest), m learns who is there,
// and the rest learn about m (from the presence worker: nothing here walks
// the room).
func (r *room) activate(m *member) {
	r.mu.Lock()
	if m.state != statePending {
		r.mu.Unlock()
		return
	}
	old := r.members[m.userID]
	if old != nil {
		if old.state == stateActive {
			r.srv.metrics.members.Dec()
		}
		old.state = stateGone
		delete(r.members, old.userID)
		old.evicted.Store(true)
		old.silence()
		old.sess.send(0, &pb.ServerFrame{Body: &pb.ServerFrame_RoomRemoved{RoomRemoved: &pb.RoomRemoved{
			RoomId: r.id, Code: codeDuplicateLogin, Reason: "the same user joined the room elsewhere",
		}}})
		r.leftLocked(old, reasonDropped, true)
	}
	r.seq++
	m.seq = r.seq
	m.state = stateActive
	r.members[m.userID] = m
	r.srv.metrics.members.Inc()
	r.joinedLocked(m)
	m.joinTimer.Stop()
	m.armTokenLocked(m.expireAt)
	r.mu.Unlock()
	m.log.Debug("member active")
	if old != nil {
		old.log.Info("replaced by a later join of the same user")
		old.finish()
	}
}

// remove takes m out of the room. An active member's departure is told to
// the rest with reason when notify is set, unless the server is shutting
// down: every member then hears that its room is gone, and nothing of the
// others. Safe to call more than once.
func (r *room) remove(m *member, reason int32, notify bool) {
	notify = notify && !r.srv.shuttingDown()
	r.mu.Lock()
	if m.state == stateGone {
		r.mu.Unlock()
		m.finish() // a member replaced in activate is finished there; this is a no-op then
		return
	}
	was := m.state
	m.state = stateGone
	if m.grace != nil {
		m.grace()
		m.grace = nil
	}
	if was == stateActive || was == stateSuspended {
		delete(r.members, m.userID)
		if was == stateActive {
			r.srv.metrics.members.Dec()
		}
		r.leftLocked(m, reason, notify)
	}
	r.mu.Unlock()
	m.silence()
	m.log.Debug("member removed", zap.Int32("reason", reason))
	m.finish()
}

// armTokenLocked times the member's token: a warning TokenWarning before
// expireAt, removal at it. Unix 0 never expires.
func (m *member) armTokenLocked(expireAt uint32) {
	m.stopTokenLocked()
	m.expireAt = expireAt
	if expireAt == 0 {
		return
	}
	srv := m.room.srv
	until := time.Unix(int64(expireAt), 0).Sub(srv.cfg.Clock.Now())
	warnIn := max(until-srv.cfg.TokenWarning, 0)
	m.tokenStops = append(m.tokenStops,
		srv.cfg.Clock.AfterFunc(warnIn, m.tokenWarning),
		srv.cfg.Clock.AfterFunc(max(until, 0), m.tokenExpired))
}

func (m *member) stopTokenLocked() {
	for _, stop := range m.tokenStops {
		stop()
	}
	m.tokenStops = nil
}

// tokenWarning tells the client its token for the room expires soon.
func (m *member) tokenWarning() {
	m.room.mu.Lock()
	in := m.state == stateActive || m.state == stateSuspended // the warning goes by signaling
	m.room.mu.Unlock()
	if in {
		m.sess.send(0, &pb.ServerFrame{Body: &pb.ServerFrame_TokenWillExpire{TokenWillExpire: &pb.TokenWillExpire{RoomId: m.room.id}}})
	}
}

// tokenExpired removes a member whose token ran out: -1009 to it, Dropped
// to the rest.
func (m *member) tokenExpired() {
	m.room.mu.Lock()
	gone := m.state == stateGone
	m.room.mu.Unlock()
	if gone {
		return
	}
	m.log.Info("token expired: member removed")
	m.evicted.Store(true)
	m.silence() // nothing of the room's after its removal
	m.sess.send(0, &pb.ServerFrame{Body: &pb.ServerFrame_RoomRemoved{RoomRemoved: &pb.RoomRemoved{
		RoomId: m.room.id, Code: codeTokenExpired, Reason: "token expired",
	}}})
	m.room.remove(m, reasonDropped, true)
}
