package server

import (
	"math"
	"slices"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// Presence of a big room: what a membership change costs under room.mu is
// O(1). A change is numbered (presence.ver) and queued; the room's
// presence worker, a goroutine that runs while there is something to
// send, tells the members about it outside the lock, in batches: the
// first change of a quiet room at once, the ones that come while a batch
// is recent (presenceInterval) together in the next. A joiner's member
// list (RoomJoined) is also made and sent by the worker, from a snapshot
// of the roster taken in O(1), so that a join does not walk the room under
// its lock.
//
// Order. Each member has a cursor: the version it has been told of (by
// its list, or by the changes sent to it since). The worker lists a
// joiner as of the version of its snapshot and sends each listed member
// the changes after its cursor, so a member hears state 0, its list, then
// every later change once, none from before its list. One worker per room
// sends all of it, so nothing of the room's presence overtakes anything
// earlier.

// presenceInterval is the shortest time between two batches of changes
// of a room of n members: 5 ms, and 250 µs more per member, up to 500 ms.
// A lone change goes at once; changes within it of the last batch wait for
// its end, together. So a burst of joins costs a room at most about 4,000
// presence frames a second, whatever its size, and a small room's changes
// wait little. Member lists go at once.
//
// Each frame costs a write at the server and a read, a decode and part of
// an ack at the member, so the frame rate is what a burst of joins to a
// big room costs: at 20 µs a member and 50 ms at most (about 50,000 frames
// a second), the joins of a room of 2,000 took 32 s with the server at 67 %
// of its core; at 100 µs, 26 s and 46 % (parley bench, docs/performance.md).
// Once a joiner's list no longer waited for the batch, 250 µs (500 ms at
// most) took them from 8.7-10.2 s to 7.9 s.
func presenceInterval(n int) time.Duration {
	return min(5*time.Millisecond+time.Duration(n)*250*time.Microsecond, maxPresenceInterval)
}

// maxPresenceInterval bounds how long a change waits for its batch.
const maxPresenceInterval = 500 * time.Millisecond

// maxPresenceFrame bounds a Presence frame as maxRoomJoinedFrame does a
// RoomJoined page.
const maxPresenceFrame = maxRoomJoinedFrame

// roster is the room's active and suspended members in the order they
// became active, for snapshots taken in O(1): the list is only appended
// to, and replaced, not changed, when it is compacted, so a slice of it
// taken under room.mu stays valid after. A member that left stays in it,
// with its leftVer set, until the next compaction.
type roster struct {
	list []*member // guarded by room.mu
	dead int       // members in list that left; guarded by room.mu
}

// change is one membership change of a room, as the others are told.
type change struct {
	ver    uint64
	joined *member // the member that became active; nil for a departure
	left   string  // the user ID that left
	reason int32   // why it left
}

// presence is a room's queue of changes and joiners for its worker; its
// fields are guarded by room.mu.
type presence struct {
	ver     uint64        // the version of the last change (joins and leaves, told or not)
	changes []change      // changes not yet sent to every member
	joiners []*member     // members to send their list to (activated or restarted)
	running bool          // the worker is running
	wake    chan struct{} // cap 1: a joiner for a worker waiting out the interval; made by the first kick
	last    time.Time     // when the worker last sent a batch of changes
}

// presentAt reports whether m was in the room at presence version ver.
func (m *member) presentAt(ver uint64) bool {
	if m.joinVer > ver {
		return false
	}
	left := m.leftVer.Load()
	return left == 0 || left > ver
}

// joinedLocked records m's arrival: it is in the roster and the others
// will hear of it; m will get its list. Called with r.mu held.
func (r *room) joinedLocked(m *member) {
	r.pres.ver++
	m.joinVer = r.pres.ver
	r.roster.list = append(r.roster.list, m)
	r.pres.changes = append(r.pres.changes, change{ver: r.pres.ver, joined: m})
	if m.node == "" {
		r.listLocked(m)
	} else {
		r.kickLocked() // a proxy's node lists the room to it
	}
}

// listLocked has the worker send m the room's member list. Called with
// r.mu held.
func (r *room) listLocked(m *member) {
	r.pres.joiners = append(r.pres.joiners, m)
	if !r.pres.running {
		r.kickLocked()
		return
	}
	select {
	case r.pres.wake <- struct{}{}: // the worker may be waiting for the changes' interval
	default:
	}
}

// leftLocked records m's departure, told to the others with reason when
// notify is set. Called with r.mu held.
func (r *room) leftLocked(m *member, reason int32, notify bool) {
	r.pres.ver++
	m.leftVer.Store(r.pres.ver)
	r.roster.dead++
	if notify {
		r.pres.changes = append(r.pres.changes, change{ver: r.pres.ver, left: m.userID, reason: reason})
		r.kickLocked()
	}
	if l := len(r.roster.list); r.roster.dead > 32 && r.roster.dead*2 > l {
		// Amortized: a compaction follows at least as many departures as
		// the members it copies.
		live := make([]*member, 0, l-r.roster.dead+l/4)
		for _, o := range r.roster.list {
			if o.leftVer.Load() == 0 {
				live = append(live, o)
			}
		}
		r.roster.list, r.roster.dead = live, 0
	}
}

// kickLocked starts the presence worker unless it runs. Called with r.mu
// held, on behalf of a member that is not gone: its session holds the
// server's wait group above zero, so the worker can be counted in it.
func (r *room) kickLocked() {
	if r.pres.running {
		return
	}
	r.pres.running = true
	if r.pres.wake == nil {
		r.pres.wake = make(chan struct{}, 1)
	}
	r.srv.wg.Add(1)
	go r.presenceWorker()
}

// presenceWorker sends the room's queued lists and changes until there are
// none.
func (r *room) presenceWorker() {
	defer r.srv.wg.Done()
	var wait *time.Timer
	defer func() {
		if wait != nil {
			wait.Stop()
		}
	}()
	for {
		r.mu.Lock()
		joiners, wake := r.pres.joiners, r.pres.wake
		r.pres.joiners = nil
		now := time.Now()
		var changes []change
		due := r.pres.last.Add(presenceInterval(len(r.members))).Sub(now)
		if len(r.pres.changes) > 0 && (due <= 0 || r.srv.ctx.Err() != nil) {
			changes = r.pres.changes
			r.pres.changes = nil
			r.pres.last = now
		}
		if len(joiners) == 0 && len(changes) == 0 {
			if len(r.pres.changes) == 0 {
				r.pres.running = false
				r.mu.Unlock()
				return
			}
			r.mu.Unlock()
			// Changes wait for the interval; a new joiner does not: its
			// list goes at once, and its own arrival with the changes.
			if wait == nil {
				wait = time.NewTimer(due)
			} else {
				wait.Reset(due)
			}
			select {
			case <-wait.C:
			case <-wake:
				wait.Stop()
			case <-r.srv.ctx.Done():
			}
			continue
		}
		snap, ver := r.roster.list, r.pres.ver
		r.mu.Unlock()
		if len(joiners) > 0 {
			r.sendLists(joiners, snap, ver)
		}
		if len(changes) > 0 {
			r.sendChanges(changes, snap, ver)
		}
	}
}

// sendLists sends each of joiners the members present at ver (but
// itself), and moves its cursor to ver.
func (r *room) sendLists(joiners []*member, snap []*member, ver uint64) {
	present := make([]*member, 0, len(snap))
	for _, o := range snap {
		if o.presentAt(ver) {
			present = append(present, o)
		}
	}
	done := make(map[*member]bool, len(joiners))
	list := make([]*pb.Member, 0, len(present))
	for _, j := range joiners {
		if done[j] || !j.presentAt(ver) {
			continue // listed already in this round, or gone
		}
		done[j] = true
		list = list[:0]
		for _, o := range present {
			if o != j {
				list = append(list, o.pbInfo)
			}
		}
		j.sess.sendMu.Lock()
		if !j.quiet.Load() {
			r.sendMembersLocked(j.sess, list)
		}
		j.pcursor = ver
		j.sess.sendMu.Unlock()
	}
}

// sendChanges sends each member present at ver that has its list the
// changes after its cursor, up to ver, and moves its cursor to ver.
// Members with the same cursor (all but the ones listed since the last
// batch) get the same bytes, encoded once.
func (r *room) sendChanges(changes []change, snap []*member, ver uint64) {
	type encoded struct{ batches, singles [][]byte }
	cache := make(map[int]*encoded) // by the index of the first change to send
	for _, o := range snap {
		if o.pcursor == 0 || !o.presentAt(ver) {
			continue
		}
		i, _ := slices.BinarySearchFunc(changes, o.pcursor+1, func(c change, v uint64) int {
			switch {
			case c.ver < v:
				return -1
			case c.ver > v:
				return 1
			}
			return 0
		})
		o.pcursor = ver
		if i == len(changes) {
			continue
		}
		enc := cache[i]
		if enc == nil {
			enc = &encoded{}
			cache[i] = enc
		}
		var frames [][]byte
		if o.batches {
			if enc.batches == nil {
				enc.batches = r.presenceFrames(changes[i:])
			}
			frames = enc.batches
		} else {
			if enc.singles == nil {
				enc.singles = r.singleFrames(changes[i:])
			}
			frames = enc.singles
		}
		o.sess.sendMu.Lock()
		if !o.quiet.Load() {
			for _, b := range frames {
				o.sess.sendEncodedLocked(b)
			}
		}
		o.sess.sendMu.Unlock()
	}
}

// presenceFrames encodes changes as Presence frames of at most
// maxPresenceFrame bytes each (without the seq and acked each session
// adds).
func (r *room) presenceFrames(changes []change) [][]byte {
	overhead := proto.Size(&pb.ServerFrame{
		Seq: math.MaxUint64, Acked: math.MaxUint64,
		Body: &pb.ServerFrame_Presence{Presence: &pb.Presence{RoomId: r.id}},
	}) + 2
	budget := maxPresenceFrame - overhead
	var frames [][]byte
	var page []*pb.PresenceChange
	size := 0
	flush := func() {
		frames = append(frames, mustMarshal(&pb.ServerFrame{Body: &pb.ServerFrame_Presence{Presence: &pb.Presence{
			RoomId: r.id, Changes: page,
		}}}))
		page, size = nil, 0
	}
	for _, c := range changes {
		pc := &pb.PresenceChange{}
		if c.joined != nil {
			pc.Change = &pb.PresenceChange_Joined{Joined: c.joined.pbInfo}
		} else {
			pc.Change = &pb.PresenceChange_Left{Left: &pb.UserLeft{UserId: c.left, Reason: c.reason}}
		}
		n := protowire.SizeTag(2) + protowire.SizeBytes(proto.Size(pc))
		if len(page) > 0 && size+n > budget {
			flush()
		}
		page = append(page, pc)
		size += n
	}
	flush()
	return frames
}

// singleFrames encodes changes as one UserJoined or UserLeft frame each,
// for a client that does not take Presence.
func (r *room) singleFrames(changes []change) [][]byte {
	frames := make([][]byte, len(changes))
	for i, c := range changes {
		f := &pb.ServerFrame{}
		if c.joined != nil {
			f.Body = &pb.ServerFrame_UserJoined{UserJoined: &pb.UserJoined{RoomId: r.id, Member: c.joined.pbInfo}}
		} else {
			f.Body = &pb.ServerFrame_UserLeft{UserLeft: &pb.UserLeft{RoomId: r.id, UserId: c.left, Reason: c.reason}}
		}
		frames[i] = mustMarshal(f)
	}
	return frames
}

func mustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic("parley: marshal frame: " + err.Error()) // only a programming error gets here
	}
	return b
}

// silence stops the room's presence frames to m, which is gone: once it
// returns, none is being sent and none will be.
func (m *member) silence() {
	m.sess.sendMu.Lock()
	m.quiet.Store(true)
	m.sess.sendMu.Unlock()
}
