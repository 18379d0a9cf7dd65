package signal

import (
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// A member of a big room spends most of its signaling on membership: while
// a room of 2,000 fills, each member decodes about 2,000 joins in Presence
// frames and, if it came late, a RoomJoined list as long. protobuf's
// generic decoder allocates every PresenceChange, its oneof wrapper and its
// Member one by one; decodeMembership reads those two frames with one
// allocation per kind of message and per string instead, and gives the
// same messages (FuzzDecodeMembership checks it against proto.Unmarshal).
// Anything it does not expect — another body, an unknown field, a body or
// a change's oneof given twice (which protobuf merges), a string that is
// not UTF-8 — it leaves to proto.Unmarshal, so it never decides what is
// malformed.

// Field numbers of signal.proto.
const (
	fieldFrameRequestID  = 1
	fieldFrameRoomJoined = 5
	fieldFramePresence   = 23
	fieldFrameSeq        = 25
	fieldFrameAcked      = 26

	fieldRoomJoinedRoom    = 1
	fieldRoomJoinedMembers = 2
	fieldRoomJoinedMore    = 3

	fieldPresenceRoom    = 1
	fieldPresenceChanges = 2

	fieldChangeJoined = 1
	fieldChangeLeft   = 2

	fieldMemberUserID    = 1
	fieldMemberExtraInfo = 2

	fieldUserLeftRoom   = 1
	fieldUserLeftUserID = 2
	fieldUserLeftReason = 3
)

// wireField is one varint or length-delimited field of a message.
type wireField struct {
	num protowire.Number
	typ protowire.Type
	v   uint64 // a varint's value
	b   []byte // a length-delimited field's bytes
}

func (w wireField) is(num protowire.Number, typ protowire.Type) bool {
	return w.num == num && w.typ == typ
}

// setString stores a length-delimited field in *dst, or with dst nil only
// checks it; it reports false for bytes that are not UTF-8, which
// protobuf refuses in a string field.
func (w wireField) setString(dst *string) bool {
	if dst == nil {
		return utf8.Valid(w.b)
	}
	*dst = string(w.b)
	return true
}

// eachField calls f with each field of the message m in order. It reports
// false, as soon as it knows, if m is not well formed, has a field that is
// neither a varint nor length-delimited, or f returns false.
func eachField(m []byte, f func(wireField) bool) bool {
	for len(m) > 0 {
		num, typ, n := protowire.ConsumeTag(m)
		if n < 0 {
			return false
		}
		m = m[n:]
		w := wireField{num: num, typ: typ}
		switch typ {
		case protowire.VarintType:
			w.v, n = protowire.ConsumeVarint(m)
		case protowire.BytesType:
			w.b, n = protowire.ConsumeBytes(m)
		default:
			return false
		}
		if n < 0 || !f(w) {
			return false
		}
		m = m[n:]
	}
	return true
}

// decodeMembership decodes b if it is a ServerFrame whose body is a
// Presence or a RoomJoined and that has nothing decodeMembership does not
// expect; else it reports false and b is for proto.Unmarshal.
func decodeMembership(b []byte) (*pb.ServerFrame, bool) {
	f := &pb.ServerFrame{}
	var body []byte
	var bodyNum protowire.Number
	ok := eachField(b, func(w wireField) bool {
		switch {
		case w.is(fieldFrameRequestID, protowire.VarintType):
			f.RequestId = w.v
		case w.is(fieldFrameSeq, protowire.VarintType):
			f.Seq = w.v
		case w.is(fieldFrameAcked, protowire.VarintType):
			f.Acked = w.v
		case (w.is(fieldFramePresence, protowire.BytesType) || w.is(fieldFrameRoomJoined, protowire.BytesType)) && body == nil:
			body, bodyNum = w.b, w.num
		default:
			return false
		}
		return true
	})
	if !ok || body == nil {
		return nil, false
	}
	if bodyNum == fieldFramePresence {
		p, ok := decodePresence(body)
		f.Body = &pb.ServerFrame_Presence{Presence: p}
		return f, ok
	}
	j, ok := decodeRoomJoined(body)
	f.Body = &pb.ServerFrame_RoomJoined{RoomJoined: j}
	return f, ok
}

// decodePresence decodes a Presence in two passes: the first checks it and
// counts its changes, the second fills messages allocated at once.
func decodePresence(b []byte) (*pb.Presence, bool) {
	var joined, left, empty int
	ok := eachField(b, func(w wireField) bool {
		switch {
		case w.is(fieldPresenceRoom, protowire.BytesType):
			return utf8.Valid(w.b)
		case w.is(fieldPresenceChanges, protowire.BytesType):
			switch readChange(w.b, nil, nil) {
			case fieldChangeJoined:
				joined++
			case fieldChangeLeft:
				left++
			case 0:
				empty++
			default:
				return false
			}
			return true
		}
		return false
	})
	if !ok {
		return nil, false
	}
	p := &pb.Presence{}
	n := joined + left + empty
	changes := make([]pb.PresenceChange, n)
	p.Changes = make([]*pb.PresenceChange, n)
	c := changeSlab{
		members: make([]pb.Member, joined),
		joined:  make([]pb.PresenceChange_Joined, joined),
		lefts:   make([]pb.UserLeft, left),
		left:    make([]pb.PresenceChange_Left, left),
	}
	i := 0
	eachField(b, func(w wireField) bool {
		if w.num == fieldPresenceRoom {
			p.RoomId = string(w.b)
			return true
		}
		p.Changes[i] = &changes[i]
		readChange(w.b, &c, &changes[i])
		i++
		return true
	})
	return p, true
}

// changeSlab holds the messages of a Presence's changes, allocated at once;
// readChange takes the next ones of the kind it reads.
type changeSlab struct {
	members []pb.Member
	joined  []pb.PresenceChange_Joined
	lefts   []pb.UserLeft
	left    []pb.PresenceChange_Left
}

// readChange reads a PresenceChange and returns which of its fields it
// has: fieldChangeJoined, fieldChangeLeft, 0 for none, or -1 for one it
// does not expect or more than one. With c nil it only checks; with c,
// which the first pass sized, it decodes into dst and c's next messages.
func readChange(b []byte, c *changeSlab, dst *pb.PresenceChange) protowire.Number {
	var which protowire.Number
	var inner []byte
	ok := eachField(b, func(w wireField) bool {
		if which != 0 || w.typ != protowire.BytesType || (w.num != fieldChangeJoined && w.num != fieldChangeLeft) {
			return false
		}
		which, inner = w.num, w.b
		return true
	})
	switch {
	case !ok:
		return -1
	case which == fieldChangeJoined:
		var m *pb.Member
		if c != nil {
			m, c.members = &c.members[0], c.members[1:]
			c.joined[0].Joined = m
			dst.Change, c.joined = &c.joined[0], c.joined[1:]
		}
		if !readMember(inner, m) {
			return -1
		}
	case which == fieldChangeLeft:
		var l *pb.UserLeft
		if c != nil {
			l, c.lefts = &c.lefts[0], c.lefts[1:]
			c.left[0].Left = l
			dst.Change, c.left = &c.left[0], c.left[1:]
		}
		if !readUserLeft(inner, l) {
			return -1
		}
	}
	return which
}

// decodeRoomJoined decodes a RoomJoined in two passes, as decodePresence.
func decodeRoomJoined(b []byte) (*pb.RoomJoined, bool) {
	n := 0
	ok := eachField(b, func(w wireField) bool {
		switch {
		case w.is(fieldRoomJoinedRoom, protowire.BytesType):
			return utf8.Valid(w.b)
		case w.is(fieldRoomJoinedMore, protowire.VarintType):
			return true
		case w.is(fieldRoomJoinedMembers, protowire.BytesType):
			n++
			return readMember(w.b, nil)
		}
		return false
	})
	if !ok {
		return nil, false
	}
	j := &pb.RoomJoined{Members: make([]*pb.Member, n)}
	members := make([]pb.Member, n)
	i := 0
	eachField(b, func(w wireField) bool {
		switch w.num {
		case fieldRoomJoinedRoom:
			j.RoomId = string(w.b)
		case fieldRoomJoinedMore:
			j.More = protowire.DecodeBool(w.v)
		default:
			j.Members[i] = &members[i]
			readMember(w.b, &members[i])
			i++
		}
		return true
	})
	return j, true
}

// readMember checks a Member, and decodes it into m unless m is nil.
func readMember(b []byte, m *pb.Member) bool {
	var id, extra *string
	if m != nil {
		id, extra = &m.UserId, &m.ExtraInfo
	}
	return eachField(b, func(w wireField) bool {
		switch {
		case w.is(fieldMemberUserID, protowire.BytesType):
			return w.setString(id)
		case w.is(fieldMemberExtraInfo, protowire.BytesType):
			return w.setString(extra)
		}
		return false
	})
}

// readUserLeft checks a UserLeft, and decodes it into l unless l is nil.
func readUserLeft(b []byte, l *pb.UserLeft) bool {
	var room, id *string
	if l != nil {
		room, id = &l.RoomId, &l.UserId
	}
	return eachField(b, func(w wireField) bool {
		switch {
		case w.is(fieldUserLeftRoom, protowire.BytesType):
			return w.setString(room)
		case w.is(fieldUserLeftUserID, protowire.BytesType):
			return w.setString(id)
		case w.is(fieldUserLeftReason, protowire.VarintType):
			if l != nil {
				l.Reason = int32(w.v)
			}
			return true
		}
		return false
	})
}
