package server

import (
	"fmt"

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

// onPacket handles one packet from the member's channel ch, found at
// buf[off:end] with free space around it (see stamp). A packet that does
// not decode is dropped and counted; it never reaches anyone.
func (m *member) onPacket(ch int, buf []byte, off, end int) {
	srv := m.room.srv
	field, bodyOff, bodyEnd, err := scanPacket(buf, off, end)
	if err != nil {
		srv.metrics.badPackets.Inc()
		m.log.Debug("malformed packet dropped", zap.Int("channel", ch))
		return
	}
	switch field {
	case fieldPacketMessage:
		msg, err := scanMessage(buf, bodyOff, bodyEnd)
		if err != nil {
			srv.metrics.badPackets.Inc()
			m.log.Debug("malformed message dropped", zap.Int("channel", ch))
			return
		}
		m.relay(ch, buf, msg)
	case fieldPacketAck:
		var ack pb.Ack
		if err := proto.Unmarshal(buf[bodyOff:bodyEnd], &ack); err != nil {
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
	if msg.payloadLen > MaxPayload {
		m.result(msg.id, resultExceedMaxLength)
		return
	}
	if msg.broadcast {
		if !allow(m.sess.quota.broadcast, m.room.quota) {
			srv.metrics.relayed.WithLabelValues("broadcast", "exceed_qps").Inc()
			m.result(msg.id, resultExceedQPS)
			return
		}
		b := stamp(buf, msg, m.from)
		for _, o := range m.room.others(m) {
			o.deliver(transport.ChannelReliable, b)
		}
		srv.metrics.relayed.WithLabelValues("broadcast", "ok").Inc()
		m.result(msg.id, resultRoomSuccess)
		return
	}
	if len(msg.to) == 0 {
		m.result(msg.id, resultEmptyUser)
		return
	}
	if !m.sess.quota.userMessage.Allow() {
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
	if ch == transport.ChannelReliable {
		// Success comes from the receiver's ack. Note the message first, so
		// an ack that overtakes this function still finds it.
		to.unacked.Expect(m.userID, msg.id)
		if !to.deliver(ch, b) {
			to.unacked.Forget(m.userID, msg.id)
			srv.metrics.relayed.WithLabelValues("user", "no_receiver").Inc()
			m.result(msg.id, resultNoReceiver)
			return
		}
		srv.metrics.relayed.WithLabelValues("user", "ok").Inc()
		return
	}
	if !to.deliver(ch, b) {
		srv.metrics.relayed.WithLabelValues("user", "dropped").Inc()
		m.result(msg.id, resultNoRelayPath)
		return
	}
	srv.metrics.relayed.WithLabelValues("user", "ok").Inc()
	m.result(msg.id, resultSuccess)
}

// relayAck forwards a receiver's cumulative ack to the original sender.
func (m *member) relayAck(ack *pb.Ack) {
	m.unacked.Settle(ack.Peer, ack.UpTo)
	sender := m.room.member(ack.Peer)
	if sender == nil {
		return
	}
	b := encode(&pb.Packet{Body: &pb.Packet_Ack{Ack: &pb.Ack{Peer: m.userID, UpTo: ack.UpTo}}})
	sender.deliver(transport.ChannelReliable, b)
}

// result tells m the fate of its send msgID.
func (m *member) result(msgID int64, code int32) {
	b := encode(&pb.Packet{Body: &pb.Packet_Result{Result: &pb.Result{MsgId: msgID, Code: code}}})
	m.deliver(transport.ChannelReliable, b)
}

// deliver writes b to m's channel ch. It reports false when b was not
// written. The per-member queue is the SCTP send buffer of the channel:
// past Config.MemberQueue bytes, an unreliable message is dropped (the
// mode allows it; the sender learns NoRelayPath), and a reliable one
// disconnects m as a slow consumer: a reliable stream cannot skip, and
// holding it would make the sender's room wait for m. The others see
// m leave as Dropped and the senders of its unacknowledged messages get
// NoReceiver.
func (m *member) deliver(ch int, b []byte) bool {
	dc := m.dcs[ch]
	if dc.BufferedAmount() > uint64(m.room.srv.cfg.MemberQueue) {
		if ch != transport.ChannelReliable {
			m.room.srv.metrics.dropped.Inc()
			return false
		}
		m.log.Info("slow consumer disconnected", zap.Uint64("buffered", dc.BufferedAmount()))
		m.room.srv.metrics.slowConsumers.Inc()
		srv := m.room.srv
		// Told first, so the client reports it rather than rejoining as if
		// its transport had failed.
		m.sess.send(0, &pb.ServerFrame{Body: &pb.ServerFrame_RoomRemoved{RoomRemoved: &pb.RoomRemoved{
			RoomId: m.room.id, Code: codeKickedOut,
			Reason: fmt.Sprintf("slow consumer: over %d bytes queued", srv.cfg.MemberQueue),
		}}})
		srv.wg.Add(1) // m is active, so its session holds the count above zero
		go func() {
			defer srv.wg.Done()
			m.room.remove(m, reasonDropped, true)
		}()
		return false
	}
	if _, err := m.chans[ch].Write(b); err != nil {
		m.log.Debug("write to member", zap.Int("channel", ch), zap.Error(err))
		return false
	}
	return true
}

// failUnacked tells the senders of the reliable messages m never
// acknowledged that they found no receiver. It runs once m is gone.
func (m *member) failUnacked() {
	for sender, ids := range m.unacked.Drain() {
		if s := m.room.member(sender); s != nil {
			for _, id := range ids {
				s.result(id, resultNoReceiver)
			}
		}
	}
}

// member returns the active member with userID, or nil.
func (r *room) member(userID string) *member {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.members[userID]
}

// others returns the active members but m.
func (r *room) others(m *member) []*member {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]*member, 0, len(r.members))
	for _, o := range r.members {
		if o != m {
			out = append(out, o)
		}
	}
	return out
}

func encode(p *pb.Packet) []byte {
	b, err := proto.Marshal(p)
	if err != nil {
		panic("parley: marshal packet: " + err.Error()) // only a programming error gets here
	}
	return b
}
