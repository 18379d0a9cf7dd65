package parley

import (
	"fmt"
	"time"
)

// EngineEventHandler receives the events of an Engine: connection state,
// login, peer status, messages outside rooms and server messages. The
// method names are ByteRTC's IRTCVideoEventHandler names.
//
// Callbacks of one Engine and all of its Rooms are called one at a time from
// one goroutine the Engine owns, in the order events happened, with no SDK
// lock held. A callback may call any method of the Engine or a Room, Close
// included. Byte slices passed are the handler's to keep: the SDK never
// touches them again.
//
// A slow callback delays every later event of the same Engine; hand long
// work to a goroutine of your own. Embed NopEngineEventHandler to implement
// only the methods you need.
type EngineEventHandler interface {
	// OnConnectionStateChanged fires when the Engine's connection to the
	// server changes state: Connecting on the first connect, Connected once
	// it is up, Disconnected / Reconnecting / Reconnected / Lost while the
	// Engine recovers from a drop on its own, and Failed when it gives up
	// (no automatic reconnect after Failed).
	OnConnectionStateChanged(state ConnectionState)

	// OnLoginResult fires with the result of Login, and of the login the
	// Engine makes by itself after UpdateLoginToken. code is
	// LoginErrorCodeSuccess on success; elapsed is the time from the Login
	// call to the result.
	OnLoginResult(userID string, code LoginErrorCode, elapsed time.Duration)

	// OnLogout fires when the Engine is logged out: LogoutReasonLogout after
	// Logout or Close, LogoutReasonDuplicateLogin when another client logged
	// in with the same user ID and pushed this one out.
	OnLogout(reason LogoutReason)

	// OnGetPeerOnlineStatus fires once for each GetPeerOnlineStatus, with
	// the peer's status as the server knows it.
	OnGetPeerOnlineStatus(peerUserID string, status UserOnlineStatus)

	// OnUserMessageReceivedOutsideRoom fires when a logged-in user sends
	// this user a text message outside any room.
	OnUserMessageReceivedOutsideRoom(userID, message string)

	// OnUserBinaryMessageReceivedOutsideRoom fires when a logged-in user
	// sends this user a binary message outside any room. message is the
	// handler's to keep.
	OnUserBinaryMessageReceivedOutsideRoom(userID string, message []byte)

	// OnUserMessageSendResultOutsideRoom fires exactly once for each ID
	// returned by SendUserMessageOutsideRoom and
	// SendUserBinaryMessageOutsideRoom, failures included.
	OnUserMessageSendResultOutsideRoom(msgID int64, result UserMessageSendResult)

	// OnServerParamsSetResult fires once for each SetServerParams. code is
	// 200 on success, else a UserMessageSendResult value.
	OnServerParamsSetResult(code int)

	// OnServerMessageSendResult fires exactly once for each ID returned by
	// SendServerMessage and SendServerBinaryMessage, failures included. ack
	// is the body the application server answered with (nil when none); it
	// is the handler's to keep.
	OnServerMessageSendResult(msgID int64, result UserMessageSendResult, ack []byte)
}

// RoomEventHandler receives the events of one Room: its join state, its
// members and its messages. The method names are ByteRTC's
// IRTCRoomEventHandler names.
//
// Callbacks of one Engine and all of its Rooms are called one at a time from
// one goroutine the Engine owns, in the order events happened, with no SDK
// lock held. A callback may call any method of the Engine or a Room, Close
// included. Byte slices passed are the handler's to keep: the SDK never
// touches them again.
//
// Embed NopRoomEventHandler to implement only the methods you need.
type RoomEventHandler interface {
	// OnRoomStateChanged fires with the result of JoinRoom and with every
	// later change of the room's state. state 0 means joined: the first
	// join (info.JoinType JoinTypeFirst) or a rejoin after a reconnect
	// (JoinTypeReconnected); it fires only once the member is active on the
	// server and can send to, and receive from, every member it is told
	// about in OnUserJoined. Any other state is an ErrorCode value: a failed
	// join (ErrorCodeInvalidToken, ErrorCodeJoinRoom, ...), a removal
	// (ErrorCodeDuplicateLogin, ErrorCodeKickedOut, ErrorCodeTokenExpired)
	// or a refused UpdateToken (ErrorCodeUpdateTokenWithInvalidToken). A
	// room that loses its connection rejoins by itself and reports state 0
	// again with JoinTypeReconnected; each of its tries that fails is
	// reported as the warning ErrorCodeJoinRoomFailed (-2001) while it
	// retries. A room the SDK gives up because the server refuses it for
	// good reports ErrorCodeAbnormalServerStatus (-1084).
	//
	// State 0 comes before any message of the room: no On*MessageReceived
	// of a join precedes its state 0.
	OnRoomStateChanged(roomID, userID string, state int, info RoomStateInfo)

	// OnLeaveRoom fires with the result of LeaveRoom, once the member has
	// left the room, with the statistics of the stay.
	OnLeaveRoom(stats RoomStats)

	// OnTokenWillExpire fires 30 seconds before the room token's join
	// privilege expires. Answer with Room.UpdateToken; otherwise the member
	// is removed with state ErrorCodeTokenExpired.
	OnTokenWillExpire()

	// OnUserJoined fires when another visible user joins the room, when one
	// rejoins after a reconnect, and, right after this member's own
	// successful join (state 0), once for each member already present.
	// After this member's own rejoin (state 0 with JoinTypeReconnected) it
	// fires only for members that came while it was away; those that left
	// meanwhile get OnUserLeave with UserOfflineReasonDropped.
	OnUserJoined(user UserInfo)

	// OnUserLeave fires when another member leaves the room, with the
	// reason it left.
	OnUserLeave(userID string, reason UserOfflineReason)

	// OnUserMessageReceived fires when a member of the room sends this user
	// a text message with Room.SendUserMessage.
	OnUserMessageReceived(userID, message string)

	// OnUserBinaryMessageReceived fires when a member of the room sends this
	// user a binary message with Room.SendUserBinaryMessage. message is the
	// handler's to keep.
	OnUserBinaryMessageReceived(userID string, message []byte)

	// OnUserMessageSendResult fires exactly once for each ID returned by
	// Room.SendUserMessage and Room.SendUserBinaryMessage, failures
	// included.
	OnUserMessageSendResult(msgID int64, result UserMessageSendResult)

	// OnRoomMessageReceived fires when another member broadcasts a text
	// message to the room. A sender never receives its own broadcast.
	OnRoomMessageReceived(userID, message string)

	// OnRoomBinaryMessageReceived fires when another member broadcasts a
	// binary message to the room. A sender never receives its own
	// broadcast. message is the handler's to keep.
	OnRoomBinaryMessageReceived(userID string, message []byte)

	// OnRoomMessageSendResult fires exactly once for each ID returned by
	// Room.SendRoomMessage and Room.SendRoomBinaryMessage, failures
	// included. Success is RoomMessageSendResultSuccess (200), not 0.
	OnRoomMessageSendResult(msgID int64, result RoomMessageSendResult)
}

// NopEngineEventHandler implements every method of EngineEventHandler as a
// no-op. Embed it in a handler type to implement only the events you need:
//
//	type handler struct {
//		parley.NopEngineEventHandler
//	}
//
//	func (handler) OnLoginResult(userID string, code parley.LoginErrorCode, elapsed time.Duration) {
//		// ...
//	}
//
// Beware: because the embedded type already satisfies the interface, a
// method whose name or signature is misspelled on the embedding type still
// compiles and is never called. Add an assertion such as
// `var _ interface{ OnLogout(parley.LogoutReason) } = handler{}` for the
// methods you rely on.
type NopEngineEventHandler struct{}

var _ EngineEventHandler = NopEngineEventHandler{}

// OnConnectionStateChanged does nothing.
func (NopEngineEventHandler) OnConnectionStateChanged(ConnectionState) {}

// OnLoginResult does nothing.
func (NopEngineEventHandler) OnLoginResult(string, LoginErrorCode, time.Duration) {}

// OnLogout does nothing.
func (NopEngineEventHandler) OnLogout(LogoutReason) {}

// OnGetPeerOnlineStatus does nothing.
func (NopEngineEventHandler) OnGetPeerOnlineStatus(string, UserOnlineStatus) {}

// OnUserMessageReceivedOutsideRoom does nothing.
func (NopEngineEventHandler) OnUserMessageReceivedOutsideRoom(string, string) {}

// OnUserBinaryMessageReceivedOutsideRoom does nothing.
func (NopEngineEventHandler) OnUserBinaryMessageReceivedOutsideRoom(string, []byte) {}

// OnUserMessageSendResultOutsideRoom does nothing.
func (NopEngineEventHandler) OnUserMessageSendResultOutsideRoom(int64, UserMessageSendResult) {}

// OnServerParamsSetResult does nothing.
func (NopEngineEventHandler) OnServerParamsSetResult(int) {}

// OnServerMessageSendResult does nothing.
func (NopEngineEventHandler) OnServerMessageSendResult(int64, UserMessageSendResult, []byte) {}

// NopRoomEventHandler implements every method of RoomEventHandler as a
// no-op. Embed it in a handler type to implement only the events you need.
//
// Beware: because the embedded type already satisfies the interface, a
// method whose name or signature is misspelled on the embedding type still
// compiles and is never called. Add an assertion such as
// `var _ interface{ OnUserJoined(parley.UserInfo) } = handler{}` for the
// methods you rely on.
type NopRoomEventHandler struct{}

var _ RoomEventHandler = NopRoomEventHandler{}

// OnRoomStateChanged does nothing.
func (NopRoomEventHandler) OnRoomStateChanged(string, string, int, RoomStateInfo) {}

// OnLeaveRoom does nothing.
func (NopRoomEventHandler) OnLeaveRoom(RoomStats) {}

// OnTokenWillExpire does nothing.
func (NopRoomEventHandler) OnTokenWillExpire() {}

// OnUserJoined does nothing.
func (NopRoomEventHandler) OnUserJoined(UserInfo) {}

// OnUserLeave does nothing.
func (NopRoomEventHandler) OnUserLeave(string, UserOfflineReason) {}

// OnUserMessageReceived does nothing.
func (NopRoomEventHandler) OnUserMessageReceived(string, string) {}

// OnUserBinaryMessageReceived does nothing.
func (NopRoomEventHandler) OnUserBinaryMessageReceived(string, []byte) {}

// OnUserMessageSendResult does nothing.
func (NopRoomEventHandler) OnUserMessageSendResult(int64, UserMessageSendResult) {}

// OnRoomMessageReceived does nothing.
func (NopRoomEventHandler) OnRoomMessageReceived(string, string) {}

// OnRoomBinaryMessageReceived does nothing.
func (NopRoomEventHandler) OnRoomBinaryMessageReceived(string, []byte) {}

// OnRoomMessageSendResult does nothing.
func (NopRoomEventHandler) OnRoomMessageSendResult(int64, RoomMessageSendResult) {}

// UserInfo identifies a member of a room: the user joining with
// Room.JoinRoom, or another member in OnUserJoined.
type UserInfo struct {
	// UserID matches ^[a-zA-Z0-9_@\-.]{1,128}$.
	UserID string
	// ExtraInfo is at most 200 bytes, handed to the other members in
	// OnUserJoined.
	ExtraInfo string
}

// RoomConfig configures Room.JoinRoom. It is reserved and has no fields
// yet; the zero value is the default.
type RoomConfig struct{}

// RoomStateInfo is the extra information of OnRoomStateChanged, ByteRTC's
// extraInfo JSON as a struct. It is meaningful when state is 0.
type RoomStateInfo struct {
	// Elapsed is the time from the JoinRoom call to the successful join.
	Elapsed time.Duration
	// JoinType tells a first join from a rejoin after a reconnect.
	JoinType JoinType
}

// String returns the ByteRTC extraInfo JSON, with elapsed in whole
// milliseconds, e.g. {"elapsed":287,"join_type":0}.
func (i RoomStateInfo) String() string {
	return fmt.Sprintf(`{"elapsed":%d,"join_type":%d}`, i.Elapsed.Milliseconds(), int(i.JoinType))
}

// RoomStats are the statistics of one stay in a room, from the successful
// join to the leave, as reported by OnLeaveRoom.
type RoomStats struct {
	// Duration is how long the member was in the room.
	Duration time.Duration
	// SentMessages counts the messages this member sent in the room, user
	// messages and broadcasts.
	SentMessages int64
	// ReceivedMessages counts the messages this member received in the
	// room, user messages and broadcasts.
	ReceivedMessages int64
	// SentBytes is the payload size of the sent messages, in bytes.
	SentBytes int64
	// ReceivedBytes is the payload size of the received messages, in bytes.
	ReceivedBytes int64
	// UserCount is the number of members in the room, this one included,
	// when it left.
	UserCount int
}

// MessageConfig sets the reliability and ordering of a user message, in a
// room or outside. Room broadcasts take none.
type MessageConfig int

const (
	// MessageConfigReliableOrdered: low-latency, reliable and ordered; the
	// result is Success only once the receiving SDK has accepted the
	// message. The default.
	MessageConfigReliableOrdered MessageConfig = 0
	// MessageConfigUnreliableOrdered: ultra-low latency, ordered, may be
	// lost.
	MessageConfigUnreliableOrdered MessageConfig = 1
	// MessageConfigUnreliableUnordered: ultra-low latency, neither reliable
	// nor ordered.
	MessageConfigUnreliableUnordered MessageConfig = 2
)

// String returns the value's name, e.g. "ReliableOrdered".
func (c MessageConfig) String() string {
	switch c {
	case MessageConfigReliableOrdered:
		return "ReliableOrdered"
	case MessageConfigUnreliableOrdered:
		return "UnreliableOrdered"
	case MessageConfigUnreliableUnordered:
		return "UnreliableUnordered"
	}
	return fmt.Sprintf("MessageConfig(%d)", int(c))
}

// UserMessageSendResult is the result of a user message, in a room or
// outside, and of a server message. Success is 0.
type UserMessageSendResult int

const (
	// UserMessageSendResultSuccess: the message was delivered.
	UserMessageSendResultSuccess UserMessageSendResult = 0
	// UserMessageSendResultTimeout: no result within the message timeout.
	UserMessageSendResultTimeout UserMessageSendResult = 1
	// UserMessageSendResultNetworkDisconnected: the connection was closed or
	// given up with the send in flight.
	UserMessageSendResultNetworkDisconnected UserMessageSendResult = 2
	// UserMessageSendResultNoReceiver: the receiver is not found (not in the
	// room, not logged in).
	UserMessageSendResultNoReceiver UserMessageSendResult = 3
	// UserMessageSendResultNoRelayPath: the receiver is known but no relay
	// path to it exists.
	UserMessageSendResultNoRelayPath UserMessageSendResult = 4
	// UserMessageSendResultExceedQPS: the sender is over its rate quota.
	UserMessageSendResultExceedQPS UserMessageSendResult = 5
	// UserMessageSendResultE2BSSendFailed: the application server did not
	// receive the message (server messages only).
	UserMessageSendResultE2BSSendFailed UserMessageSendResult = 17
	// UserMessageSendResultE2BSReturnFailed: the application server
	// received the message but its response failed (server messages only).
	UserMessageSendResultE2BSReturnFailed UserMessageSendResult = 18
	// UserMessageSendResultNotJoin: the sender is not in the room.
	UserMessageSendResultNotJoin UserMessageSendResult = 100
	// UserMessageSendResultInit: the connection is not initialised yet.
	UserMessageSendResultInit UserMessageSendResult = 101
	// UserMessageSendResultNoConnection: no data channel is available.
	UserMessageSendResultNoConnection UserMessageSendResult = 102
	// UserMessageSendResultExceedMaxLength: the payload is over the maximum
	// length (64 KiB).
	UserMessageSendResultExceedMaxLength UserMessageSendResult = 103
	// UserMessageSendResultEmptyUser: the receiver's user ID is empty.
	UserMessageSendResultEmptyUser UserMessageSendResult = 104
	// UserMessageSendResultNotLogin: the sender is not logged in (messages
	// outside rooms and server messages).
	UserMessageSendResultNotLogin UserMessageSendResult = 105
	// UserMessageSendResultServerParamsNotSet: SetServerParams was not
	// called before SendServerMessage.
	UserMessageSendResultServerParamsNotSet UserMessageSendResult = 106
	// UserMessageSendResultUnknown: an unknown error.
	UserMessageSendResultUnknown UserMessageSendResult = 1000
)

// String returns the value's name, e.g. "NoReceiver".
func (r UserMessageSendResult) String() string {
	switch r {
	case UserMessageSendResultSuccess:
		return "Success"
	case UserMessageSendResultTimeout:
		return "Timeout"
	case UserMessageSendResultNetworkDisconnected:
		return "NetworkDisconnected"
	case UserMessageSendResultNoReceiver:
		return "NoReceiver"
	case UserMessageSendResultNoRelayPath:
		return "NoRelayPath"
	case UserMessageSendResultExceedQPS:
		return "ExceedQPS"
	case UserMessageSendResultE2BSSendFailed:
		return "E2BSSendFailed"
	case UserMessageSendResultE2BSReturnFailed:
		return "E2BSReturnFailed"
	case UserMessageSendResultNotJoin:
		return "NotJoin"
	case UserMessageSendResultInit:
		return "Init"
	case UserMessageSendResultNoConnection:
		return "NoConnection"
	case UserMessageSendResultExceedMaxLength:
		return "ExceedMaxLength"
	case UserMessageSendResultEmptyUser:
		return "EmptyUser"
	case UserMessageSendResultNotLogin:
		return "NotLogin"
	case UserMessageSendResultServerParamsNotSet:
		return "ServerParamsNotSet"
	case UserMessageSendResultUnknown:
		return "Unknown"
	}
	return fmt.Sprintf("UserMessageSendResult(%d)", int(r))
}

// RoomMessageSendResult is the result of a room broadcast. Success is 200,
// not 0.
type RoomMessageSendResult int

const (
	// RoomMessageSendResultSuccess: the server handed the broadcast to
	// every other member present.
	RoomMessageSendResultSuccess RoomMessageSendResult = 200
	// RoomMessageSendResultTimeout: no result within the message timeout.
	RoomMessageSendResultTimeout RoomMessageSendResult = 1
	// RoomMessageSendResultNetworkDisconnected: the connection was closed or
	// given up with the send in flight.
	RoomMessageSendResultNetworkDisconnected RoomMessageSendResult = 2
	// RoomMessageSendResultExceedQPS: the sender or the room is over its
	// rate quota.
	RoomMessageSendResultExceedQPS RoomMessageSendResult = 5
	// RoomMessageSendResultNotJoin: the sender is not in the room.
	RoomMessageSendResultNotJoin RoomMessageSendResult = 100
	// RoomMessageSendResultInit: the connection is not initialised yet.
	RoomMessageSendResultInit RoomMessageSendResult = 101
	// RoomMessageSendResultNoConnection: no data channel is available.
	RoomMessageSendResultNoConnection RoomMessageSendResult = 102
	// RoomMessageSendResultExceedMaxLength: the payload is over the maximum
	// length (64 KiB).
	RoomMessageSendResultExceedMaxLength RoomMessageSendResult = 103
	// RoomMessageSendResultUnknown: an unknown error.
	RoomMessageSendResultUnknown RoomMessageSendResult = 1000
)

// String returns the value's name, e.g. "Success".
func (r RoomMessageSendResult) String() string {
	switch r {
	case RoomMessageSendResultSuccess:
		return "Success"
	case RoomMessageSendResultTimeout:
		return "Timeout"
	case RoomMessageSendResultNetworkDisconnected:
		return "NetworkDisconnected"
	case RoomMessageSendResultExceedQPS:
		return "ExceedQPS"
	case RoomMessageSendResultNotJoin:
		return "NotJoin"
	case RoomMessageSendResultInit:
		return "Init"
	case RoomMessageSendResultNoConnection:
		return "NoConnection"
	case RoomMessageSendResultExceedMaxLength:
		return "ExceedMaxLength"
	case RoomMessageSendResultUnknown:
		return "Unknown"
	}
	return fmt.Sprintf("RoomMessageSendResult(%d)", int(r))
}

// LoginErrorCode is the result of a login, in OnLoginResult.
type LoginErrorCode int

const (
	// LoginErrorCodeSuccess: logged in.
	LoginErrorCodeSuccess LoginErrorCode = 0
	// LoginErrorCodeInvalidToken: the token is invalid or expired; get a
	// new one and call UpdateLoginToken.
	LoginErrorCodeInvalidToken LoginErrorCode = -1000
	// LoginErrorCodeLoginFailed: an unknown login error; log in again.
	LoginErrorCodeLoginFailed LoginErrorCode = -1001
	// LoginErrorCodeInvalidUserID: the user ID is invalid.
	LoginErrorCodeInvalidUserID LoginErrorCode = -1002
	// LoginErrorCodeServerError: a server error.
	LoginErrorCodeServerError LoginErrorCode = -1003
)

// String returns the value's name, e.g. "InvalidToken".
func (c LoginErrorCode) String() string {
	switch c {
	case LoginErrorCodeSuccess:
		return "Success"
	case LoginErrorCodeInvalidToken:
		return "InvalidToken"
	case LoginErrorCodeLoginFailed:
		return "LoginFailed"
	case LoginErrorCodeInvalidUserID:
		return "InvalidUserID"
	case LoginErrorCodeServerError:
		return "ServerError"
	}
	return fmt.Sprintf("LoginErrorCode(%d)", int(c))
}

// LogoutReason is why an Engine was logged out, in OnLogout.
type LogoutReason int

const (
	// LogoutReasonLogout: Logout or Close was called.
	LogoutReasonLogout LogoutReason = 0
	// LogoutReasonDuplicateLogin: another client logged in with the same
	// user ID and pushed this one out.
	LogoutReasonDuplicateLogin LogoutReason = 1
)

// String returns the value's name, e.g. "DuplicateLogin".
func (r LogoutReason) String() string {
	switch r {
	case LogoutReasonLogout:
		return "Logout"
	case LogoutReasonDuplicateLogin:
		return "DuplicateLogin"
	}
	return fmt.Sprintf("LogoutReason(%d)", int(r))
}

// UserOnlineStatus is a peer's login status, in OnGetPeerOnlineStatus.
type UserOnlineStatus int

const (
	// UserOnlineStatusOffline: the peer logged out or never logged in.
	UserOnlineStatusOffline UserOnlineStatus = 0
	// UserOnlineStatusOnline: the peer is logged in and its connection is
	// normal.
	UserOnlineStatusOnline UserOnlineStatus = 1
	// UserOnlineStatusUnreachable: the peer's state is abnormal or its
	// server cannot be reached.
	UserOnlineStatusUnreachable UserOnlineStatus = 2
)

// String returns the value's name, e.g. "Online".
func (s UserOnlineStatus) String() string {
	switch s {
	case UserOnlineStatusOffline:
		return "Offline"
	case UserOnlineStatusOnline:
		return "Online"
	case UserOnlineStatusUnreachable:
		return "Unreachable"
	}
	return fmt.Sprintf("UserOnlineStatus(%d)", int(s))
}

// UserOfflineReason is why another member left a room, in OnUserLeave.
type UserOfflineReason int

const (
	// UserOfflineReasonQuit: the member called LeaveRoom (or Close).
	UserOfflineReasonQuit UserOfflineReason = 0
	// UserOfflineReasonDropped: the member dropped, from a network failure
	// or an expired token.
	UserOfflineReasonDropped UserOfflineReason = 1
	// UserOfflineReasonSwitchToInvisible: the member became invisible.
	UserOfflineReasonSwitchToInvisible UserOfflineReason = 2
	// UserOfflineReasonKickedByAdmin: the server removed the member.
	UserOfflineReasonKickedByAdmin UserOfflineReason = 3
)

// String returns the value's name, e.g. "Quit".
func (r UserOfflineReason) String() string {
	switch r {
	case UserOfflineReasonQuit:
		return "Quit"
	case UserOfflineReasonDropped:
		return "Dropped"
	case UserOfflineReasonSwitchToInvisible:
		return "SwitchToInvisible"
	case UserOfflineReasonKickedByAdmin:
		return "KickedByAdmin"
	}
	return fmt.Sprintf("UserOfflineReason(%d)", int(r))
}

// ConnectionState is the state of an Engine's connection to the server, in
// OnConnectionStateChanged. There is no 0 value.
type ConnectionState int

const (
	// ConnectionStateDisconnected: the connection has been down for a
	// while; the SDK tries to reconnect.
	ConnectionStateDisconnected ConnectionState = 1
	// ConnectionStateConnecting: the first connection is in progress.
	ConnectionStateConnecting ConnectionState = 2
	// ConnectionStateConnected: the first connection succeeded.
	ConnectionStateConnected ConnectionState = 3
	// ConnectionStateReconnecting: the first connection is not up after a
	// while, or the connection was lost; the SDK is reconnecting.
	ConnectionStateReconnecting ConnectionState = 4
	// ConnectionStateReconnected: the connection is back after a drop.
	ConnectionStateReconnected ConnectionState = 5
	// ConnectionStateLost: Disconnected for a while without a successful
	// reconnect; the SDK keeps retrying.
	ConnectionStateLost ConnectionState = 6
	// ConnectionStateFailed: the server is abnormal or the SDK gave up;
	// there is no automatic reconnect.
	ConnectionStateFailed ConnectionState = 7
)

// String returns the value's name, e.g. "Lost".
func (s ConnectionState) String() string {
	switch s {
	case ConnectionStateDisconnected:
		return "Disconnected"
	case ConnectionStateConnecting:
		return "Connecting"
	case ConnectionStateConnected:
		return "Connected"
	case ConnectionStateReconnecting:
		return "Reconnecting"
	case ConnectionStateReconnected:
		return "Reconnected"
	case ConnectionStateLost:
		return "Lost"
	case ConnectionStateFailed:
		return "Failed"
	}
	return fmt.Sprintf("ConnectionState(%d)", int(s))
}

// JoinType tells a first join from a rejoin, in RoomStateInfo (ByteRTC
// JoinRoomType, the extraInfo key join_type).
type JoinType int

const (
	// JoinTypeFirst: the first join, after a JoinRoom call.
	JoinTypeFirst JoinType = 0
	// JoinTypeReconnected: the SDK rejoined by itself after a reconnect.
	JoinTypeReconnected JoinType = 1
)

// String returns the value's name, e.g. "First".
func (t JoinType) String() string {
	switch t {
	case JoinTypeFirst:
		return "First"
	case JoinTypeReconnected:
		return "Reconnected"
	}
	return fmt.Sprintf("JoinType(%d)", int(t))
}

// ErrorCode is a room state, the state argument of OnRoomStateChanged:
// ErrorCodeSuccess (0, joined), an error, or the warning
// ErrorCodeJoinRoomFailed. Compare with int(code).
type ErrorCode int

const (
	// ErrorCodeSuccess (state 0): the member joined, or rejoined, the room.
	ErrorCodeSuccess ErrorCode = 0
	// ErrorCodeInvalidToken: the token is invalid or expired at join, or
	// its AppID, room ID or user ID do not match; join again with a new
	// token.
	ErrorCodeInvalidToken ErrorCode = -1000
	// ErrorCodeJoinRoom: an unknown join error; join again.
	ErrorCodeJoinRoom ErrorCode = -1001
	// ErrorCodeDuplicateLogin: a user with the same user ID joined this
	// room; this member was removed.
	ErrorCodeDuplicateLogin ErrorCode = -1004
	// ErrorCodeKickedOut: the server removed this member.
	ErrorCodeKickedOut ErrorCode = -1006
	// ErrorCodeRoomIDIllegal: the room ID is illegal.
	ErrorCodeRoomIDIllegal ErrorCode = -1007
	// ErrorCodeTokenExpired: the token expired while in the room; the
	// member was removed. Join again with a new token.
	ErrorCodeTokenExpired ErrorCode = -1009
	// ErrorCodeUpdateTokenWithInvalidToken: UpdateToken was given an
	// invalid token.
	ErrorCodeUpdateTokenWithInvalidToken ErrorCode = -1010
	// ErrorCodeRoomDismiss: the server dismissed the room; every member was
	// removed.
	ErrorCodeRoomDismiss ErrorCode = -1011
	// ErrorCodeUserIDDifferent: one Engine joined rooms with different user
	// IDs.
	ErrorCodeUserIDDifferent ErrorCode = -1014
	// ErrorCodeAbnormalServerStatus: the SDK gave the room up because the
	// server refuses it for good, and does not rejoin by itself: the
	// Engine's connection failed (OnConnectionStateChanged Failed: a
	// reconnect was answered 401, 403 or 404, so the server no longer
	// serves this app at this URL), or a rejoin's connect was refused that
	// way, or the server answered the join with this code. A server going
	// away (shutting down, restarting) is not such a state: the rooms keep
	// trying, reporting ErrorCodeJoinRoomFailed, until it is back.
	ErrorCodeAbnormalServerStatus ErrorCode = -1084
	// ErrorCodeJoinRoomFailed is a warning, not an end: a room rejoining by
	// itself failed a try (the server could not be reached, or did not
	// answer, within the join timeout) and tries again after a backoff of
	// 0.5 s doubling to 5 s. It comes once per failed try, with
	// info.JoinType JoinTypeReconnected, until state 0 (or an error)
	// follows.
	ErrorCodeJoinRoomFailed ErrorCode = -2001
)

// String returns the value's name, e.g. "DuplicateLogin".
func (c ErrorCode) String() string {
	switch c {
	case ErrorCodeSuccess:
		return "Success"
	case ErrorCodeInvalidToken:
		return "InvalidToken"
	case ErrorCodeJoinRoom:
		return "JoinRoom"
	case ErrorCodeDuplicateLogin:
		return "DuplicateLogin"
	case ErrorCodeKickedOut:
		return "KickedOut"
	case ErrorCodeRoomIDIllegal:
		return "RoomIDIllegal"
	case ErrorCodeTokenExpired:
		return "TokenExpired"
	case ErrorCodeUpdateTokenWithInvalidToken:
		return "UpdateTokenWithInvalidToken"
	case ErrorCodeRoomDismiss:
		return "RoomDismiss"
	case ErrorCodeUserIDDifferent:
		return "UserIDDifferent"
	case ErrorCodeAbnormalServerStatus:
		return "AbnormalServerStatus"
	case ErrorCodeJoinRoomFailed:
		return "JoinRoomFailed"
	}
	return fmt.Sprintf("ErrorCode(%d)", int(c))
}
