package server

import (
	"bytes"
	"sync"

	"github.com/parleyhq/parley/internal/transport"
)

// A broadcast's fan-out does not run on its sender's reader: the reader
// hands the message to its room's fan-out worker, a goroutine that runs
// while the room has work queued, and reads the sender's next packet. The
// worker relays the room's handed-off messages one at a time, in the order
// they were handed off: the broadcast to each other member, then the
// sender's result (200).
//
// A sender's reliable messages must reach each receiver in the order of
// their IDs (the receiver's cumulative ack and duplicate check depend on
// it), broadcasts and user messages alike. So while a sender has a
// broadcast queued or being fanned out (member.fanQueued), its reliable
// user messages are handed off too, behind it; otherwise they are relayed
// on the reader as before. Unreliable messages never wait for a
// broadcast.

// Bounds of a room's fan-out queue. A reader that would pass one waits for
// the worker, and its sender's SCTP window pushes back on the sender. A
// session's reader carries all its rooms, so a wait holds up its other
// rooms on that channel too: the bound a reader waits on is first its own
// member's, so that a room busy with others' broadcasts does not stall an
// Engine that sends it one message; only a member that has itself
// maxFanQueue bytes queued waits. maxRoomFanQueue bounds the room's queue,
// all members together, so that its memory stays bounded when many flood
// it at once: past it, every sender waits.
const (
	maxFanQueue     = 1 << 20
	maxRoomFanQueue = 16 << 20
)

// fanout is a room's queue of messages handed off by its members' readers.
type fanout struct {
	mu      sync.Mutex
	space   sync.Cond // signalled when the worker takes bytes off the queue; L is &mu
	q       []fanJob  // guarded by mu
	bytes   int       // the size of the messages in q and in the worker's hands; guarded by mu
	running bool      // the worker is running; guarded by mu
}

// fanJob is one message to relay on the worker.
type fanJob struct {
	from *member
	size int
	run  func()
}

// relayInOrder relays msg from m, found in buf as relay takes it: a
// broadcast, or a reliable message of a sender with a broadcast still
// queued, on the room's fan-out worker, else at once.
func (m *member) relayInOrder(ch int, buf []byte, msg wireMessage) {
	if ch != transport.ChannelReliable || (!msg.broadcast && m.fanQueued.Load() == 0) {
		m.relay(ch, buf, msg)
		return
	}
	// The read buffer is the reader's: the message moves to one of its
	// own, with the room stamp needs around it.
	n := msg.end - msg.off
	own := make([]byte, readHeadroom+n+readTailroom)
	copy(own[readHeadroom:], buf[msg.off:msg.end])
	msg.off, msg.end = readHeadroom, readHeadroom+n
	msg.to = bytes.Clone(msg.to)
	m.room.handOff(m, len(own), func() { m.relay(ch, own, msg) })
}

// handOff queues run, a relay of one of m's messages of size bytes, on the
// room's fan-out worker, starting it if need be. It waits while m's own
// messages in the queue would pass maxFanQueue bytes, or the room's
// maxRoomFanQueue (a lone message passes either). Called on m's reader,
// which the server's wait group counts: the worker is counted in it too.
func (r *room) handOff(m *member, size int, run func()) {
	f := &r.fan
	f.mu.Lock()
	if f.space.L == nil {
		f.space.L = &f.mu
	}
	if f.fullLocked(m, size) {
		r.srv.metrics.fanoutWaits.Inc()
		for f.fullLocked(m, size) {
			f.space.Wait()
		}
	}
	m.fanQueued.Add(1)
	f.q = append(f.q, fanJob{from: m, size: size, run: run})
	f.bytes += size
	m.fanBytes += size
	if !f.running {
		f.running = true
		r.srv.wg.Add(1)
		go r.fanWorker()
	}
	f.mu.Unlock()
}

// fullLocked reports whether a message of m's of size bytes must wait:
// it would take m's queued messages past maxFanQueue, or the room's past
// maxRoomFanQueue, and they are not empty. f.mu must be held.
func (f *fanout) fullLocked(m *member, size int) bool {
	over := func(queued, limit int) bool { return queued > 0 && queued+size > limit }
	return over(m.fanBytes, maxFanQueue) || over(f.bytes, maxRoomFanQueue)
}

// fanWorker relays the room's handed-off messages in order until none is
// left.
func (r *room) fanWorker() {
	defer r.srv.wg.Done()
	f := &r.fan
	for {
		f.mu.Lock()
		q := f.q
		f.q = nil
		if len(q) == 0 {
			f.running = false
			f.mu.Unlock()
			return
		}
		f.mu.Unlock()
		for i, j := range q {
			j.run()
			j.from.fanQueued.Add(-1) // after its relay: a later message of its relayed at once comes after it
			q[i] = fanJob{}
			f.mu.Lock()
			f.bytes -= j.size
			j.from.fanBytes -= j.size
			f.space.Broadcast()
			f.mu.Unlock()
		}
	}
}
