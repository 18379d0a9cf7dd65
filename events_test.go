package parley

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// enumCase is one enum constant: its ByteRTC number and its String().
type enumCase struct {
	got  int          // int(constant)
	want int          // the ByteRTC number, written out
	str  fmt.Stringer // the constant itself
	name string       // its expected String()
}

// enumCases lists every constant of every enum with the numbers of API.md,
// one by one.
var enumCases = map[string][]enumCase{
	"MessageConfig": {
		{int(MessageConfigReliableOrdered), 0, MessageConfigReliableOrdered, "ReliableOrdered"},
		{int(MessageConfigUnreliableOrdered), 1, MessageConfigUnreliableOrdered, "UnreliableOrdered"},
		{int(MessageConfigUnreliableUnordered), 2, MessageConfigUnreliableUnordered, "UnreliableUnordered"},
	},
	"UserMessageSendResult": {
		{int(UserMessageSendResultSuccess), 0, UserMessageSendResultSuccess, "Success"},
		{int(UserMessageSendResultTimeout), 1, UserMessageSendResultTimeout, "Timeout"},
		{int(UserMessageSendResultNetworkDisconnected), 2, UserMessageSendResultNetworkDisconnected, "NetworkDisconnected"},
		{int(UserMessageSendResultNoReceiver), 3, UserMessageSendResultNoReceiver, "NoReceiver"},
		{int(UserMessageSendResultNoRelayPath), 4, UserMessageSendResultNoRelayPath, "NoRelayPath"},
		{int(UserMessageSendResultExceedQPS), 5, UserMessageSendResultExceedQPS, "ExceedQPS"},
		{int(UserMessageSendResultE2BSSendFailed), 17, UserMessageSendResultE2BSSendFailed, "E2BSSendFailed"},
		{int(UserMessageSendResultE2BSReturnFailed), 18, UserMessageSendResultE2BSReturnFailed, "E2BSReturnFailed"},
		{int(UserMessageSendResultNotJoin), 100, UserMessageSendResultNotJoin, "NotJoin"},
		{int(UserMessageSendResultInit), 101, UserMessageSendResultInit, "Init"},
		{int(UserMessageSendResultNoConnection), 102, UserMessageSendResultNoConnection, "NoConnection"},
		{int(UserMessageSendResultExceedMaxLength), 103, UserMessageSendResultExceedMaxLength, "ExceedMaxLength"},
		{int(UserMessageSendResultEmptyUser), 104, UserMessageSendResultEmptyUser, "EmptyUser"},
		{int(UserMessageSendResultNotLogin), 105, UserMessageSendResultNotLogin, "NotLogin"},
		{int(UserMessageSendResultServerParamsNotSet), 106, UserMessageSendResultServerParamsNotSet, "ServerParamsNotSet"},
		{int(UserMessageSendResultUnknown), 1000, UserMessageSendResultUnknown, "Unknown"},
	},
	"RoomMessageSendResult": {
		{int(RoomMessageSendResultSuccess), 200, RoomMessageSendResultSuccess, "Success"},
		{int(RoomMessageSendResultTimeout), 1, RoomMessageSendResultTimeout, "Timeout"},
		{int(RoomMessageSendResultNetworkDisconnected), 2, RoomMessageSendResultNetworkDisconnected, "NetworkDisconnected"},
		{int(RoomMessageSendResultExceedQPS), 5, RoomMessageSendResultExceedQPS, "ExceedQPS"},
		{int(RoomMessageSendResultNotJoin), 100, RoomMessageSendResultNotJoin, "NotJoin"},
		{int(RoomMessageSendResultInit), 101, RoomMessageSendResultInit, "Init"},
		{int(RoomMessageSendResultNoConnection), 102, RoomMessageSendResultNoConnection, "NoConnection"},
		{int(RoomMessageSendResultExceedMaxLength), 103, RoomMessageSendResultExceedMaxLength, "ExceedMaxLength"},
		{int(RoomMessageSendResultUnknown), 1000, RoomMessageSendResultUnknown, "Unknown"},
	},
	"LoginErrorCode": {
		{int(LoginErrorCodeSuccess), 0, LoginErrorCodeSuccess, "Success"},
		{int(LoginErrorCodeInvalidToken), -1000, LoginErrorCodeInvalidToken, "InvalidToken"},
		{int(LoginErrorCodeLoginFailed), -1001, LoginErrorCodeLoginFailed, "LoginFailed"},
		{int(LoginErrorCodeInvalidUserID), -1002, LoginErrorCodeInvalidUserID, "InvalidUserID"},
		{int(LoginErrorCodeServerError), -1003, LoginErrorCodeServerError, "ServerError"},
	},
	"LogoutReason": {
		{int(LogoutReasonLogout), 0, LogoutReasonLogout, "Logout"},
		{int(LogoutReasonDuplicateLogin), 1, LogoutReasonDuplicateLogin, "DuplicateLogin"},
	},
	"UserOnlineStatus": {
		{int(UserOnlineStatusOffline), 0, UserOnlineStatusOffline, "Offline"},
		{int(UserOnlineStatusOnline), 1, UserOnlineStatusOnline, "Online"},
		{int(UserOnlineStatusUnreachable), 2, UserOnlineStatusUnreachable, "Unreachable"},
	},
	"UserOfflineReason": {
		{int(UserOfflineReasonQuit), 0, UserOfflineReasonQuit, "Quit"},
		{int(UserOfflineReasonDropped), 1, UserOfflineReasonDropped, "Dropped"},
		{int(UserOfflineReasonSwitchToInvisible), 2, UserOfflineReasonSwitchToInvisible, "SwitchToInvisible"},
		{int(UserOfflineReasonKickedByAdmin), 3, UserOfflineReasonKickedByAdmin, "KickedByAdmin"},
	},
	"ConnectionState": {
		{int(ConnectionStateDisconnected), 1, ConnectionStateDisconnected, "Disconnected"},
		{int(ConnectionStateConnecting), 2, ConnectionStateConnecting, "Connecting"},
		{int(ConnectionStateConnected), 3, ConnectionStateConnected, "Connected"},
		{int(ConnectionStateReconnecting), 4, ConnectionStateReconnecting, "Reconnecting"},
		{int(ConnectionStateReconnected), 5, ConnectionStateReconnected, "Reconnected"},
		{int(ConnectionStateLost), 6, ConnectionStateLost, "Lost"},
		{int(ConnectionStateFailed), 7, ConnectionStateFailed, "Failed"},
	},
	"JoinType": {
		{int(JoinTypeFirst), 0, JoinTypeFirst, "First"},
		{int(JoinTypeReconnected), 1, JoinTypeReconnected, "Reconnected"},
	},
	"ErrorCode": {
		{int(ErrorCodeSuccess), 0, ErrorCodeSuccess, "Success"},
		{int(ErrorCodeInvalidToken), -1000, ErrorCodeInvalidToken, "InvalidToken"},
		{int(ErrorCodeJoinRoom), -1001, ErrorCodeJoinRoom, "JoinRoom"},
		{int(ErrorCodeDuplicateLogin), -1004, ErrorCodeDuplicateLogin, "DuplicateLogin"},
		{int(ErrorCodeKickedOut), -1006, ErrorCodeKickedOut, "KickedOut"},
		{int(ErrorCodeRoomIDIllegal), -1007, ErrorCodeRoomIDIllegal, "RoomIDIllegal"},
		{int(ErrorCodeTokenExpired), -1009, ErrorCodeTokenExpired, "TokenExpired"},
		{int(ErrorCodeUpdateTokenWithInvalidToken), -1010, ErrorCodeUpdateTokenWithInvalidToken, "UpdateTokenWithInvalidToken"},
		{int(ErrorCodeRoomDismiss), -1011, ErrorCodeRoomDismiss, "RoomDismiss"},
		{int(ErrorCodeUserIDDifferent), -1014, ErrorCodeUserIDDifferent, "UserIDDifferent"},
		{int(ErrorCodeAbnormalServerStatus), -1084, ErrorCodeAbnormalServerStatus, "AbnormalServerStatus"},
		{int(ErrorCodeJoinRoomFailed), -2001, ErrorCodeJoinRoomFailed, "JoinRoomFailed"},
	},
}

func TestEnumValues(t *testing.T) {
	for typ, cases := range enumCases {
		t.Run(typ, func(t *testing.T) {
			seen := make(map[int]string, len(cases))
			for _, c := range cases {
				require.Equal(t, c.want, c.got, "%s%s", typ, c.name)
				prev, dup := seen[c.got]
				require.False(t, dup, "%s%s and %s%s share %d", typ, c.name, typ, prev, c.got)
				seen[c.got] = c.name
			}
		})
	}
}

func TestEnumString(t *testing.T) {
	for typ, cases := range enumCases {
		t.Run(typ, func(t *testing.T) {
			for _, c := range cases {
				require.Equal(t, c.name, c.str.String(), "%s(%d)", typ, c.got)
				// fmt uses String for %v and %s.
				require.Equal(t, c.name, fmt.Sprint(c.str))
			}
		})
	}
}

func TestEnumStringUnknown(t *testing.T) {
	tests := []struct {
		v    fmt.Stringer
		want string
	}{
		{MessageConfig(3), "MessageConfig(3)"},
		{MessageConfig(-1), "MessageConfig(-1)"},
		{UserMessageSendResult(123), "UserMessageSendResult(123)"},
		{UserMessageSendResult(200), "UserMessageSendResult(200)"}, // 200 is a room result only
		{RoomMessageSendResult(0), "RoomMessageSendResult(0)"},     // room success is 200, not 0
		{RoomMessageSendResult(3), "RoomMessageSendResult(3)"},
		{LoginErrorCode(-1004), "LoginErrorCode(-1004)"},
		{LogoutReason(2), "LogoutReason(2)"},
		{UserOnlineStatus(3), "UserOnlineStatus(3)"},
		{UserOfflineReason(4), "UserOfflineReason(4)"},
		{ConnectionState(0), "ConnectionState(0)"}, // ByteRTC has no 0 state
		{ConnectionState(8), "ConnectionState(8)"},
		{JoinType(2), "JoinType(2)"},
		{ErrorCode(-1008), "ErrorCode(-1008)"}, // ByteRTC has no -1008
		{ErrorCode(-2002), "ErrorCode(-2002)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			require.Equal(t, tt.want, tt.v.String())
		})
	}
}

func TestRoomStateInfoString(t *testing.T) {
	tests := []struct {
		name string
		info RoomStateInfo
		want string
	}{
		{"zero", RoomStateInfo{}, `{"elapsed":0,"join_type":0}`},
		{"first", RoomStateInfo{Elapsed: 287 * time.Millisecond, JoinType: JoinTypeFirst}, `{"elapsed":287,"join_type":0}`},
		{"reconnected", RoomStateInfo{Elapsed: 3 * time.Second, JoinType: JoinTypeReconnected}, `{"elapsed":3000,"join_type":1}`},
		{"truncates to whole ms", RoomStateInfo{Elapsed: 287*time.Millisecond + 999*time.Microsecond}, `{"elapsed":287,"join_type":0}`},
		{"sub-millisecond", RoomStateInfo{Elapsed: 999 * time.Microsecond}, `{"elapsed":0,"join_type":0}`},
		{"long", RoomStateInfo{Elapsed: 72 * time.Hour, JoinType: JoinTypeReconnected}, `{"elapsed":259200000,"join_type":1}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.info.String()
			require.Equal(t, tt.want, got)
			require.Equal(t, tt.want, fmt.Sprint(tt.info))

			var m map[string]json.RawMessage
			require.NoError(t, json.Unmarshal([]byte(got), &m))
			require.Len(t, m, 2)
			require.Contains(t, m, "elapsed")
			require.Contains(t, m, "join_type")

			var parsed struct {
				Elapsed  int64 `json:"elapsed"`
				JoinType int   `json:"join_type"`
			}
			require.NoError(t, json.Unmarshal([]byte(got), &parsed))
			require.Equal(t, tt.info.Elapsed.Milliseconds(), parsed.Elapsed)
			require.Equal(t, int(tt.info.JoinType), parsed.JoinType)
		})
	}
}

func ExampleRoomStateInfo_String() {
	info := RoomStateInfo{Elapsed: 287 * time.Millisecond, JoinType: JoinTypeFirst}
	fmt.Println(info)
	// Output: {"elapsed":287,"join_type":0}
}
