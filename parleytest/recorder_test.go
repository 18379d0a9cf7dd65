package parleytest_test

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"go.uber.org/goleak"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// fakeTB records the failure of a wait: Fatalf ends the goroutine, as
// testing's does.
type fakeTB struct {
	testing.TB
	failed chan string
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.failed <- fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// failure runs wait with a fakeTB and returns its failure message, or ""
// if wait returned.
func failure(t *testing.T, wait func(tb testing.TB)) string {
	t.Helper()
	f := &fakeTB{TB: t, failed: make(chan string, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		wait(f)
	}()
	<-done
	select {
	case msg := <-f.failed:
		return msg
	default:
		return ""
	}
}

func TestRecorderReadsByType(t *testing.T) {
	rec := parleytest.NewRecorder()
	rec.OnConnectionStateChanged(parley.ConnectionStateConnecting)
	rec.OnUserJoined(parley.UserInfo{UserID: "bob"})
	rec.OnUserMessageReceived("bob", "hi")
	rec.OnConnectionStateChanged(parley.ConnectionStateConnected)
	rec.OnRoomMessageSendResult(7, parley.RoomMessageSendResultSuccess)
	rec.OnRoomBinaryMessageReceived("carol", []byte{0, 1})

	// A typed wait takes the earliest event of its type and leaves the rest.
	if m := rec.NextMessage(t); m.From != "bob" || m.Broadcast || m.Binary || string(m.Payload) != "hi" {
		t.Fatalf("NextMessage = %v", m)
	}
	if res := rec.NextResult(t); res.Kind != parleytest.RoomMessageResult || res.ID != 7 || res.Code != 200 {
		t.Fatalf("NextResult = %v", res)
	}
	// Next takes the earliest event left, of any type.
	if ev := rec.Next(t); ev != (parleytest.ConnectionStateChanged{State: parley.ConnectionStateConnecting}) {
		t.Fatalf("Next = %#v", ev)
	}
	if ev := parleytest.NextOf[parleytest.UserJoined](t, rec); ev.User.UserID != "bob" {
		t.Fatalf("NextOf[UserJoined] = %#v", ev)
	}
	if n := len(rec.Pending()); n != 2 {
		t.Fatalf("%d events unread, want 2: %v", n, rec.Pending())
	}
	got := rec.TakeAll(func(ev parleytest.Event) bool { _, ok := ev.(parleytest.Message); return ok })
	if len(got) != 1 || got[0].(parleytest.Message).From != "carol" {
		t.Fatalf("TakeAll(Message) = %v", got)
	}
	if ev := rec.Next(t); ev != (parleytest.ConnectionStateChanged{State: parley.ConnectionStateConnected}) {
		t.Fatalf("Next = %#v", ev)
	}
	if p := rec.Pending(); len(p) != 0 {
		t.Fatalf("unread: %v", p)
	}
}

func TestRecorderWaitDropsEarlierOfItsType(t *testing.T) {
	rec := parleytest.NewRecorder()
	rec.OnConnectionStateChanged(parley.ConnectionStateConnecting)
	rec.OnUserLeave("carol", parley.UserOfflineReasonQuit)
	rec.OnConnectionStateChanged(parley.ConnectionStateDisconnected)
	rec.OnConnectionStateChanged(parley.ConnectionStateConnected)
	rec.WaitState(t, parley.ConnectionStateConnected)
	// The states before Connected are gone; the leave is not.
	p := rec.Pending()
	if len(p) != 1 || p[0] != (parleytest.UserLeave{UserID: "carol", Reason: parley.UserOfflineReasonQuit}) {
		t.Fatalf("unread after WaitState: %v", p)
	}
}

func TestRecorderWaitsForLaterEvents(t *testing.T) {
	// In the bubble, synctest.Wait returns once the test is blocked in
	// its wait: the events come while it waits.
	synctest.Test(t, func(t *testing.T) {
		rec := parleytest.NewRecorder()
		go func() {
			synctest.Wait()
			rec.OnUserJoined(parley.UserInfo{UserID: "alice"})
			rec.OnUserJoined(parley.UserInfo{UserID: "bob"})
		}()
		if ev := rec.WaitUserJoined(t, "bob"); ev.User.UserID != "bob" {
			t.Fatalf("WaitUserJoined = %#v", ev)
		}
		if p := rec.Pending(); len(p) != 0 {
			t.Fatalf("unread after WaitUserJoined: %v", p)
		}
	})
}

func TestRecorderWaitResults(t *testing.T) {
	rec := parleytest.NewRecorder()
	rec.OnUserMessageSendResult(2, parley.UserMessageSendResultSuccess)
	rec.OnUserMessageSendResultOutsideRoom(1, parley.UserMessageSendResultTimeout)
	got := rec.WaitResults(t, 1, 2)
	if len(got) != 2 || got[1].Kind != parleytest.OutsideRoomResult || got[1].Code != int(parley.UserMessageSendResultTimeout) {
		t.Fatalf("WaitResults = %v", got)
	}

	rec.OnUserMessageSendResult(3, parley.UserMessageSendResultSuccess)
	rec.OnUserMessageSendResult(3, parley.UserMessageSendResultSuccess)
	msg := failure(t, func(tb testing.TB) { rec.WaitResults(tb, 3, 4) })
	if !strings.Contains(msg, "second result for message 3") {
		t.Fatalf("WaitResults with a duplicate result: failure %q", msg)
	}
}

func TestRecorderTimeout(t *testing.T) {
	rec := parleytest.NewRecorder()
	rec.Timeout = 20 * time.Millisecond
	rec.OnTokenWillExpire()
	msg := failure(t, func(tb testing.TB) { rec.NextMessage(tb) })
	if !strings.Contains(msg, "no parleytest.Message within 20ms") || !strings.Contains(msg, "TokenWillExpire") {
		t.Fatalf("NextMessage with none recorded: failure %q", msg)
	}
}

func TestRecorderFullFailsWaits(t *testing.T) {
	rec := parleytest.NewRecorderSize(2)
	for i := range 3 {
		rec.OnUserMessageReceived("bob", fmt.Sprint(i))
	}
	msg := failure(t, func(tb testing.TB) { rec.NextMessage(tb) })
	if !strings.Contains(msg, "1 events dropped") {
		t.Fatalf("wait after an overflow: failure %q", msg)
	}
}

// TestRecorderEndToEnd has two Engines, each with one Recorder as its
// Engine and Room handler, join a room of a real server and exchange a
// message.
func TestRecorderEndToEnd(t *testing.T) {
	srv := parleytest.NewServer(t)
	join := func(user string) (*parley.Room, *parleytest.Recorder) {
		rec := parleytest.NewRecorder()
		e, err := parley.NewEngine(parley.EngineConfig{AppID: srv.AppID, ServerURL: srv.URL}, rec, parley.WithLoopbackOnly())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = e.Close()
			<-e.Done()
		})
		room, err := e.CreateRoom("r1", rec)
		if err != nil {
			t.Fatal(err)
		}
		if err := room.JoinRoom(srv.Token("r1", user), parley.UserInfo{UserID: user}, parley.RoomConfig{}); err != nil {
			t.Fatal(err)
		}
		if st := rec.NextRoomState(t); st.State != 0 || st.RoomID != "r1" || st.UserID != user {
			t.Fatalf("%s: %+v", user, st)
		}
		rec.WaitState(t, parley.ConnectionStateConnected)
		return room, rec
	}
	alice, arec := join("alice")
	_, brec := join("bob")
	brec.WaitUserJoined(t, "alice")
	arec.WaitUserJoined(t, "bob")

	id := alice.SendUserMessage("bob", "hello", parley.MessageConfigReliableOrdered)
	if m := brec.NextMessage(t); m.From != "alice" || m.Broadcast || m.OutsideRoom || m.Binary || string(m.Payload) != "hello" {
		t.Fatalf("bob got %v", m)
	}
	if res := arec.WaitResult(t, id); res.Kind != parleytest.UserMessageResult || res.Code != int(parley.UserMessageSendResultSuccess) {
		t.Fatalf("alice's result: %v", res)
	}
}
