package server

import (
	"errors"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/parleyhq/parley/internal/transport"
)

// The relay reads the routing fields of a Message where they lie in the
// read buffer and forwards the message's own bytes, stamped with the
// sender, without decoding or copying the payload: pion copies once into
// its SCTP chunks, and that is the only copy a relayed payload costs. A
// broadcast is stamped once and the same bytes go to every receiver.

// readHeadroom is the free space the read loop leaves in front of each
// packet, and readTailroom behind it, so a Message can be re-framed in
// place: a packet tag and length before, the sender's From field after.
const (
	readHeadroom = 16
	readTailroom = 3 + 2 + 128 // tag, length, longest user ID
)

var errWire = errors.New("malformed packet")

// wireMessage is a Message found in a packet buffer.
type wireMessage struct {
	off, end   int // the Message's bytes are buf[off:end]
	id         int64
	to         []byte // aliases the buffer
	broadcast  bool
	payloadLen int
}

// wirePacket is a Packet, not a batch, found in a packet buffer.
type wirePacket struct {
	field            protowire.Number // which body: transport.FieldPacketMessage, Ack or Result
	bodyOff, bodyEnd int              // the body's bytes are buf[bodyOff:bodyEnd]
	room             uint32           // Packet.room: the client's handle of the room
}

// scanPacket finds the body and the room of a Packet in buf[off:end].
// Like protobuf, the last body field wins, and the last room field. A
// packet without a body, or without a room, is malformed.
func scanPacket(buf []byte, off, end int) (wirePacket, error) {
	var p wirePacket
	b := buf[off:end]
	pos := off
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return p, errWire
		}
		b, pos = b[n:], pos+n
		switch {
		case num == transport.FieldPacketBatch:
			return p, errWire // a batch has no place in a packet scanned here
		case num == transport.FieldPacketRoom:
			if typ != protowire.VarintType {
				return p, errWire
			}
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return p, errWire
			}
			p.room = uint32(v)
			b, pos = b[n:], pos+n
			continue
		case typ == protowire.BytesType && num >= transport.FieldPacketMessage && num <= transport.FieldPacketResult:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return p, errWire
			}
			p.field, p.bodyOff, p.bodyEnd = num, pos+n-len(v), pos+n
			b, pos = b[n:], pos+n
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return p, errWire
		}
		b, pos = b[n:], pos+n
	}
	if p.field == 0 || p.room == 0 {
		return p, errWire
	}
	return p, nil
}

// eachBatched calls f with each packet of the batch p, in order, and
// reports whether p is a batch. A batch holds nothing but its entries
// (packet.proto): one with a body too, or an entry of the wrong wire type,
// is malformed, and then f is not called at all. An entry is checked
// when it is handled (onOne), so a bad entry costs only itself.
func eachBatched(p []byte, f func([]byte)) (bool, error) {
	batched, body := false, false
	for b := p; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false, errWire
		}
		b = b[n:]
		switch {
		case num == transport.FieldPacketBatch && typ != protowire.BytesType:
			return false, errWire
		case num == transport.FieldPacketBatch:
			batched = true
		case num >= transport.FieldPacketMessage && num <= transport.FieldPacketResult:
			body = true
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return false, errWire
		}
		b = b[n:]
	}
	switch {
	case !batched:
		return false, nil
	case body:
		return true, errWire
	}
	for b := p; len(b) > 0; { // well-formed: checked above
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		if num == transport.FieldPacketBatch {
			v, n := protowire.ConsumeBytes(b)
			f(v)
			b = b[n:]
			continue
		}
		b = b[protowire.ConsumeFieldValue(num, typ, b):]
	}
	return true, nil
}

// scanMessage reads the routing fields of the Message in buf[off:end].
func scanMessage(buf []byte, off, end int) (wireMessage, error) {
	m := wireMessage{off: off, end: end}
	b := buf[off:end]
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return m, errWire
		}
		b = b[n:]
		switch {
		case num == transport.FieldMessageID && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return m, errWire
			}
			m.id, b = int64(v), b[n:]
		case (num == transport.FieldMessageBroadcast || num == transport.FieldMessageBinary) && typ == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return m, errWire
			}
			if num == transport.FieldMessageBroadcast {
				m.broadcast = v != 0
			}
			b = b[n:]
		case (num == transport.FieldMessageTo || num == transport.FieldMessageFrom || num == transport.FieldMessagePayload) && typ == protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return m, errWire
			}
			// proto3 strings must be UTF-8, or the receiver cannot decode
			// what the relay forwards.
			if num != transport.FieldMessagePayload && !utf8.Valid(v) {
				return m, errWire
			}
			switch num {
			case transport.FieldMessageTo:
				m.to = v
			case transport.FieldMessagePayload:
				m.payloadLen = len(v)
			}
			b = b[n:]
		case num >= transport.FieldMessageID && num <= transport.FieldMessagePayload:
			return m, errWire // a known field with the wrong wire type
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return m, errWire
			}
			b = b[n:]
		}
	}
	return m, nil
}

// stamp re-frames the Message at buf[m.off:m.end] in place as a Packet
// whose Message ends with from (an encoded From field; a later field wins
// over any From the sender wrote) and returns the Packet's bytes. buf must
// have readHeadroom bytes before the packet it was read into and
// readTailroom after.
func stamp(buf []byte, m wireMessage, from []byte) []byte {
	bodyLen := m.end - m.off + len(from)
	var hdr [readHeadroom]byte
	h := protowire.AppendTag(hdr[:0], transport.FieldPacketMessage, protowire.BytesType)
	h = protowire.AppendVarint(h, uint64(bodyLen))
	start := m.off - len(h)
	copy(buf[start:], h)
	copy(buf[m.end:], from)
	return buf[start : m.end+len(from)]
}

// fromField is the encoded From field for userID.
func fromField(userID string) []byte {
	b := protowire.AppendTag(nil, transport.FieldMessageFrom, protowire.BytesType)
	return protowire.AppendString(b, userID)
}
