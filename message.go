package parley

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/parleyhq/parley/internal/acks"
	"github.com/parleyhq/parley/internal/ids"
	"github.com/parleyhq/parley/internal/transport"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// MaxMessageSize is the largest payload of any message, text or binary:
// 65,536 bytes are accepted, 65,537 give ExceedMaxLength.
const MaxMessageSize = 64 << 10

// ackDelay is how long a receiver gathers acknowledgements before sending
// them: one cumulative ack per sender covers a burst.
const ackDelay = 2 * time.Millisecond

// A broadcast's ack settles only the server's copy (its sender's result
// came when the server handed it on), so it may wait: up to
// broadcastAckDelay, or until broadcastAckBytes of broadcasts are owed. A
// member receiving a steady trickle of broadcasts then sends at most one
// ack every 2 s, not one per broadcast, and one that sends too carries its
// acks with its own messages; the server keeps each copy that much longer,
// well inside its MemberQueue, and a node that drains waits that long at
// most for them (half its DrainTimeout, 5 s by default, bounds the wait).
// At 500 ms, a member of 5,000 in rooms of 5 at one broadcast a second
// acked nearly every broadcast on its own: a quarter of the server's
// packets (docs/performance.md, "The floor").
const (
	broadcastAckDelay = 2 * time.Second
	broadcastAckBytes = 256 << 10
)

// SendUserMessage sends a text message to userID in this room, ByteRTC's
// sendUserMessage. It returns the message ID; the result comes in exactly
// one OnUserMessageSendResult. For MessageConfigReliableOrdered, Success
// means the receiver's SDK has the message; for the unreliable modes, that
// the server forwarded it. On a closed Engine it returns -1 and no result
// follows.
func (r *Room) SendUserMessage(userID, message string, cfg MessageConfig) int64 {
	return r.send(roomMessage{to: userID, payload: []byte(message), cfg: cfg})
}

// SendUserBinaryMessage is SendUserMessage for binary data, ByteRTC's
// sendUserBinaryMessage. message is not retained after the call returns.
func (r *Room) SendUserBinaryMessage(userID string, message []byte, cfg MessageConfig) int64 {
	return r.send(roomMessage{to: userID, payload: message, binary: true, cfg: cfg})
}

// SendRoomMessage sends a text message to every other member of the room,
// ByteRTC's sendRoomMessage (never back to the sender). It returns the
// message ID; the result comes in exactly one OnRoomMessageSendResult:
// RoomMessageSendResultSuccess (200) once the server has handed it to every
// other member. Broadcasts ride the reliable channel. On a closed Engine
// it returns -1 and no result follows.
func (r *Room) SendRoomMessage(message string) int64 {
	return r.send(roomMessage{payload: []byte(message), broadcast: true})
}

// SendRoomBinaryMessage is SendRoomMessage for binary data.
func (r *Room) SendRoomBinaryMessage(message []byte) int64 {
	return r.send(roomMessage{payload: message, binary: true, broadcast: true})
}

// roomMessage is one send in a room.
type roomMessage struct {
	to        string // the receiver of a user message; "" for a broadcast
	payload   []byte
	binary    bool
	broadcast bool          // to every other member, on the reliable channel
	cfg       MessageConfig // a user message's channel; ReliableOrdered for a broadcast
}

// send assigns the next message ID and sends m, or reports why not.
func (r *Room) send(m roomMessage) int64 {
	ch := int(m.cfg)
	if ch < 0 || ch >= transport.NumChannels {
		ch = -1
	}
	for {
		r.mu.Lock()
		a := r.att
		closed := r.closed
		// A room that is rejoining by itself takes sends: they go out once
		// it is back.
		joined := a != nil && (a.joined || a.joinType == JoinTypeReconnected)
		r.mu.Unlock()
		if closed {
			return -1 // a destroyed Room, like a closed Engine, reports nothing
		}
		var code int
		switch {
		case !m.broadcast && m.to == "":
			code = int(UserMessageSendResultEmptyUser)
		case !m.broadcast && ids.Check("user ID", m.to) != nil:
			code = int(UserMessageSendResultNoReceiver) // no member can have that ID
		case len(m.payload) > MaxMessageSize:
			code = int(UserMessageSendResultExceedMaxLength)
		case !joined:
			code = int(UserMessageSendResultNotJoin)
		case ch < 0:
			code = int(UserMessageSendResultUnknown)
		}
		if code != 0 {
			return r.e.fail(&pendingSend{kind: kindOf(m.broadcast), room: r, to: m.to}, code)
		}
		if id, sent := r.sendOn(a, ch, m); sent {
			return id
		}
		// a was replaced by a rejoin or ended meanwhile, or held too much
		// to take more: look again.
	}
}

// sendOn sends m on attempt a's channel ch, and reports false, having
// taken no ID, when a is no longer the room's attempt, or holds maxHeld
// bytes unsent (then after waiting until some go or a ends).
//
// The ID is assigned and the packet written under the attempt's send lock,
// so IDs rise in write order on each channel: cumulative acks depend on
// it. Holding the lock while a is the room's attempt also means that a
// rejoin's move of a's kept sends, and a's end failing those it has, both
// come after this send is registered (both take the lock).
func (r *Room) sendOn(a *attempt, ch int, m roomMessage) (int64, bool) {
	e := r.e
	a.sendMu.Lock()
	r.mu.Lock()
	current, live, x := r.att == a, a.joined, a.rtc
	r.mu.Unlock()
	if !current {
		a.sendMu.Unlock()
		return 0, false
	}
	if held, freed := e.out.heldBytes(a); held+len(m.payload) > maxHeld {
		a.sendMu.Unlock()
		select {
		case <-freed:
		case <-a.ctx.Done():
		}
		return 0, false
	}
	defer a.sendMu.Unlock()
	ps := &pendingSend{kind: kindOf(m.broadcast), room: r, att: a, to: m.to, ch: ch}
	if ch == transport.ChannelReliable && !m.broadcast {
		ps.book = &a.unacked
	}
	id := e.newID(ps, true)
	if id < 0 {
		return -1, true
	}
	b := messagePacket(&pb.Message{
		MsgId: id, To: m.to, Broadcast: m.broadcast, Binary: m.binary, Payload: m.payload, SenderInstance: e.instance,
	})
	if !live {
		// The room is rejoining: it sends the packet once it is back.
		e.out.keep(id, b, true)
		return id, true
	}
	reliable := ch == transport.ChannelReliable
	if reliable {
		// Kept until its result: a rejoin sends it again (the receiver
		// drops what it already has).
		e.out.keep(id, b, false)
	}
	if ps.book != nil {
		ps.book.Expect(m.to, id)
	}
	var err error
	if upTo := a.owedOn(ch); upTo != nil {
		// The lazy acks the room owes ride with the message: one
		// data-channel message, and one packet, where the acks' timer
		// would have sent another. The message goes first, so the server
		// relays it before it settles the acks.
		err = x.writer(ch).WriteAll(a.ctx, r.handle, append([][]byte{b}, ackPackets(upTo)...)...)
	} else {
		err = x.writer(ch).Write(a.ctx, r.handle, b)
	}
	if err != nil {
		e.log.Debug("send", zap.String("room", r.id), zap.Error(err))
		if reliable {
			// The transport has failed, or the attempt is ending; the room
			// may not know yet. The packet stays kept, unsent: a rejoin
			// sends it again, or the attempt's end reports
			// NetworkDisconnected, or its timer Timeout.
			e.out.keep(id, b, true)
			return id, true
		}
		code := UserMessageSendResultNoConnection
		if a.ctx.Err() != nil { // the room was left or lost while the send waited
			code = UserMessageSendResultNetworkDisconnected
		}
		e.resolve(id, int(code))
		return id, true
	}
	a.stats.sent(len(m.payload))
	return id, true
}

// onOne handles one packet of the room, not a batch; it runs on the
// channel's read goroutine and waits when the callback queue is full,
// which stops the reading and so back-pressures the sender through SCTP.
func (a *attempt) onOne(ch int, p *pb.Packet) {
	e := a.r.e
	switch body := p.Body.(type) {
	case *pb.Packet_Message:
		// The handler hears of the room's messages after its state 0:
		// the server may forward a member's message before this join's
		// last RoomJoined has arrived. Those wait in a.early, not on the
		// reader, which the Engine's other rooms share.
		if a.early.hold(ch, body.Message) {
			return
		}
		a.receive(ch, body.Message)
	case *pb.Packet_Ack:
		for _, id := range a.unacked.Settle(body.Ack.Peer, body.Ack.UpTo) {
			e.resolve(id, int(UserMessageSendResultSuccess))
		}
	case *pb.Packet_Result:
		e.resolve(body.Result.MsgId, int(body.Result.Code))
	}
}

// early holds the messages of a join that arrive before its state 0, in
// order, until the join goes live (goLive) or ends (drop). Past maxEarly
// bytes the reader waits for it instead, as it waits for a full callback
// queue.
type early struct {
	mu      sync.Mutex
	live    bool          // guarded by mu; messages go straight to the handler
	dead    bool          // guarded by mu; the join ended first: nothing is kept
	queue   []earlyMsg    // guarded by mu
	bytes   int           // guarded by mu; the payload bytes in queue
	changed chan struct{} // guarded by mu; closed and replaced when the state or the queue changes
}

type earlyMsg struct {
	ch int
	m  *pb.Message
}

// maxEarly bounds the bytes one join holds before its state 0.
const maxEarly = 4 << 20

// hold keeps m, which came on channel ch, for goLive and reports true, or
// reports false when the join is live (the caller delivers m now). A
// message of a join that ended is dropped (true): never delivered, so
// never acknowledged.
func (q *early) hold(ch int, m *pb.Message) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		switch {
		case q.live:
			return false
		case q.dead:
			return true
		case q.bytes == 0 || q.bytes+len(m.Payload) <= maxEarly:
			q.queue = append(q.queue, earlyMsg{ch, m})
			q.bytes += len(m.Payload)
			return true
		}
		changed := q.wakeChan()
		q.mu.Unlock()
		<-changed
		q.mu.Lock()
	}
}

// wakeChan returns the channel closed at the next change.
func (q *early) wakeChan() chan struct{} {
	if q.changed == nil {
		q.changed = make(chan struct{})
	}
	return q.changed
}

func (q *early) wakeLocked() {
	if q.changed != nil {
		close(q.changed)
		q.changed = nil
	}
}

// drop ends q: what it holds is dropped, and so is whatever comes later.
func (q *early) drop() {
	q.mu.Lock()
	q.dead = true
	q.queue, q.bytes = nil, 0
	q.wakeLocked()
	q.mu.Unlock()
}

// goLive delivers, in order, the messages that came before state 0, and
// those that come while it does, then lets the reader deliver the rest.
func (a *attempt) goLive() {
	q := &a.early
	for {
		q.mu.Lock()
		batch := q.queue
		q.queue, q.bytes = nil, 0
		if len(batch) == 0 || q.dead {
			q.live = !q.dead
			q.wakeLocked()
			q.mu.Unlock()
			return
		}
		q.wakeLocked()
		q.mu.Unlock()
		for _, em := range batch {
			a.receive(em.ch, em.m)
		}
	}
}

// receive hands a message to the handler and, for a reliable user
// message, acknowledges it once the callback queue has accepted it.
func (a *attempt) receive(ch int, m *pb.Message) {
	r := a.r
	from, payload := m.From, m.Payload
	reliable := ch == transport.ChannelReliable
	r.deliverMu.Lock()
	if reliable && r.seenBeforeLocked(from, m.SenderInstance, m.MsgId) {
		r.deliverMu.Unlock()
		a.ack(m) // delivered before a reconnect: ack again, deliver once
		return
	}
	var ev func(h RoomEventHandler)
	switch {
	case m.Broadcast && m.Binary:
		ev = func(h RoomEventHandler) { h.OnRoomBinaryMessageReceived(from, payload) }
	case m.Broadcast:
		ev = func(h RoomEventHandler) { h.OnRoomMessageReceived(from, string(payload)) }
	case m.Binary:
		ev = func(h RoomEventHandler) { h.OnUserBinaryMessageReceived(from, payload) }
	default:
		ev = func(h RoomEventHandler) { h.OnUserMessageReceived(from, string(payload)) }
	}
	accepted := r.e.q.Message(func() { ev(r.handlerNow()) })
	r.deliverMu.Unlock()
	if !accepted {
		return // Engine closed: not accepted, so not acknowledged
	}
	a.stats.received(len(payload))
	if reliable {
		a.ack(m)
	}
}

// ack owes the server an ack of m, a reliable message: soon for a user
// message, whose sender waits for it, lazily for a broadcast.
func (a *attempt) ack(m *pb.Message) {
	if m.Broadcast {
		a.owed.AckLazy(m.From, m.MsgId, len(m.Payload))
		return
	}
	a.owed.Ack(m.From, m.MsgId)
}

// seenKey names a sending Engine.
type seenKey struct {
	from     string
	instance uint64
}

// seenBeforeLocked reports whether the reliable message id from (from,
// instance) was delivered already, and notes it if not. Messages from one
// sender on the reliable channel arrive in ID order, so the highest ID
// delivered tells. r.deliverMu is held.
func (r *Room) seenBeforeLocked(from string, instance uint64, id int64) bool {
	if instance == 0 {
		return false // a sender that does not say which Engine it is
	}
	k := seenKey{from, instance}
	if id <= r.seen[k] {
		return true
	}
	if r.seen == nil {
		r.seen = make(map[seenKey]int64)
	}
	r.seen[k] = id
	return false
}

// resend sends again, in ID order, the packets of the sends that moved to
// attempt a in a rejoin (and those made while it rejoined), with flow
// control, until ctx ends. It runs with a.sendMu held, before the room
// reports it is back.
func (a *attempt) resend(ctx context.Context) {
	e := a.r.e
	a.r.mu.Lock()
	x := a.rtc
	a.r.mu.Unlock()
	for _, k := range e.out.resendable(a) {
		if k.ps.book != nil {
			k.ps.book.Expect(k.ps.to, k.id)
		}
		if err := x.writer(k.ps.ch).Write(ctx, a.r.handle, k.ps.packet); err != nil {
			// Kept: the next rejoin sends it, or a's end fails it.
			e.log.Debug("resend", zap.String("room", a.roomID), zap.Error(err))
			e.out.keep(k.id, k.ps.packet, true)
		}
	}
}

// msgState is an attempt's messaging state: the send lock, the reliable
// messages awaiting acks, the acks to send, and the counters of RoomStats.
type msgState struct {
	sendMu  sync.Mutex // held to assign an ID and write, so IDs rise in write order
	unacked acks.Book  // sent reliable user messages awaiting acks, by receiver
	owed    acks.Batcher
	stats   counters
}

// flushAcks sends the acks the attempt owes on its reliable channel, as
// one batch when there are several.
func (a *attempt) flushAcks(upTo map[string]int64) {
	a.r.mu.Lock()
	x := a.rtc
	a.r.mu.Unlock()
	if x == nil {
		return
	}
	if err := x.writer(transport.ChannelReliable).WriteAll(a.ctx, a.r.handle, ackPackets(upTo)...); err != nil {
		a.r.e.log.Debug("send acks", zap.String("room", a.roomID), zap.Error(err))
	}
}

// owedOn takes the acks the attempt owes, for a packet about to go on
// channel ch, if that is the channel acks go on and they are lazy ones
// (broadcasts'); else nil.
func (a *attempt) owedOn(ch int) map[string]int64 {
	if ch != transport.ChannelReliable {
		return nil
	}
	return a.owed.TakeLazy()
}

// ackPackets encodes the acks upTo as packets, one per sender.
func ackPackets(upTo map[string]int64) [][]byte {
	ps := make([][]byte, 0, len(upTo))
	for peer, id := range upTo {
		ps = append(ps, ackPacket(peer, id))
	}
	return ps
}

// counters are the message counters of RoomStats.
type counters struct {
	sentMessages, receivedMessages, sentBytes, receivedBytes atomic.Int64
}

func (c *counters) sent(n int) {
	c.sentMessages.Add(1)
	c.sentBytes.Add(int64(n))
}

func (c *counters) received(n int) {
	c.receivedMessages.Add(1)
	c.receivedBytes.Add(int64(n))
}
