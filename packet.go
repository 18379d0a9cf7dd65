package parley

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/parleyhq/parley/internal/transport"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// Every message a member sends and every one it receives crosses this
// codec of data-channel packets (packet.proto), so it works at the wire
// level. For a 64-byte message (BenchmarkPacketCodec): encoding 83 ns and
// one allocation, against protobuf's 323 ns and three; decoding 229 ns and
// three, against 408 ns and five.
//
// messagePacket and ackPacket write what proto.Marshal writes (fields in
// number order, zero values left out; FuzzEncodePacket). decodePacket
// reads the packets the server sends with one allocation per packet
// besides the payload and the strings, and leaves anything it does not
// expect — an unknown field, a field of the wrong wire type, a body given
// twice (which protobuf merges), a string that is not UTF-8, a batch in a
// batch — to proto.Unmarshal, so it never decides what is malformed
// (FuzzDecodePacket).

// appendMessagePacket appends the encoding of Packet{message: m} to dst.
func appendMessagePacket(dst []byte, m *pb.Message) []byte {
	n := messageSize(m)
	dst = protowire.AppendTag(dst, transport.FieldPacketMessage, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(n))
	dst = appendVarintField(dst, transport.FieldMessageID, uint64(m.MsgId))
	dst = appendBytesField(dst, transport.FieldMessageTo, m.To)
	dst = appendBytesField(dst, transport.FieldMessageFrom, m.From)
	dst = appendVarintField(dst, transport.FieldMessageBroadcast, protowire.EncodeBool(m.Broadcast))
	dst = appendVarintField(dst, transport.FieldMessageBinary, protowire.EncodeBool(m.Binary))
	dst = appendBytesField(dst, transport.FieldMessagePayload, m.Payload)
	return appendVarintField(dst, transport.FieldMessageInstance, m.SenderInstance)
}

// messagePacket encodes Packet{message: m} into a slice of its own, sized
// to fit.
func messagePacket(m *pb.Message) []byte {
	n := messageSize(m)
	return appendMessagePacket(make([]byte, 0, 1+protowire.SizeVarint(uint64(n))+n), m)
}

// messageSize is the size of m's encoding.
func messageSize(m *pb.Message) int {
	return varintFieldSize(uint64(m.MsgId)) +
		bytesFieldSize(len(m.To)) +
		bytesFieldSize(len(m.From)) +
		varintFieldSize(protowire.EncodeBool(m.Broadcast)) +
		varintFieldSize(protowire.EncodeBool(m.Binary)) +
		bytesFieldSize(len(m.Payload)) +
		varintFieldSize(m.SenderInstance)
}

// ackPacket encodes Packet{ack: {peer, up_to}}.
func ackPacket(peer string, upTo int64) []byte {
	n := bytesFieldSize(len(peer)) + varintFieldSize(uint64(upTo))
	b := make([]byte, 0, 1+protowire.SizeVarint(uint64(n))+n)
	b = protowire.AppendTag(b, transport.FieldPacketAck, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(n))
	b = appendBytesField(b, transport.FieldAckPeer, peer)
	return appendVarintField(b, transport.FieldAckUpTo, uint64(upTo))
}

// appendVarintField appends a varint field, unless v is its zero value.
func appendVarintField(dst []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return dst
	}
	dst = protowire.AppendTag(dst, num, protowire.VarintType)
	return protowire.AppendVarint(dst, v)
}

// appendBytesField appends a length-delimited field, unless v is empty.
func appendBytesField[T string | []byte](dst []byte, num protowire.Number, v T) []byte {
	if len(v) == 0 {
		return dst
	}
	dst = protowire.AppendTag(dst, num, protowire.BytesType)
	dst = protowire.AppendVarint(dst, uint64(len(v)))
	return append(dst, v...)
}

func varintFieldSize(v uint64) int {
	if v == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(v)
}

func bytesFieldSize(n int) int {
	if n == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(uint64(n)) + n
}

// decodePacket decodes a data-channel message from the server: a packet
// or a batch of them.
func decodePacket(b []byte) (*pb.Packet, error) {
	if p, ok := fastPacket(b, true); ok {
		return p, nil
	}
	p := new(pb.Packet)
	if err := proto.Unmarshal(b, p); err != nil {
		return nil, err
	}
	return p, nil
}

// The packets decodePacket builds, each with its body in one allocation.
type (
	messageSlab struct {
		p    pb.Packet
		body pb.Packet_Message
		m    pb.Message
	}
	ackSlab struct {
		p    pb.Packet
		body pb.Packet_Ack
		a    pb.Ack
	}
	resultSlab struct {
		p    pb.Packet
		body pb.Packet_Result
		r    pb.Result
	}
)

// fastPacket decodes b if it is a packet, or with batch a batch of
// packets, that has nothing fastPacket does not expect; else it reports
// false and b is for proto.Unmarshal.
func fastPacket(b []byte, batch bool) (*pb.Packet, bool) {
	var (
		room    uint64
		body    []byte
		bodyNum protowire.Number
		entries [][]byte
	)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false
		}
		b = b[n:]
		switch {
		case num == transport.FieldPacketRoom && typ == protowire.VarintType:
			room, n = protowire.ConsumeVarint(b)
		case num >= transport.FieldPacketMessage && num <= transport.FieldPacketResult && typ == protowire.BytesType && body == nil:
			body, n = protowire.ConsumeBytes(b)
			bodyNum = num
		case num == transport.FieldPacketBatch && typ == protowire.BytesType && batch:
			var e []byte
			e, n = protowire.ConsumeBytes(b)
			entries = append(entries, e)
		default:
			return nil, false
		}
		if n < 0 {
			return nil, false
		}
		b = b[n:]
	}
	if entries != nil {
		if body != nil {
			return nil, false // protobuf keeps both; the caller drops such a packet
		}
		p := &pb.Packet{Room: uint32(room), Batch: make([]*pb.Packet, len(entries))}
		for i, e := range entries {
			q, ok := fastPacket(e, false)
			if !ok {
				return nil, false
			}
			p.Batch[i] = q
		}
		return p, true
	}
	switch bodyNum {
	case transport.FieldPacketMessage:
		s := new(messageSlab)
		if !readMessage(body, &s.m) {
			return nil, false
		}
		s.body.Message = &s.m
		s.p.Body, s.p.Room = &s.body, uint32(room)
		return &s.p, true
	case transport.FieldPacketAck:
		s := new(ackSlab)
		if !readAck(body, &s.a) {
			return nil, false
		}
		s.body.Ack = &s.a
		s.p.Body, s.p.Room = &s.body, uint32(room)
		return &s.p, true
	case transport.FieldPacketResult:
		s := new(resultSlab)
		if !readResult(body, &s.r) {
			return nil, false
		}
		s.body.Result = &s.r
		s.p.Body, s.p.Room = &s.body, uint32(room)
		return &s.p, true
	}
	return &pb.Packet{Room: uint32(room)}, true
}

// eachScalar calls f with each field of the message b in order: a varint's
// value, or a length-delimited field's bytes. It reports false, as soon as
// it knows, if b is not well formed, has a field of another wire type, or
// f returns false.
func eachScalar(b []byte, f func(num protowire.Number, typ protowire.Type, v uint64, s []byte) bool) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		var v uint64
		var s []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			s, n = protowire.ConsumeBytes(b)
		default:
			return false
		}
		if n < 0 || !f(num, typ, v, s) {
			return false
		}
		b = b[n:]
	}
	return true
}

// readMessage decodes a Message into m; the payload is copied, as
// protobuf copies it, since b is the reader's buffer.
func readMessage(b []byte, m *pb.Message) bool {
	var to, from, payload []byte
	ok := eachScalar(b, func(num protowire.Number, typ protowire.Type, v uint64, s []byte) bool {
		switch {
		case typ == protowire.VarintType && num == transport.FieldMessageID:
			m.MsgId = int64(v)
		case typ == protowire.VarintType && num == transport.FieldMessageBroadcast:
			m.Broadcast = protowire.DecodeBool(v)
		case typ == protowire.VarintType && num == transport.FieldMessageBinary:
			m.Binary = protowire.DecodeBool(v)
		case typ == protowire.VarintType && num == transport.FieldMessageInstance:
			m.SenderInstance = v
		case typ == protowire.BytesType && num == transport.FieldMessageTo:
			to = s
		case typ == protowire.BytesType && num == transport.FieldMessageFrom:
			from = s // the server appends its own: the last one wins
		case typ == protowire.BytesType && num == transport.FieldMessagePayload:
			payload = s
		default:
			return false
		}
		return true
	})
	if !ok || !utf8.Valid(to) || !utf8.Valid(from) {
		return false
	}
	m.To, m.From = string(to), string(from)
	if payload != nil {
		m.Payload = append([]byte{}, payload...)
	}
	return true
}

func readAck(b []byte, a *pb.Ack) bool {
	var peer []byte
	ok := eachScalar(b, func(num protowire.Number, typ protowire.Type, v uint64, s []byte) bool {
		switch {
		case typ == protowire.BytesType && num == transport.FieldAckPeer:
			peer = s
		case typ == protowire.VarintType && num == transport.FieldAckUpTo:
			a.UpTo = int64(v)
		default:
			return false
		}
		return true
	})
	if !ok || !utf8.Valid(peer) {
		return false
	}
	a.Peer = string(peer)
	return true
}

func readResult(b []byte, r *pb.Result) bool {
	return eachScalar(b, func(num protowire.Number, typ protowire.Type, v uint64, _ []byte) bool {
		switch {
		case typ == protowire.VarintType && num == transport.FieldResultID:
			r.MsgId = int64(v)
		case typ == protowire.VarintType && num == transport.FieldResultCode:
			r.Code = int32(v)
		default:
			return false
		}
		return true
	})
}
