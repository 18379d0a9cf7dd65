package parley_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/parleyhq/parley"
	"github.com/parleyhq/parley/parleytest"
)

// TestServerURLsMoveToAnotherNode: an Engine given a second node
// (WithServerURLs) moves to it when its node shuts down: it reconnects
// there, finds no session, and joins its room again (JoinTypeReconnected)
// and logs in again by itself; a member already on the second node sees
// it arrive, and messages flow both ways. The two servers are separate
// single nodes of one app: what is tested is the SDK's move.
func TestServerURLsMoveToAnotherNode(t *testing.T) {
	first, _ := startServerAt(t, "127.0.0.1:0", 0)
	second, _ := startServerAt(t, "127.0.0.1:0", 0)
	cfg := parley.EngineConfig{AppID: restartAppID, ServerURL: first.URL()}
	alice := newPeerAt(t, nil, cfg, "room1", parley.UserInfo{UserID: "alice"}, parley.WithServerURLs(second.URL()))
	require.NoError(t, alice.room.JoinRoom(restartToken(t, "room1", "alice"), alice.info, parley.RoomConfig{}))
	requireState(t, alice.rec, 0)
	require.NoError(t, alice.e.Login(restartToken(t, "", "alice"), "alice"))
	require.Equal(t, parley.LoginErrorCodeSuccess, parleytest.NextOf[parleytest.LoginResult](t, alice.eng).Code)

	bob := newPeerAt(t, nil, parley.EngineConfig{AppID: restartAppID, ServerURL: second.URL()}, "room1", parley.UserInfo{UserID: "bob"})
	require.NoError(t, bob.room.JoinRoom(restartToken(t, "room1", "bob"), bob.info, parley.RoomConfig{}))
	requireState(t, bob.rec, 0)

	require.NoError(t, first.Shutdown(context.Background())) // GoAway, then its listener is gone
	alice.eng.WaitState(t, parley.ConnectionStateReconnecting)
	alice.eng.WaitState(t, parley.ConnectionStateReconnected)
	requireRejoined(t, alice.rec)
	require.Equal(t, parley.LoginErrorCodeSuccess, parleytest.NextOf[parleytest.LoginResult](t, alice.eng).Code, "logged in again on the second node")
	requireJoined(t, alice.rec, bob.info)
	requireJoined(t, bob.rec, alice.info)

	id := alice.room.SendUserMessage("bob", "moved", reliableOrdered)
	require.Equal(t, userResult(id, parley.UserMessageSendResultSuccess), expect[parleytest.SendResult](t, alice.rec))
	require.Equal(t, roomMsg("alice", false, false, []byte("moved")), expect[parleytest.Message](t, bob.rec))
	id = bob.room.SendRoomMessage("welcome")
	require.Equal(t, roomResult(id, parley.RoomMessageSendResultSuccess), expect[parleytest.SendResult](t, bob.rec))
	require.Equal(t, roomMsg("bob", true, false, []byte("welcome")), expect[parleytest.Message](t, alice.rec))
}

// TestServerURLsFirstConnect: the first connect tries the next URL when
// the first does not answer.
func TestServerURLsFirstConnect(t *testing.T) {
	dead, _ := startServerAt(t, "127.0.0.1:0", 0)
	deadURL := dead.URL()
	require.NoError(t, dead.Shutdown(context.Background()))
	live := parleytest.NewServer(t)
	p := newPeerAt(t, nil, parley.EngineConfig{AppID: live.AppID, ServerURL: deadURL}, "room1", parley.UserInfo{UserID: "alice"},
		parley.WithServerURLs(live.URL))
	require.NoError(t, p.room.JoinRoom(live.Token("room1", "alice"), p.info, parley.RoomConfig{}))
	requireState(t, p.rec, 0)
}

// TestServerURLsChecked: every URL must be a signaling URL.
func TestServerURLsChecked(t *testing.T) {
	_, err := parley.NewEngine(parley.EngineConfig{AppID: restartAppID, ServerURL: "ws://127.0.0.1:1/rtc"}, nil,
		parley.WithServerURLs("http://127.0.0.1:2/rtc"))
	require.ErrorIs(t, err, parley.ErrInvalidArgument)
}
