package server

import (
	"fmt"

	"github.com/parleyhq/parley/internal/ids"
	"github.com/parleyhq/parley/token"
)

// Room error codes the server sends (ByteRTC ErrorCode values).
const (
	codeInvalidToken        = -1000
	codeJoinRoom            = -1001
	codeDuplicateLogin      = -1004
	codeKickedOut           = -1006
	codeTokenExpired        = -1009
	codeUpdateTokenInvalid  = -1010
	codeRoomIDIllegal       = -1007
	codeUserIDDifferent     = -1014
	codeAbnormalServerState = -1084
)

// UserOfflineReason values of UserLeft.
const (
	reasonQuit    = 0
	reasonDropped = 1
)

// joinError is a refused join: the code for the client, the metric label,
// and a reason for both the client and the log.
type joinError struct {
	code   int32
	result string
	reason string
}

// checkToken verifies raw as a token of appID, a configured app, for
// roomID (or "*") and userID, valid now. Every failure is -1000 with a reason that
// names what was wrong, never the key.
func (s *Server) checkToken(raw, appID, roomID, userID string) *joinError {
	bad := func(format string, args ...any) *joinError {
		return &joinError{codeInvalidToken, joinInvalidToken, fmt.Sprintf(format, args...)}
	}
	t, err := token.Parse(raw)
	if err != nil {
		return bad("token: %v", err)
	}
	if t.AppID != appID {
		return bad("token: for app %q, not %q", t.AppID, appID)
	}
	key, ok := s.cfg.Apps[t.AppID]
	if !ok {
		return bad("token: unknown app ID %q", t.AppID)
	}
	now := s.cfg.Clock.Now()
	if !t.VerifyAt(key, now) {
		if t.Expired(now) {
			return bad("token: expired")
		}
		return bad("token: bad signature")
	}
	if t.RoomID != roomID && t.RoomID != "*" {
		return bad("token: for room %q, not %q", t.RoomID, roomID)
	}
	if t.UserID != userID {
		return bad("token: for user %q, not %q", t.UserID, userID)
	}
	return nil
}

// checkIDs applies the ID and extra-info limits to a join.
func checkIDs(roomID, userID, extraInfo string) *joinError {
	if err := ids.Check("room ID", roomID); err != nil {
		return &joinError{codeRoomIDIllegal, joinInvalidID, err.Error()}
	}
	if err := ids.Check("user ID", userID); err != nil {
		return &joinError{codeJoinRoom, joinInvalidID, err.Error()}
	}
	if err := ids.CheckExtraInfo(extraInfo); err != nil {
		return &joinError{codeJoinRoom, joinInvalidID, err.Error()}
	}
	return nil
}
