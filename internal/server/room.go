package server

import (
	"context"
	"math"
	"sync"
	"sync/atomic"
	"time"

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
	remote  *remoteRoom        // its members on other nodes (remote.go); nil on a single node
}

// roomKey names a room: rooms are per app.
type roomKey struct{ app, id string }

type memberState int

const (
	statePending   memberState = iota // waiting for the session's transport to open
	stateActive                       // on an open transport, known to the room
	stateSuspended                    // its transport failed; the room still counts it, for GracePeriod
	stateGone                         // removed
)

// member is one session's presence in one room. Its packets travel on the
// session's transport (rtc), under the handle the client chose for the room.
type member struct {
	room      *room
	sess      *session
	userID    string
	extraInfo string
	pbInfo    *pb.Member // userID and extraInfo, as the others are told; read-only
	batches   bool       // the client takes Presence frames; read-only once in the room
	handle    uint32     // the client's name of the room in packets (JoinRequest.room); read-only
	log       *zap.Logger

	// A proxy (remote.go) is a member of another node: node names it, and
	// it has no session, handle or transport. For a local member node is
	// "". joined is when the member became active (unix nanoseconds, on
	// its node): of two members of one user ID, the later stays. Both are
	// guarded by room.mu; a member's own are set once, a proxy's change
	// when it moves. proxy says which it is, and is read-only: what reads
	// a member without room.mu asks it, not node.
	node   string
	joined int64
	proxy  bool

	joinTimer *time.Timer // guarded by room.mu

	// The session's transport the member is on: set before the member is
	// active, and replaced by a reopen under both room.mu and wmu; guarded
	// by room.mu, or by wmu for the reliable channel once the member is
	// active.
	rtc *rtc

	state memberState // guarded by room.mu
	seq   uint64      // activation order; guarded by room.mu

	// Presence (see presence.go).
	joinVer uint64        // the presence version of its activation; set under room.mu before it is in the roster, then read-only
	leftVer atomic.Uint64 // the presence version of its departure; 0 while in the room; written under room.mu
	pcursor uint64        // the presence version it has been told of; only the room's presence worker uses it
	quiet   atomic.Bool   // gone: no more presence frames; set under sess.sendMu (silence)

	fanQueued atomic.Int32 // its jobs in the room's fan-out queue, not finished (see fanout.go)
	fanBytes  int          // the size of those jobs; guarded by room.fan.mu

	wmu    sync.Mutex  // orders writes to m's reliable channel with a replay of retain
	retain retention   // reliable messages forwarded to m, not yet acknowledged
	out    *outbox     // m's reliable user messages awaiting their receivers' acks
	grace  func() bool // stops the timer that drops a suspended member

	from []byte // the encoded From field the relay stamps on m's messages

	expireAt   uint32        // the token's expiry, unix seconds; 0 never; guarded by room.mu
	tokenStops []func() bool // the token's warning and expiry timers; guarded by room.mu

	finishOnce sync.Once
}

func newMember(r *room, ss *session, userID, extraInfo string, handle uint32) *member {
	m := &member{
		room:      r,
		handle:    handle,
		sess:      ss,
		userID:    userID,
		extraInfo: extraInfo,
		pbInfo:    &pb.Member{UserId: userID, ExtraInfo: extraInfo},
		log:       ss.log.WithLazy(zap.String("room", r.id), zap.String("user", userID)),
		from:      fromField(userID),
		retain:    retention{user: userID},
	}
	m.out = m.newOutbox()
	return m
}

// start times the member's join: it must become active (its session's
// transport open) within Config.JoinTimeout.
func (m *member) start() {
	m.room.mu.Lock()
	m.joinTimer = time.AfterFunc(m.room.srv.cfg.JoinTimeout, m.joinExpired)
	m.room.mu.Unlock()
}

// reopened puts a member whose client rejoined its room on the open
// transport x: the messages it had not acknowledged go again, its client
// gets the member list (to reconcile its own with), and the rest of the
// room is told nothing.
func (m *member) reopened(x *rtc) {
	r := m.room
	r.mu.Lock()
	if m.state == stateGone || m.state == statePending {
		r.mu.Unlock()
		return
	}
	if m.grace != nil {
		m.grace()
		m.grace = nil
	}
	m.wmu.Lock()
	if m.rtc != nil && m.rtc != x {
		for _, w := range m.rtc.ws {
			if w != nil {
				w.Forget(m.handle)
			}
		}
	}
	m.rtc = x
	was := m.state
	m.state = stateActive
	w := x.ws[transport.ChannelReliable]
	m.retain.each(func(e retained) { _ = w.Write(context.Background(), m.handle, e.b) })
	m.wmu.Unlock()
	if was == stateSuspended {
		r.srv.metrics.members.Inc()
	}
	r.listLocked(m) // the list again, as of now: the client reconciles its own with it
	r.mu.Unlock()
	m.log.Info("member back on a new transport")
}

// suspend keeps a member whose transport x failed for the grace period:
// the room still counts it and keeps its reliable messages; a rejoin on
// its session brings it back unnoticed (reopened), else it is dropped.
// Members on another transport are left alone.
func (r *room) suspend(m *member, x *rtc) {
	r.mu.Lock()
	if m.rtc != x || m.state != stateActive {
		r.mu.Unlock()
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
	m.log.Info("member's transport lost; kept for a rejoin")
}

// opened puts a pending member on the open transport x: it becomes
// active.
func (m *member) opened(x *rtc) {
	m.room.mu.Lock()
	if m.state != statePending {
		m.room.mu.Unlock()
		return
	}
	m.rtc = x
	m.room.mu.Unlock()
	m.room.activate(m)
}

func (m *member) joinExpired() {
	m.room.mu.Lock()
	pending := m.state == statePending
	m.room.mu.Unlock()
	if !pending {
		return
	}
	m.log.Info("join timed out: the session's transport did not open", zap.Duration("timeout", m.room.srv.cfg.JoinTimeout))
	m.sess.send(0, &pb.ServerFrame{Body: &pb.ServerFrame_RoomRemoved{RoomRemoved: &pb.RoomRemoved{
		RoomId: m.room.id, Code: codeJoinRoom, Reason: "the session's transport did not open in time",
	}}})
	m.room.remove(m, reasonDropped, false)
}

// finish releases what the member holds; it runs once, outside room.mu.
func (m *member) finish() {
	m.finishOnce.Do(func() {
		m.room.mu.Lock()
		if m.joinTimer != nil {
			m.joinTimer.Stop()
		}
		m.stopTokenLocked()
		x := m.rtc
		m.room.mu.Unlock()
		m.sess.forget(m)
		if x != nil {
			for _, w := range x.ws { // what is queued for the room goes nowhere now
				if w != nil {
					w.Forget(m.handle)
				}
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
//
// On a node of a cluster it first waits for the room's roster (remote.go),
// and tells the other nodes; a proxy of the same user ID is replaced like
// a member here, unless it is moving (its node left): m then takes over
// what it holds, quietly.
func (r *room) activate(m *member) {
	if r.remote != nil {
		r.remote.wait()
	}
	r.mu.Lock()
	if m.state != statePending {
		r.mu.Unlock()
		return
	}
	m.joined = time.Now().UnixNano()
	old := r.members[m.userID]
	var proxy *member // a moving proxy m takes over
	switch {
	case old == nil:
	case old.node != "" && old.state == stateSuspended:
		proxy, old = old, nil
		r.takeOverLocked(proxy, m)
	case old.node != "":
		r.remote.removeProxyLocked(old, reasonDropped, resultNoReceiver)
		old = nil
	default:
		r.replaceLocked(old)
	}
	r.seq++
	m.seq = r.seq
	m.state = stateActive
	r.members[m.userID] = m
	r.srv.metrics.members.Inc()
	if proxy == nil {
		r.joinedLocked(m)
	} else {
		r.listLocked(m) // the others knew it as the proxy: no news for them
	}
	r.announceJoinLocked(m)
	m.joinTimer.Stop()
	m.armTokenLocked(m.expireAt)
	if proxy != nil { // what the proxy held, in order, before anything new
		m.wmu.Lock()
		w := m.rtc.ws[transport.ChannelReliable]
		m.retain.each(func(e retained) { _ = w.Write(context.Background(), m.handle, e.b) })
		m.wmu.Unlock()
	}
	r.mu.Unlock()
	m.log.Debug("member active")
	if old != nil {
		old.log.Info("replaced by a later join of the same user")
		old.finish()
	}
}

// replaceLocked removes local member old, replaced by a later join of its
// user: -1004 to it, Dropped to the rest. The caller finishes it outside
// r.mu.
func (r *room) replaceLocked(old *member) {
	if old.state == stateActive {
		r.srv.metrics.members.Dec()
	}
	old.state = stateGone
	delete(r.members, old.userID)
	old.silence()
	old.sess.send(0, &pb.ServerFrame{Body: &pb.ServerFrame_RoomRemoved{RoomRemoved: &pb.RoomRemoved{
		RoomId: r.id, Code: codeDuplicateLogin, Reason: "the same user joined the room elsewhere",
	}}})
	r.leftLocked(old, reasonDropped, true)
	r.announceLeaveLocked(old, reasonDropped)
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
		r.announceLeaveLocked(m, reason)
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
	m.silence() // nothing of the room's after its removal
	m.sess.send(0, &pb.ServerFrame{Body: &pb.ServerFrame_RoomRemoved{RoomRemoved: &pb.RoomRemoved{
		RoomId: m.room.id, Code: codeTokenExpired, Reason: "token expired",
	}}})
	m.room.remove(m, reasonDropped, true)
}
