package server

import (
	"time"

	"google.golang.org/protobuf/proto"

	clusterpb "github.com/parleyhq/parley/proto/parley/cluster/v1"
)

// A node that leaves its cluster gracefully (Shutdown) says Bye, with its
// members by room (Bye.rooms), before its clients hear GoAway. From then
// on, if it knows another live node, it relays none of its members'
// reliable messages (Server.leaving, member.relay): their SDKs keep each
// until its result and send it again from the node they move to, in order
// with the rest. A node alone in its cluster relays them as a single node
// does: its members have nowhere to move.
//
// The other nodes keep the leaving node's members as moving proxies for
// the grace period: the proxies they had (nodeDownLocked), and, in a room
// they have no member of yet, a record of them (movers), so that when a
// member of the leaving node moves there first and the room opens, it
// finds the others there, moving, and what it sends them is kept for
// their next node (moveTo), not answered NoReceiver. Two members of the
// leaving node then lose nothing between them, whichever moves first.

// byeSlack is room left in a Bye for the envelope around it (its node ID)
// and NATS's own framing.
const byeSlack = 512

// fitBye drops rooms from the end of bye until it fits in max bytes (NATS's
// max payload, 1 MiB by default: about 20,000 members): a Bye that NATS
// refused would leave the others to find this node dead, and drop its
// members. It reports whether every room fit. Rooms left out lose only
// what Bye.rooms adds: their members are still moving where a node had
// their room already.
func fitBye(bye *clusterpb.Bye, max int64) bool {
	all := true
	for len(bye.Rooms) > 0 && int64(proto.Size(bye)+byeSlack) > max {
		bye.Rooms = bye.Rooms[:len(bye.Rooms)/2]
		all = false
	}
	return all
}

// moversRoom is what a node that left said of one room's members.
type moversRoom struct {
	node    string
	members []*clusterpb.Member
	until   time.Time // the end of the grace period
}

// movingRooms lists this node's members by room, for its Bye.
func (s *Server) movingRooms() []*clusterpb.MovingRoom {
	var out []*clusterpb.MovingRoom
	for _, r := range s.roomList() {
		if r.remote == nil {
			continue
		}
		r.mu.Lock()
		ro := r.rosterLocked()
		r.mu.Unlock()
		if len(ro.Members) > 0 {
			out = append(out, &clusterpb.MovingRoom{App: r.key.app, Room: r.id, Members: ro.Members})
		}
	}
	return out
}

// keepMovers records the members of node, which left, by room, for rooms
// opened here within the grace period.
func (s *Server) keepMovers(node string, rooms []*clusterpb.MovingRoom) {
	now := s.cfg.Clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, rs := range s.movers {
		s.movers[k] = dropExpired(rs, now)
		if len(s.movers[k]) == 0 {
			delete(s.movers, k)
		}
	}
	for _, mr := range rooms {
		if _, ok := s.cfg.Apps[mr.App]; !ok || len(mr.Members) == 0 {
			continue
		}
		if s.movers == nil {
			s.movers = make(map[roomKey][]moversRoom)
		}
		k := roomKey{mr.App, mr.Room}
		s.movers[k] = append(s.movers[k], moversRoom{node: node, members: mr.Members, until: now.Add(s.cfg.GracePeriod)})
	}
}

// moversOf returns the records of key's room that are still in their grace
// period.
func (s *Server) moversOf(key roomKey) []moversRoom {
	s.mu.Lock()
	defer s.mu.Unlock()
	rs := dropExpired(s.movers[key], s.cfg.Clock.Now())
	if len(rs) == 0 {
		delete(s.movers, key)
		return nil
	}
	s.movers[key] = rs
	return rs
}

func dropExpired(rs []moversRoom, now time.Time) []moversRoom {
	kept := rs[:0]
	for _, mr := range rs {
		if now.Before(mr.until) {
			kept = append(kept, mr)
		}
	}
	return kept
}

// seedMovingLocked adds node's members of the room that the room does not
// know as moving proxies: each comes back unnoticed by joining anywhere
// within the grace period, or leaves as Dropped. Called with room.mu held.
func (x *remoteRoom) seedMovingLocked(node string, members []*clusterpb.Member) {
	r := x.r
	for _, pm := range members {
		if r.members[pm.GetUserId()] != nil {
			continue // known: here, or on a node that said so
		}
		x.joinLocked(node, pm)
		if p := r.members[pm.GetUserId()]; p != nil && p.node == node {
			r.movingLocked(p)
		}
	}
}
