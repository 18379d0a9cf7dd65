package bench

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/parleyhq/parley"
)

// engine is one Engine of the run with the sends it has in flight:
// message IDs are per Engine, and a result may come back before Send has
// returned its ID.
type engine struct {
	e   *parley.Engine
	rec *recorder

	mu      sync.Mutex
	pending map[int64]sendInfo    // sends waiting for their result; guarded by mu
	early   map[int64]earlyResult // results that came before their Send returned; guarded by mu
}

type earlyResult struct {
	code string
	ok   bool
}

func newEngine(e *parley.Engine, rec *recorder) *engine {
	return &engine{e: e, rec: rec, pending: make(map[int64]sendInfo), early: make(map[int64]earlyResult)}
}

// send counts and makes one send; do is the Send call.
func (g *engine) send(info sendInfo, do func() int64) {
	g.rec.sending(info)
	id := do()
	if id < 0 { // a closed Engine or Room: no result follows
		g.rec.unsend(info)
		return
	}
	g.mu.Lock()
	r, ok := g.early[id]
	if ok {
		delete(g.early, id)
	} else {
		g.pending[id] = info
	}
	g.mu.Unlock()
	if ok {
		g.rec.result(info, r.code, r.ok)
	}
}

// resolved counts the result of send id.
func (g *engine) resolved(id int64, code string, ok bool) {
	g.mu.Lock()
	info, found := g.pending[id]
	if found {
		delete(g.pending, id)
	} else {
		g.early[id] = earlyResult{code, ok}
	}
	g.mu.Unlock()
	if found {
		g.rec.result(info, code, ok)
	}
}

// role is what a member does with the messages it gets.
type role uint8

const (
	roleMember role = iota // rooms mode: counts broadcasts
	roleBot                // counts echoes and round trips
	rolePeer               // counts the bot's messages and echoes them
)

// joinResult is how a join ended: state 0 or an ErrorCode, and when.
type joinResult struct {
	state int
	at    time.Time
}

// member is one room membership of one Engine, and its RoomEventHandler.
// Its callbacks run on the Engine's dispatcher goroutine.
type member struct {
	parley.NopRoomEventHandler
	g      *engine
	run    *runner
	room   *parley.Room
	index  int    // the room's index
	userID string // this member's user ID
	other  string // bot mode: the user to send to or echo to
	role   role

	joinedCh chan joinResult // the join's outcome, once
	joined   atomic.Bool
}

func newMember(g *engine, run *runner, index int, userID, other string, r role) *member {
	return &member{g: g, run: run, index: index, userID: userID, other: other, role: r, joinedCh: make(chan joinResult, 1)}
}

func (m *member) OnRoomStateChanged(_, _ string, state int, _ parley.RoomStateInfo) {
	switch {
	case state == int(parley.ErrorCodeJoinRoomFailed): // a warning: the SDK retries
	case !m.joined.Load():
		m.joined.Store(state == 0)
		select {
		case m.joinedCh <- joinResult{state: state, at: time.Now()}:
		default: // already reported
		}
	case state != 0 && m.run.running():
		// Joined, then lost the room (kicked, token expired, …).
		m.run.rec.memberLeft("self: " + parley.ErrorCode(state).String())
	}
}

func (m *member) OnUserLeave(_ string, reason parley.UserOfflineReason) {
	if m.run.running() {
		m.run.rec.memberLeft(reason.String())
	}
}

func (m *member) OnRoomBinaryMessageReceived(_ string, msg []byte) {
	if h, ok := parseHeader(msg); ok {
		m.run.rec.deliver(h, false)
	}
}

func (m *member) OnUserBinaryMessageReceived(_ string, msg []byte) {
	h, ok := parseHeader(msg)
	if !ok {
		return
	}
	switch m.role {
	case roleBot:
		m.run.rec.deliver(h, true)
	case rolePeer:
		m.run.rec.deliver(h, false)
		// The echo keeps the original's header, adds its own send time,
		// and is measured when the original was. msg is ours to keep.
		h.echoed = m.run.rec.clk.now()
		h.put(msg)
		m.g.send(sendInfo{kind: sendEcho, measured: h.measured, receivers: 1}, func() int64 {
			return m.room.SendUserBinaryMessage(m.other, msg, parley.MessageConfigReliableOrdered)
		})
	}
}

func (m *member) OnRoomMessageSendResult(id int64, res parley.RoomMessageSendResult) {
	m.g.resolved(id, res.String(), res == parley.RoomMessageSendResultSuccess)
}

func (m *member) OnUserMessageSendResult(id int64, res parley.UserMessageSendResult) {
	m.g.resolved(id, res.String(), res == parley.UserMessageSendResultSuccess)
}
