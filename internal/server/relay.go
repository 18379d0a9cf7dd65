package server

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/proto"

	"github.com/parleyhq/parley/internal/transport"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// MaxPayload is the largest message payload the relay accepts.
const MaxPayload = 64 << 10

// Result codes the relay sends (ByteRTC UserMessageSendResult and
// RoomMessageSendResult values).
const (
	resultSuccess         = 0
	resultNoReceiver      = 3
	resultNoRelayPath     = 4
	resultExceedQPS       = 5
	resultExceedMaxLength = 103
	resultEmptyUser       = 104
	resultRoomSuccess     = 200
)

// scratch holds buffers for the entries of a batch: readHeadroom, the
// largest packet and readTailroom.
var scratch = sync.Pool{New: func() any {
	b := make([]byte, readHeadroom+transport.MaxSCTPMessage+readTailroom)
	return &b
}}

// onBody handles the body of packet p from m's client, read from channel
// ch into buf (with free space around it, see stamp).
func (m *member) onBody(ch int, buf []byte, p wirePacket) {
	srv := m.room.srv
	switch p.field {
	case transport.FieldPacketMessage:
		msg, err := scanMessage(buf, p.bodyOff, p.bodyEnd)
		if err != nil {
			srv.metrics.badPackets.Inc()
			m.log.Debug("malformed message dropped", zap.Int("channel", ch))
			return
		}
		m.relayInOrder(ch, buf, msg)
	case transport.FieldPacketAck:
		var ack pb.Ack
		if err := proto.Unmarshal(buf[p.bodyOff:p.bodyEnd], &ack); err != nil {
			srv.metrics.badPackets.Inc()
			return
		}
		m.relayAck(&ack)
	default: // a Result is the server's to send, not a client's
		srv.metrics.badPackets.Inc()
	}
}

// relay forwards a message from m: to its receiver on the channel it came
// on, or, for a broadcast, to every other member on the reliable channel.
// The sender is stamped from the session, never taken from the packet.
func (m *member) relay(ch int, buf []byte, msg wireMessage) {
	srv := m.room.srv
	if ch == transport.ChannelReliable && srv.leaving.Load() {
		// This node is leaving its cluster, and m's client is about to
		// move: neither relayed nor answered, the message is sent again
		// from the client's next node, in order with the rest it sends
		// from there (the SDK keeps a reliable message until its result
		// and sends it again after a rejoin; receivers drop what they
		// have). Relayed here, a broadcast's 200 could come for a member
		// that moves before it has it, or a NoReceiver for one that is
		// between nodes, and the message would be lost. (Checked here, not
		// on the reader, so that what waits on the room's fan-out worker
		// when the node starts leaving is left too.)
		srv.metrics.relayed.WithLabelValues(kindOf(msg), "left_to_next_node").Inc()
		return
	}
	arrived := srv.metrics.arrived(kindOf(msg), msg.payloadLen)
	if msg.payloadLen > MaxPayload {
		m.result(msg.id, resultExceedMaxLength)
		return
	}
	if msg.broadcast {
		if !srv.allow(m.sess.quota.Load().broadcast, m.room.quota) {
			srv.metrics.relayed.WithLabelValues("broadcast", "exceed_qps").Inc()
			m.result(msg.id, resultExceedQPS)
			return
		}
		// One copy for every receiver: it is kept until each acknowledges.
		b := bytes.Clone(stamp(buf, msg, m.from))
		if x := m.room.remote; x != nil {
			x.fence.RLock()
			defer x.fence.RUnlock()
		}
		local, moving := m.room.receivers(m)
		for _, o := range local {
			if o.deliverReliable(retained{sender: m.userID, id: msg.id, b: b}) {
				srv.metrics.handedOff(kindBroadcast, arrived)
			}
		}
		if !m.broadcastRemote(msg.id, b, m.keepForMoving(moving, msg.id, b)) {
			// It went to the members here; those on other nodes are out
			// of reach. RoomMessageSendResult has no NoRelayPath: the
			// result is Success, as for the members here, and the metric
			// (and docs/cluster.md) say what it means.
			srv.metrics.relayed.WithLabelValues("broadcast", "local_only").Inc()
		} else {
			srv.metrics.relayed.WithLabelValues("broadcast", "ok").Inc()
		}
		m.result(msg.id, resultRoomSuccess)
		return
	}
	if len(msg.to) == 0 {
		m.result(msg.id, resultEmptyUser)
		return
	}
	if !srv.allow(m.sess.quota.Load().userMessage) {
		srv.metrics.relayed.WithLabelValues("user", "exceed_qps").Inc()
		m.result(msg.id, resultExceedQPS)
		return
	}
	to := m.room.member(string(msg.to))
	if to == nil {
		srv.metrics.relayed.WithLabelValues("user", "no_receiver").Inc()
		m.result(msg.id, resultNoReceiver)
		return
	}
	b := stamp(buf, msg, m.from)
	if to.proxy {
		m.relayRemote(ch, to, msg.id, bytes.Clone(b), arrived)
		return
	}
	if ch == transport.ChannelReliable {
		// Success comes from the receiver's ack; until then the message is
		// kept, to deliver again on the receiver's next transport. It
		// is in m's outbox before the receiver can see it (and ack it).
		if !m.out.add(to.userID, msg.id, &to.retain) {
			return // m is gone
		}
		if !to.deliverReliable(retained{sender: m.userID, from: m.out, id: msg.id, b: bytes.Clone(b)}) {
			srv.metrics.relayed.WithLabelValues("user", "no_receiver").Inc()
			m.out.fail(to.userID, msg.id, &to.retain, resultNoReceiver)
			return
		}
		srv.metrics.handedOff(kindUser, arrived)
		srv.metrics.relayed.WithLabelValues("user", "ok").Inc()
		return
	}
	if !to.deliver(ch, b) {
		srv.metrics.relayed.WithLabelValues("user", "dropped").Inc()
		m.result(msg.id, resultNoRelayPath)
		return
	}
	srv.metrics.handedOff(kindUser, arrived)
	srv.metrics.relayed.WithLabelValues("user", "ok").Inc()
	m.result(msg.id, resultSuccess)
}

// relayRemote forwards m's user message b to proxy to, a member of
// another node: a reliable one awaits its receiver's ack (Success), an
// unreliable one succeeds once published. NATS out of reach, or a
// receiver holding MemberQueue bytes already, is NoRelayPath.
func (m *member) relayRemote(ch int, to *member, id int64, b []byte, arrived time.Time) {
	srv := m.room.srv
	if ch == transport.ChannelReliable {
		if !m.out.add(to.userID, id, &to.retain) {
			return // m is gone
		}
		if !to.deliverRemote(retained{sender: m.userID, from: m.out, id: id, b: b}) {
			srv.metrics.relayed.WithLabelValues("user", "no_relay_path").Inc()
			m.out.fail(to.userID, id, &to.retain, resultNoRelayPath)
			return
		}
	} else {
		if !to.sendUnreliable(ch, m.userID, id, b) {
			srv.metrics.relayed.WithLabelValues("user", "no_relay_path").Inc()
			m.result(id, resultNoRelayPath)
			return
		}
		m.result(id, resultSuccess)
	}
	srv.metrics.handedOff(kindUser, arrived)
	srv.metrics.relayed.WithLabelValues("user", "ok").Inc()
}

// relayAck settles what m acknowledged and passes the ack on to the
// senders of those messages: to the members that sent them, not whoever
// has their user ID now, and only for what was delivered to m (see
// outbox).
func (m *member) relayAck(ack *pb.Ack) {
	m.retain.ack(ack.Peer, ack.UpTo)
}

// newOutbox is the outbox of m's reliable user messages: results and acks
// go to m on its reliable channel.
func (m *member) newOutbox() *outbox {
	return &outbox{
		result: m.result,
		ack: func(peer string, upTo int64) {
			m.deliver(transport.ChannelReliable, encode(&pb.Packet{Body: &pb.Packet_Ack{Ack: &pb.Ack{Peer: peer, UpTo: upTo}}}))
		},
	}
}

// result tells m the fate of its send msgID.
func (m *member) result(msgID int64, code int32) {
	m.room.srv.metrics.result(code)
	b := encode(&pb.Packet{Body: &pb.Packet_Result{Result: &pb.Result{MsgId: msgID, Code: code}}})
	m.deliver(transport.ChannelReliable, b)
}

// deliver writes b to m's channel ch (an unreliable message, an ack or a
// result). It reports false when b was not written: m is not active, or
// its room's queue on the channel holds over Config.MemberQueue bytes and
// b is dropped (the mode allows it; the sender of a message learns
// NoRelayPath).
//
// m's transport is read under room.mu, which a reopen (reopened) holds to
// replace it; the reliable channel's under wmu too, which orders the
// write after the replay of a reopen.
func (m *member) deliver(ch int, b []byte) bool {
	m.room.mu.Lock()
	active := m.state == stateActive
	x := m.rtc
	m.room.mu.Unlock()
	if !active || x == nil {
		return false
	}
	w := x.ws[ch]
	if w.Queued(m.handle) > m.room.srv.cfg.MemberQueue {
		m.room.srv.metrics.dropped.Inc()
		return false
	}
	if ch == transport.ChannelReliable {
		m.wmu.Lock() // after any replay in progress
		defer m.wmu.Unlock()
		w = m.rtc.ws[ch] // a reopen may have replaced it meanwhile
	}
	if err := w.Write(context.Background(), m.handle, b); err != nil {
		m.log.Debug("write to member", zap.Int("channel", ch), zap.Error(err))
		return false
	}
	return true
}

// slowConsumer drops m: its reliable backlog passed MemberQueue. A
// reliable stream cannot skip, and holding more would make the senders'
// room wait for m: the others see m leave as Dropped, the senders of its
// unacknowledged messages get NoReceiver, and m is told (RoomRemoved
// -1006), so that it reports it rather than rejoining.
func (m *member) slowConsumer() {
	m.room.mu.Lock()
	gone := m.state == stateGone
	m.room.mu.Unlock()
	if gone {
		return
	}
	{
		m.log.Info("slow consumer disconnected", zap.Int("backlog", m.room.srv.cfg.MemberQueue))
		m.room.srv.metrics.slowConsumers.Inc()
		srv := m.room.srv
		m.sess.send(0, &pb.ServerFrame{Body: &pb.ServerFrame_RoomRemoved{RoomRemoved: &pb.RoomRemoved{
			RoomId: m.room.id, Code: codeKickedOut,
			Reason: fmt.Sprintf("slow consumer: over %d bytes queued", srv.cfg.MemberQueue),
		}}})
		srv.wg.Add(1) // m is in the room, so its session holds the count above zero
		go func() {
			defer srv.wg.Done()
			m.room.remove(m, reasonDropped, true)
		}()
	}
}

// failUnacked tells the senders of the reliable user messages m never
// acknowledged that they found no receiver, and forgets m's own. It runs
// once m is gone; nothing is kept for m after it.
func (m *member) failUnacked() {
	m.out.close()
	m.retain.failAll(resultNoReceiver)
}

// deliverReliable keeps e (its cost is its size) until m acknowledges it
// and writes it to m's reliable channel, unless m is suspended: then it
// waits for m's next transport. It reports false when m is gone, or
// when m's backlog passes MemberQueue: m is then dropped as a slow
// consumer (see slowConsumer).
func (m *member) deliverReliable(e retained) bool {
	m.room.mu.Lock()
	state := m.state
	m.room.mu.Unlock()
	if state == stateGone || state == statePending {
		return false
	}
	e.cost = len(e.b)
	m.wmu.Lock()
	size, ok, _ := m.retain.add(e, 0)
	if !ok { // finished meanwhile
		m.wmu.Unlock()
		return false
	}
	if size > m.room.srv.cfg.MemberQueue {
		m.wmu.Unlock() // slowConsumer takes room.mu, which is taken before wmu
		m.slowConsumer()
		return true // kept: its sender learns NoReceiver when m is removed
	}
	if state == stateActive {
		if err := m.rtc.ws[transport.ChannelReliable].Write(context.Background(), m.handle, e.b); err != nil {
			m.log.Debug("write to member", zap.Error(err))
		}
	}
	m.wmu.Unlock()
	return true
}

// member returns the active member with userID, or nil.
func (r *room) member(userID string) *member {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.members[userID]
}

// receivers returns whom a broadcast of m's goes to here: the active and
// suspended members but m, in the order they joined (a snapshot of the
// roster, taken in O(1) under r.mu, and filtered outside it), and the
// proxies of moving members (remote.go), which keep it for their next
// node. The other proxies' nodes have it from the room's subject.
func (r *room) receivers(m *member) (local, moving []*member) {
	r.mu.Lock()
	snap := r.roster.list
	if r.remote != nil && len(r.remote.moving) > 0 {
		moving = make([]*member, 0, len(r.remote.moving))
		for p := range r.remote.moving {
			moving = append(moving, p)
		}
	}
	r.mu.Unlock()
	local = make([]*member, 0, len(snap))
	for _, o := range snap {
		if o != m && !o.proxy && o.leftVer.Load() == 0 {
			local = append(local, o)
		}
	}
	return local, moving
}

func encode(p *pb.Packet) []byte {
	b, err := proto.Marshal(p)
	if err != nil {
		panic("parley: marshal packet: " + err.Error()) // only a programming error gets here
	}
	return b
}
