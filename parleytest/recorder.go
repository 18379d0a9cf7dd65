package parleytest

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parleyhq/parley"
)

// DefaultTimeout is how long a Recorder's wait methods wait for an event
// when Recorder.Timeout is zero. It only guards against a hang: on a healthy
// run every wait ends on its event long before it.
const DefaultTimeout = 15 * time.Second

// DefaultCapacity is how many unread events a Recorder made by NewRecorder
// holds.
const DefaultCapacity = 1 << 16

// Recorder is a parley.EngineEventHandler and a parley.RoomEventHandler that
// records every callback, in the order the SDK made them, as an Event value:
// the test counterpart of a bot's handler, as httptest.ResponseRecorder is
// of an http.ResponseWriter. Hand one Recorder to an Engine, to a Room, or
// to both; then wait for the events with its methods:
//
//	rec := parleytest.NewRecorder()
//	e, _ := parley.NewEngine(cfg, rec, parley.WithLoopbackOnly())
//	room, _ := e.CreateRoom("room1", rec)
//	room.JoinRoom(srv.Token("room1", "alice"), parley.UserInfo{UserID: "alice"}, parley.RoomConfig{})
//	if st := rec.NextRoomState(t); st.State != 0 {
//		t.Fatalf("join failed: %v", parley.ErrorCode(st.State))
//	}
//
// Callbacks never block: events wait, unread, in a buffer of
// DefaultCapacity events (NewRecorderSize sets another). A callback that finds the buffer full drops its event and counts
// it, and every later wait fails the test, saying how many were dropped.
//
// A wait reads (and removes) the earliest unread event it is after and
// leaves the others where they are, so a test can wait for a message while
// membership events pile up, and read those later. Next reads the earliest
// event of any type.
//
// The zero Recorder is ready to use and holds DefaultCapacity events. The
// methods are safe for concurrent use.
type Recorder struct {
	// Timeout is the longest a wait method waits for one event (when it
	// waits for several, the timeout restarts with each). Zero means
	// DefaultTimeout. Only the waiting goroutine reads it: set it before
	// waiting.
	Timeout time.Duration

	mu       sync.Mutex
	hook     func(Event)   // see SetHook; guarded by mu
	events   []Event       // unread, in order; guarded by mu
	capacity int           // set at creation (or first use); guarded by mu
	dropped  int           // events lost to a full buffer; guarded by mu
	changed  chan struct{} // closed and replaced on every new event; guarded by mu
}

// NewRecorder returns a Recorder that holds up to DefaultCapacity unread
// events.
func NewRecorder() *Recorder { return NewRecorderSize(DefaultCapacity) }

// NewRecorderSize returns a Recorder that holds up to capacity unread
// events.
func NewRecorderSize(capacity int) *Recorder {
	return &Recorder{capacity: max(capacity, 1), changed: make(chan struct{})}
}

var (
	_ parley.EngineEventHandler = (*Recorder)(nil)
	_ parley.RoomEventHandler   = (*Recorder)(nil)
)

// Event is one recorded callback: a value of one of this package's event
// types, each named after its callback (ConnectionStateChanged,
// LoginResult, PeerOnlineStatus, UserJoined, ...), or a Message (the six
// message callbacks) or a SendResult (the four result callbacks).
type Event interface {
	isEvent()
}

// ConnectionStateChanged records OnConnectionStateChanged.
type ConnectionStateChanged struct {
	State parley.ConnectionState
}

// LoginResult records OnLoginResult.
type LoginResult struct {
	UserID  string
	Code    parley.LoginErrorCode
	Elapsed time.Duration
}

// Logout records OnLogout.
type Logout struct {
	Reason parley.LogoutReason
}

// PeerOnlineStatus records OnGetPeerOnlineStatus.
type PeerOnlineStatus struct {
	PeerUserID string
	Status     parley.UserOnlineStatus
}

// ServerParamsSetResult records OnServerParamsSetResult.
type ServerParamsSetResult struct {
	Code int
}

// RoomStateChanged records OnRoomStateChanged.
type RoomStateChanged struct {
	RoomID, UserID string
	State          int
	Info           parley.RoomStateInfo
}

// LeaveRoom records OnLeaveRoom.
type LeaveRoom struct {
	Stats parley.RoomStats
}

// TokenWillExpire records OnTokenWillExpire.
type TokenWillExpire struct{}

// UserJoined records OnUserJoined.
type UserJoined struct {
	User parley.UserInfo
}

// UserLeave records OnUserLeave.
type UserLeave struct {
	UserID string
	Reason parley.UserOfflineReason
}

// Message records any of the six callbacks of a received message:
// OnUserMessageReceived and OnUserBinaryMessageReceived (neither flag set),
// OnRoomMessageReceived and OnRoomBinaryMessageReceived (Broadcast),
// OnUserMessageReceivedOutsideRoom and
// OnUserBinaryMessageReceivedOutsideRoom (OutsideRoom). Binary is set for
// the binary ones; Payload holds the text or the bytes.
type Message struct {
	From        string
	Broadcast   bool
	OutsideRoom bool
	Binary      bool
	Payload     []byte
}

// ResultKind says which callback a SendResult records.
type ResultKind int

// The kinds of SendResult.
const (
	// UserMessageResult is OnUserMessageSendResult; Code is a
	// parley.UserMessageSendResult.
	UserMessageResult ResultKind = iota
	// RoomMessageResult is OnRoomMessageSendResult; Code is a
	// parley.RoomMessageSendResult.
	RoomMessageResult
	// OutsideRoomResult is OnUserMessageSendResultOutsideRoom; Code is a
	// parley.UserMessageSendResult.
	OutsideRoomResult
	// ServerMessageResult is OnServerMessageSendResult; Code is a
	// parley.UserMessageSendResult and Ack the application server's body.
	ServerMessageResult
)

// String returns the name of the callback.
func (k ResultKind) String() string {
	switch k {
	case UserMessageResult:
		return "OnUserMessageSendResult"
	case RoomMessageResult:
		return "OnRoomMessageSendResult"
	case OutsideRoomResult:
		return "OnUserMessageSendResultOutsideRoom"
	case ServerMessageResult:
		return "OnServerMessageSendResult"
	}
	return fmt.Sprintf("ResultKind(%d)", int(k))
}

// SendResult records a message's send result: OnUserMessageSendResult,
// OnRoomMessageSendResult, OnUserMessageSendResultOutsideRoom or
// OnServerMessageSendResult, as Kind says. Code is the result's value.
type SendResult struct {
	Kind ResultKind
	ID   int64
	Code int
	Ack  []byte // OnServerMessageSendResult's ack
}

func (ConnectionStateChanged) isEvent() {}
func (LoginResult) isEvent()            {}
func (Logout) isEvent()                 {}
func (PeerOnlineStatus) isEvent()       {}
func (ServerParamsSetResult) isEvent()  {}
func (RoomStateChanged) isEvent()       {}
func (LeaveRoom) isEvent()              {}
func (TokenWillExpire) isEvent()        {}
func (UserJoined) isEvent()             {}
func (UserLeave) isEvent()              {}
func (Message) isEvent()                {}
func (SendResult) isEvent()             {}

// String describes the message without printing a long payload whole.
func (m Message) String() string {
	kind := "user"
	switch {
	case m.Broadcast:
		kind = "room"
	case m.OutsideRoom:
		kind = "outside-room"
	}
	if m.Binary {
		kind += " binary"
	}
	return fmt.Sprintf("%s message from %q: %s", kind, m.From, clip(m.Payload))
}

// GoString is String, so that test failures print messages legibly.
func (m Message) GoString() string { return m.String() }

// String shows the result as the callback it records.
func (r SendResult) String() string {
	switch r.Kind {
	case RoomMessageResult:
		return fmt.Sprintf("%v(%d, %v)", r.Kind, r.ID, parley.RoomMessageSendResult(r.Code))
	case ServerMessageResult:
		return fmt.Sprintf("%v(%d, %v, %s)", r.Kind, r.ID, parley.UserMessageSendResult(r.Code), clip(r.Ack))
	}
	return fmt.Sprintf("%v(%d, %v)", r.Kind, r.ID, parley.UserMessageSendResult(r.Code))
}

// GoString is String, so that test failures print results legibly.
func (r SendResult) GoString() string { return r.String() }

// clip quotes a payload, abridged when long.
func clip(b []byte) string {
	if len(b) <= 64 {
		return fmt.Sprintf("%q", b)
	}
	return fmt.Sprintf("%q…(%d bytes)", b[:64], len(b))
}

// record appends ev, or counts it dropped when the buffer is full, and
// wakes the waiters.
func (r *Recorder) record(ev Event) {
	r.mu.Lock()
	if r.changed == nil { // a zero Recorder
		r.changed = make(chan struct{})
		r.capacity = DefaultCapacity
	}
	if len(r.events) >= r.capacity {
		r.dropped++
	} else {
		r.events = append(r.events, ev)
	}
	close(r.changed)
	r.changed = make(chan struct{})
	hook := r.hook
	r.mu.Unlock()
	if hook != nil {
		hook(ev)
	}
}

// SetHook has f called with every event from now on, right after it is
// recorded, on the goroutine that made the callback (the Engine's
// dispatcher); nil removes it. f may block, which delays the Engine's
// later events as a slow handler would.
func (r *Recorder) SetHook(f func(Event)) {
	r.mu.Lock()
	r.hook = f
	r.mu.Unlock()
}

// OnConnectionStateChanged records a ConnectionStateChanged.
func (r *Recorder) OnConnectionStateChanged(state parley.ConnectionState) {
	r.record(ConnectionStateChanged{state})
}

// OnLoginResult records a LoginResult.
func (r *Recorder) OnLoginResult(userID string, code parley.LoginErrorCode, elapsed time.Duration) {
	r.record(LoginResult{userID, code, elapsed})
}

// OnLogout records a Logout.
func (r *Recorder) OnLogout(reason parley.LogoutReason) { r.record(Logout{reason}) }

// OnGetPeerOnlineStatus records a PeerOnlineStatus.
func (r *Recorder) OnGetPeerOnlineStatus(peerUserID string, status parley.UserOnlineStatus) {
	r.record(PeerOnlineStatus{peerUserID, status})
}

// OnUserMessageReceivedOutsideRoom records a Message with OutsideRoom set.
func (r *Recorder) OnUserMessageReceivedOutsideRoom(userID, message string) {
	r.record(Message{From: userID, OutsideRoom: true, Payload: []byte(message)})
}

// OnUserBinaryMessageReceivedOutsideRoom records a Message with OutsideRoom
// and Binary set.
func (r *Recorder) OnUserBinaryMessageReceivedOutsideRoom(userID string, message []byte) {
	r.record(Message{From: userID, OutsideRoom: true, Binary: true, Payload: message})
}

// OnUserMessageSendResultOutsideRoom records a SendResult of kind
// OutsideRoomResult.
func (r *Recorder) OnUserMessageSendResultOutsideRoom(msgID int64, result parley.UserMessageSendResult) {
	r.record(SendResult{Kind: OutsideRoomResult, ID: msgID, Code: int(result)})
}

// OnServerParamsSetResult records a ServerParamsSetResult.
func (r *Recorder) OnServerParamsSetResult(code int) { r.record(ServerParamsSetResult{code}) }

// OnServerMessageSendResult records a SendResult of kind
// ServerMessageResult.
func (r *Recorder) OnServerMessageSendResult(msgID int64, result parley.UserMessageSendResult, ack []byte) {
	r.record(SendResult{Kind: ServerMessageResult, ID: msgID, Code: int(result), Ack: ack})
}

// OnRoomStateChanged records a RoomStateChanged.
func (r *Recorder) OnRoomStateChanged(roomID, userID string, state int, info parley.RoomStateInfo) {
	r.record(RoomStateChanged{roomID, userID, state, info})
}

// OnLeaveRoom records a LeaveRoom.
func (r *Recorder) OnLeaveRoom(stats parley.RoomStats) { r.record(LeaveRoom{stats}) }

// OnTokenWillExpire records a TokenWillExpire.
func (r *Recorder) OnTokenWillExpire() { r.record(TokenWillExpire{}) }

// OnUserJoined records a UserJoined.
func (r *Recorder) OnUserJoined(user parley.UserInfo) { r.record(UserJoined{user}) }

// OnUserLeave records a UserLeave.
func (r *Recorder) OnUserLeave(userID string, reason parley.UserOfflineReason) {
	r.record(UserLeave{userID, reason})
}

// OnUserMessageReceived records a Message.
func (r *Recorder) OnUserMessageReceived(userID, message string) {
	r.record(Message{From: userID, Payload: []byte(message)})
}

// OnUserBinaryMessageReceived records a Message with Binary set.
func (r *Recorder) OnUserBinaryMessageReceived(userID string, message []byte) {
	r.record(Message{From: userID, Binary: true, Payload: message})
}

// OnUserMessageSendResult records a SendResult of kind UserMessageResult.
func (r *Recorder) OnUserMessageSendResult(msgID int64, result parley.UserMessageSendResult) {
	r.record(SendResult{Kind: UserMessageResult, ID: msgID, Code: int(result)})
}

// OnRoomMessageReceived records a Message with Broadcast set.
func (r *Recorder) OnRoomMessageReceived(userID, message string) {
	r.record(Message{From: userID, Broadcast: true, Payload: []byte(message)})
}

// OnRoomBinaryMessageReceived records a Message with Broadcast and Binary
// set.
func (r *Recorder) OnRoomBinaryMessageReceived(userID string, message []byte) {
	r.record(Message{From: userID, Broadcast: true, Binary: true, Payload: message})
}

// OnRoomMessageSendResult records a SendResult of kind RoomMessageResult.
func (r *Recorder) OnRoomMessageSendResult(msgID int64, result parley.RoomMessageSendResult) {
	r.record(SendResult{Kind: RoomMessageResult, ID: msgID, Code: int(result)})
}

// timeout is the wait of one event.
func (r *Recorder) timeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return DefaultTimeout
}

// NextWhereContext removes and returns the earliest unread event for which
// match reports true, waiting for one until ctx is done; the other events
// stay unread. It returns an error when ctx ends first or when events were
// dropped because the buffer was full.
func (r *Recorder) NextWhereContext(ctx context.Context, match func(Event) bool) (Event, error) {
	return r.next(ctx, func(ev Event) action {
		if match(ev) {
			return take
		}
		return keep
	})
}

// action is what next does with an unread event.
type action int

const (
	keep action = iota // leave it unread
	take               // remove and return it
	drop               // remove it and go on
)

// next removes and returns the earliest unread event sel takes, removing
// those it drops on the way.
func (r *Recorder) next(ctx context.Context, sel func(Event) action) (Event, error) {
	for {
		r.mu.Lock()
		if r.changed == nil {
			r.changed = make(chan struct{})
			r.capacity = DefaultCapacity
		}
		if r.dropped > 0 {
			n := r.dropped
			r.mu.Unlock()
			return nil, fmt.Errorf("parleytest: Recorder full: %d events dropped", n)
		}
		kept := r.events[:0]
		var found Event
		for i, ev := range r.events {
			if found != nil {
				kept = append(kept, r.events[i:]...)
				break
			}
			switch sel(ev) {
			case keep:
				kept = append(kept, ev)
			case take:
				found = ev
			}
		}
		clear(r.events[len(kept):])
		r.events = kept
		changed := r.changed
		r.mu.Unlock()
		if found != nil {
			return found, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// wait is next with the Recorder's timeout, failing tb (saying what it
// waited for) if no event is taken in time.
func (r *Recorder) wait(tb testing.TB, what string, sel func(Event) action) Event {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), r.timeout())
	defer cancel()
	ev, err := r.next(ctx, sel)
	if err != nil {
		if ctx.Err() != nil {
			tb.Fatalf("parleytest: no %s within %v; unread: %s", what, r.timeout(), r.summary())
		}
		tb.Fatalf("%v", err)
	}
	return ev
}

// NextWhere is NextWhereContext with the Recorder's timeout: it fails tb
// (with what) if no matching event comes in time.
func (r *Recorder) NextWhere(tb testing.TB, what string, match func(Event) bool) Event {
	tb.Helper()
	return r.wait(tb, what, func(ev Event) action {
		if match(ev) {
			return take
		}
		return keep
	})
}

// Next removes and returns the earliest unread event, of any type, failing
// tb if none comes within the timeout.
func (r *Recorder) Next(tb testing.TB) Event {
	tb.Helper()
	return r.NextWhere(tb, "event", func(Event) bool { return true })
}

// NextOf removes and returns the earliest unread event of type T, failing
// tb if none comes within r's timeout. Events of other types stay unread.
func NextOf[T Event](tb testing.TB, r *Recorder) T {
	tb.Helper()
	var zero T
	ev := r.NextWhere(tb, fmt.Sprintf("%T", zero), func(ev Event) bool {
		_, ok := ev.(T)
		return ok
	})
	return ev.(T)
}

// NextMessage returns the earliest unread Message.
func (r *Recorder) NextMessage(tb testing.TB) Message {
	tb.Helper()
	return NextOf[Message](tb, r)
}

// NextMessages returns the next n Messages, in order. The timeout restarts
// with every message.
func (r *Recorder) NextMessages(tb testing.TB, n int) []Message {
	tb.Helper()
	out := make([]Message, 0, n)
	for len(out) < n {
		ev := r.NextWhere(tb, fmt.Sprintf("message (%d of %d received)", len(out), n), func(ev Event) bool {
			_, ok := ev.(Message)
			return ok
		})
		out = append(out, ev.(Message))
	}
	return out
}

// NextResult returns the earliest unread SendResult, of any kind.
func (r *Recorder) NextResult(tb testing.TB) SendResult {
	tb.Helper()
	return NextOf[SendResult](tb, r)
}

// WaitResult returns the SendResult of message id, leaving the other
// results unread.
func (r *Recorder) WaitResult(tb testing.TB, id int64) SendResult {
	tb.Helper()
	ev := r.NextWhere(tb, fmt.Sprintf("send result for message %d", id), func(ev Event) bool {
		res, ok := ev.(SendResult)
		return ok && res.ID == id
	})
	return ev.(SendResult)
}

// WaitResults reads SendResults until each of ids has one and returns
// every result it read, by message ID. It fails tb on a second result for
// any ID. The timeout restarts with every result.
func (r *Recorder) WaitResults(tb testing.TB, ids ...int64) map[int64]SendResult {
	tb.Helper()
	got := make(map[int64]SendResult, len(ids))
	r.AddResults(tb, got, ids...)
	return got
}

// AddResults is WaitResults adding to got, which may hold results already
// read.
func (r *Recorder) AddResults(tb testing.TB, got map[int64]SendResult, ids ...int64) {
	tb.Helper()
	want := make(map[int64]bool, len(ids))
	missing := 0
	for _, id := range ids {
		if _, ok := got[id]; !ok && !want[id] {
			missing++
		}
		want[id] = true
	}
	for missing > 0 {
		res := r.NextResult(tb)
		if prev, dup := got[res.ID]; dup {
			tb.Fatalf("parleytest: second result for message %d: %v after %v", res.ID, res, prev)
		}
		got[res.ID] = res
		if want[res.ID] {
			missing--
		}
	}
}

// NextRoomState returns the earliest unread RoomStateChanged.
func (r *Recorder) NextRoomState(tb testing.TB) RoomStateChanged {
	tb.Helper()
	return NextOf[RoomStateChanged](tb, r)
}

// WaitState waits for OnConnectionStateChanged(want); the connection states
// before it are read and dropped.
func (r *Recorder) WaitState(tb testing.TB, want parley.ConnectionState) {
	tb.Helper()
	r.wait(tb, fmt.Sprintf("connection state %v", want), until(func(ev ConnectionStateChanged) bool {
		return ev.State == want
	}))
}

// WaitUserJoined waits for OnUserJoined of userID; the UserJoined events
// before it are read and dropped.
func (r *Recorder) WaitUserJoined(tb testing.TB, userID string) UserJoined {
	tb.Helper()
	return r.wait(tb, fmt.Sprintf("OnUserJoined(%q)", userID), until(func(ev UserJoined) bool {
		return ev.User.UserID == userID
	})).(UserJoined)
}

// WaitUserLeave waits for OnUserLeave of userID; the UserLeave events
// before it are read and dropped.
func (r *Recorder) WaitUserLeave(tb testing.TB, userID string) UserLeave {
	tb.Helper()
	return r.wait(tb, fmt.Sprintf("OnUserLeave(%q)", userID), until(func(ev UserLeave) bool {
		return ev.UserID == userID
	})).(UserLeave)
}

// until returns a selector that takes the first T for which ok reports
// true and drops every T before it.
func until[T Event](ok func(T) bool) func(Event) action {
	return func(ev Event) action {
		t, is := ev.(T)
		switch {
		case !is:
			return keep
		case ok(t):
			return take
		}
		return drop
	}
}

// summary lists the first unread events, for a failure message.
func (r *Recorder) summary() string {
	p := r.Pending()
	const show = 8
	var b strings.Builder
	fmt.Fprintf(&b, "%d events", len(p))
	for i, ev := range p {
		if i == show {
			b.WriteString(", ...")
			break
		}
		fmt.Fprintf(&b, ", %#v", ev)
	}
	return b.String()
}

// Pending returns the unread events, in order, without reading them.
func (r *Recorder) Pending() []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Event(nil), r.events...)
}

// TakeAll removes and returns every unread event for which match reports
// true, without waiting. After the Engine's Done channel is closed, they
// are all the matching events it will ever report.
func (r *Recorder) TakeAll(match func(Event) bool) []Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Event
	kept := r.events[:0]
	for _, ev := range r.events {
		if match(ev) {
			out = append(out, ev)
		} else {
			kept = append(kept, ev)
		}
	}
	clear(r.events[len(kept):])
	r.events = kept
	return out
}
