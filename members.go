package parley

import (
	"maps"
	"slices"

	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// A Room keeps the members the server told it of (attempt.members) and
// tells its handler of each change in order. A big room's changes come in
// batches (a RoomJoined list, a Presence frame): a batch is one event of
// the Engine's dispatcher, not one per member, and its calls find the
// room's handler as it is when each runs, as separate events would.

// memberEvent is one OnUserJoined, or one OnUserLeave when left is set.
type memberEvent struct {
	user   UserInfo
	left   bool
	reason UserOfflineReason
}

// call calls h's method for ev.
func (ev memberEvent) call(h RoomEventHandler) {
	if ev.left {
		h.OnUserLeave(ev.user.UserID, ev.reason)
	} else {
		h.OnUserJoined(ev.user)
	}
}

// memberEvents returns an event that calls, in order, the handler's
// method for each of evs: h for the first, then the room's handler as it
// is at each call (a handler may replace itself).
func (r *Room) memberEvents(evs []memberEvent) func(h RoomEventHandler) {
	return func(h RoomEventHandler) {
		for i, ev := range evs {
			if i > 0 {
				h = r.handlerNow()
			}
			ev.call(h)
		}
	}
}

// userJoinedLocked records that m joined.
func (a *attempt) userJoinedLocked(m *pb.Member) memberEvent {
	u := UserInfo{UserID: m.GetUserId(), ExtraInfo: m.GetExtraInfo()}
	a.members[u.UserID] = u.ExtraInfo
	return memberEvent{user: u}
}

// userLeftLocked records that a member left.
func (a *attempt) userLeftLocked(l *pb.UserLeft) memberEvent {
	id := l.GetUserId()
	delete(a.members, id)
	return memberEvent{user: UserInfo{UserID: id}, left: true, reason: UserOfflineReason(l.GetReason())}
}

// presenceLocked records a Presence frame's changes, in order, each as
// its own UserJoined or UserLeft would be.
func (a *attempt) presenceLocked(p *pb.Presence) []memberEvent {
	evs := make([]memberEvent, 0, len(p.GetChanges()))
	for _, c := range p.GetChanges() {
		switch c := c.Change.(type) {
		case *pb.PresenceChange_Joined:
			evs = append(evs, a.userJoinedLocked(c.Joined))
		case *pb.PresenceChange_Left:
			evs = append(evs, a.userLeftLocked(c.Left))
		}
	}
	return evs
}

// listLocked records the members a first join finds.
func (a *attempt) listLocked(list []*pb.Member) []memberEvent {
	if len(a.members) == 0 {
		a.members = make(map[string]string, len(list))
	}
	evs := make([]memberEvent, len(list))
	for i, m := range list {
		evs[i] = a.userJoinedLocked(m)
	}
	return evs
}

// reconcileLocked brings the members a rejoin knows (those the handler
// was told of) to the server's list: OnUserLeave with Dropped for each that
// left meanwhile (the reason was lost with the session), then OnUserJoined
// for each that came (and for one that came back with other extra info,
// after its leave). Members present throughout hear nothing, so the
// handler's picture of the room is exact again once state 0 is out.
func (a *attempt) reconcileLocked(list []*pb.Member) []memberEvent {
	now := make(map[string]string, len(list))
	for _, m := range list {
		now[m.UserId] = m.ExtraInfo
	}
	var evs []memberEvent
	for _, id := range slices.Sorted(maps.Keys(a.members)) {
		if extra, ok := now[id]; !ok || extra != a.members[id] {
			delete(a.members, id)
			evs = append(evs, memberEvent{user: UserInfo{UserID: id}, left: true, reason: UserOfflineReasonDropped})
		}
	}
	for _, m := range list {
		if _, ok := a.members[m.UserId]; !ok {
			u := UserInfo{UserID: m.UserId, ExtraInfo: now[m.UserId]}
			a.members[u.UserID] = u.ExtraInfo
			evs = append(evs, memberEvent{user: u})
		}
	}
	return evs
}
