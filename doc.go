// Package parley is a native Go real-time messaging SDK with the ByteRTC
// (Volcengine RTC) messaging API. It talks to the Parley relay server
// (package server, or the parleyd binary) over one signaling WebSocket and
// one WebRTC PeerConnection with three data channels, which carries all
// the Engine's rooms.
//
// Start here:
//
//	e, err := parley.NewEngine(parley.EngineConfig{AppID: appID, ServerURL: "ws://127.0.0.1:7880/rtc"}, engineHandler)
//	if err != nil {
//		return err // ErrInvalidArgument: a bad AppID or URL
//	}
//	defer e.Close()
//	room, err := e.CreateRoom("lobby", roomHandler)
//	if err != nil {
//		return err
//	}
//	if err := room.JoinRoom(token, parley.UserInfo{UserID: "alice"}, parley.RoomConfig{}); err != nil {
//		return err
//	}
//	// OnRoomStateChanged(..., 0, info) fires once joined, then OnUserJoined for each member.
//	id := room.SendUserMessage("bob", "hi", parley.MessageConfigReliableOrdered)
//	// OnUserMessageSendResult(id, ...) follows exactly once.
//
// Engine → Login / CreateRoom → JoinRoom → Send* is the path. The runnable
// program is examples/quickstart; tokens come from package token; tests use
// package parleytest; docs/messaging.md tells what each send result means,
// docs/login.md the same for the login.
//
// The Engine reconnects by itself (OnConnectionStateChanged) and resumes its
// session without loss; when the server no longer has it, rooms rejoin and
// the login logs in again on their own. See docs/reliability.md.
//
// # Callbacks
//
// All callbacks of one Engine and its Rooms run on one goroutine that the
// Engine owns, one at a time, in the order the events happened, with no SDK
// lock held. A handler may call any method, Close included. Byte slices
// handed to a handler are the handler's to keep. A slow handler delays the
// Engine's later events, never another Engine's.
//
// A method that returns a nil error is followed by exactly one result
// callback (a valid UpdateToken, and UpdateLoginToken while logged in,
// report nothing); a
// non-nil error (ErrInvalidArgument, ErrAlreadyInRoom, ErrAlreadyLoggedIn,
// ErrNotLoggedIn, ErrEngineClosed, ErrRoomClosed) means nothing happened and
// none follows.
// Every Send* returns a message ID (from 1, one sequence per Engine) and is
// followed by exactly one result callback for it, failures included; only
// on a closed Engine does it return -1, with no callback.
//
// # Names
//
// Method, callback and constant names are ByteRTC's, with Go types
// ([]byte, time.Duration, error). docs/bytertc-mapping.md lists every
// ByteRTC name and code beside its Go name.
package parley
