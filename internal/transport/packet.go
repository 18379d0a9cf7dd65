package transport

import "google.golang.org/protobuf/encoding/protowire"

// Field numbers of packet.proto, for the codecs that work at the wire
// level: the SDK's (packet.go), the relay's (internal/server/wire.go), and
// the transport's own, which appends the room and coalesces packets into a
// batch without decoding them.
const (
	FieldPacketMessage = 1
	FieldPacketAck     = 2
	FieldPacketResult  = 3
	// FieldPacketBatch is the field number of Packet.batch: a batch is the
	// concatenation of (tag, length, packet) entries of it.
	FieldPacketBatch = 4
	// FieldPacketRoom is the field number of Packet.room: the room a
	// packet belongs to on the one PeerConnection an Engine shares among
	// its rooms (packet version 3).
	FieldPacketRoom = 5

	FieldMessageID        = 1
	FieldMessageTo        = 2
	FieldMessageFrom      = 3
	FieldMessageBroadcast = 4
	FieldMessageBinary    = 5
	FieldMessagePayload   = 6
	FieldMessageInstance  = 7

	FieldAckPeer = 1
	FieldAckUpTo = 2

	FieldResultID   = 1
	FieldResultCode = 2
)

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
