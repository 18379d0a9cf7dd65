package transport

import (
	"errors"

	"google.golang.org/protobuf/encoding/protowire"
)

// The two fields of Packet (packet.proto) the transport writes itself, at
// the wire level, on packets it was handed already encoded: a Writer
// appends the room and coalesces packets into a batch without decoding
// them.
const (
	// FieldPacketBatch is the field number of Packet.batch: a batch is the
	// concatenation of (tag, length, packet) entries of it.
	FieldPacketBatch = 4
	// FieldPacketRoom is the field number of Packet.room: the room a
	// packet belongs to on the one PeerConnection an Engine shares among
	// its rooms (packet version 3).
	FieldPacketRoom = 5
)

// errPacketWire is what RoomOf returns for bytes that are not a protobuf
// message at the wire level.
var errPacketWire = errors.New("parley: malformed packet")

// AppendEntry appends p to batch as one entry of Packet.batch.
func AppendEntry(batch, p []byte) []byte {
	batch = protowire.AppendTag(batch, FieldPacketBatch, protowire.BytesType)
	batch = protowire.AppendVarint(batch, uint64(len(p)))
	return append(batch, p...)
}

// roomLen is the size of the room field AppendRoom appends.
func roomLen(room uint32) int {
	return 1 + protowire.SizeVarint(uint64(room))
}

// AppendRoom appends the encoded Packet.room field for room to p (varint
// field 5). It appends the field even for room 0, which protobuf would
// omit, so that it always overrides a room already in p: the last one
// wins.
func AppendRoom(p []byte, room uint32) []byte {
	p = protowire.AppendTag(p, FieldPacketRoom, protowire.VarintType)
	return protowire.AppendVarint(p, uint64(room))
}

// RoomOf returns the room field of the encoded packet p (the last one
// wins, as in protobuf; 0 when absent), and an error when p is not
// well-formed at the wire level: a bad tag, varint or length, or field 5
// with a wire type other than varint. A room above 2^32-1 is truncated to
// its low 32 bits, as protobuf decodes a uint32, so RoomOf and the
// generated code agree on every packet.
//
// It reads only the top level of p: the entries of a batch carry their
// own rooms (RoomOf of each entry), the batch itself none.
func RoomOf(p []byte) (uint32, error) {
	var room uint32
	for len(p) > 0 {
		num, typ, n := protowire.ConsumeTag(p)
		if n < 0 {
			return 0, errPacketWire
		}
		p = p[n:]
		if num == FieldPacketRoom {
			if typ != protowire.VarintType {
				return 0, errPacketWire
			}
			v, n := protowire.ConsumeVarint(p)
			if n < 0 {
				return 0, errPacketWire
			}
			room, p = uint32(v), p[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, p)
		if n < 0 {
			return 0, errPacketWire
		}
		p = p[n:]
	}
	return room, nil
}
