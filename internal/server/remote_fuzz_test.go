package server

import (
	"testing"

	"google.golang.org/protobuf/proto"

	clusterpb "github.com/parleyhq/parley/proto/parley/cluster/v1"
)

// FuzzClusterEnvelope feeds what another node might send (any bytes on a
// room's or a node's subject) to the decoder and the handlers that apply
// it to a room: nothing panics, a decoded envelope has a body and a valid
// node, and the room's books stay consistent (its proxy count is the
// number of proxies in it).
func FuzzClusterEnvelope(f *testing.F) {
	for _, env := range []*clusterpb.Envelope{
		{Node: "n2", Body: &clusterpb.Envelope_Join{Join: &clusterpb.RoomJoin{Room: "r", Member: &clusterpb.Member{UserId: "bob", Joined: 5}, Ver: 1}}},
		{Node: "n2", Body: &clusterpb.Envelope_Leave{Leave: &clusterpb.RoomLeave{Room: "r", UserId: "bob", Joined: 5, Ver: 2}}},
		{Node: "n2", Body: &clusterpb.Envelope_Leave{Leave: &clusterpb.RoomLeave{Room: "r", UserId: "bob", Joined: 5, Ver: 3, Moving: true}}},
		{Node: "n3", Body: &clusterpb.Envelope_Join{Join: &clusterpb.RoomJoin{Room: "r", Member: &clusterpb.Member{UserId: "bob", Joined: 9}, Ver: 1}}},
		{Node: "n2", Body: &clusterpb.Envelope_Delivery{Delivery: &clusterpb.Delivery{Room: "r", To: "bob", From: "x", MsgId: 1, Packet: []byte{0x0a, 0x00}}}},
		{Node: "n2", Body: &clusterpb.Envelope_Delivery{Delivery: &clusterpb.Delivery{Room: "r", From: "x", MsgId: 2, Packet: []byte{0x0a, 0x00}}}},
		{Node: "n2", Body: &clusterpb.Envelope_Delivery{Delivery: &clusterpb.Delivery{Room: "r", From: "x", MsgId: 3, Packet: []byte{0x0a, 0x00}, KeptFor: []string{"bob", ""}}}},
		{Node: "n2", Body: &clusterpb.Envelope_Ack{Ack: &clusterpb.DeliveryAck{Room: "r", Sender: "x", Receiver: "bob", UpTo: 3}}},
		{Node: "n2", Body: &clusterpb.Envelope_Heartbeat{Heartbeat: &clusterpb.Heartbeat{IntervalMs: 1000}}},
		{Node: "n2", Body: &clusterpb.Envelope_Bye{Bye: &clusterpb.Bye{GraceMs: 1000, Rooms: []*clusterpb.MovingRoom{
			{App: testAppID, Room: "r", Members: []*clusterpb.Member{{UserId: "bob", Joined: 5}, {UserId: "bad id!"}}},
			{App: "not-an-app", Room: "r", Members: []*clusterpb.Member{{UserId: "carol"}}},
		}}}},
	} {
		b, _ := proto.Marshal(env)
		f.Add(b)
	}
	f.Add([]byte{0x0a, 0xff})
	f.Add([]byte{})
	s, err := New(Config{Apps: map[string]string{testAppID: testAppKey}, NATS: "nats://127.0.0.1:1", NodeID: "n1"})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		env, err := decodeEnvelope(b)
		if err != nil {
			return
		}
		if env.Body == nil || checkNodeID(env.Node) != nil {
			t.Fatal("decoded an envelope without a body or a valid node")
		}
		r := &room{srv: s, key: roomKey{testAppID, "r"}, id: "r", members: make(map[string]*member)}
		r.remote = newRemoteRoom(r, s.cluster)
		s.mu.Lock()
		s.rooms[r.key] = r
		s.mu.Unlock()
		defer func() {
			s.mu.Lock()
			delete(s.rooms, r.key)
			s.movers = nil
			s.mu.Unlock()
		}()
		for range 2 { // twice: the second time it is old news
			r.remote.onRoomMessage(env, nil)
			s.onNodeMessage(testAppID, env, nil)
			if bye := env.GetBye(); bye != nil {
				s.nodeDown(env.Node, true, bye.GetRooms())
				movers := s.moversOf(r.key)
				r.mu.Lock()
				for _, mr := range movers {
					r.remote.seedMovingLocked(mr.node, mr.members)
				}
				r.mu.Unlock()
			}
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		n := 0
		for _, m := range r.members {
			if m.node != "" {
				n++
			}
		}
		if n != r.remote.proxies {
			t.Fatalf("%d proxies in the room, %d counted", n, r.remote.proxies)
		}
	})
}
