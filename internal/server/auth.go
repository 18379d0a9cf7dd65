package server

import (
	"fmt"
	"time"

	"go.uber.org/zap"

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
// a reason for the client and, when the log should know more than the
// client, the detail for the log.
type joinError struct {
	code   int32
	result string
	reason string
	detail string // "" when the reason says it all
}

// logDetail is what the log says about the refusal.
func (je *joinError) logDetail() string {
	if je.detail != "" {
		return je.detail
	}
	return je.reason
}

// reasonBadCredentials is the one reason the client gets for a token of an
// app the server does not know and for a token with a bad signature: told
// apart, they would tell a stranger which AppIDs exist. The log tells them
// apart.
const reasonBadCredentials = "token: invalid (unknown app ID or bad signature)"

// checkToken verifies raw as a token of appID, a configured app, for
// roomID (or "*") and userID, valid now. Every failure is -1000 with a
// reason that names what was wrong, never the key, and never whether the
// app exists: that is only in the detail, for the log. An expired token is
// said to be expired only once its signature has been checked. The IDs
// are echoed short (see echo): the caller has checked roomID and userID,
// but not appID, and nobody has checked the token's before its signature.
func (s *Server) checkToken(raw, appID, roomID, userID string) *joinError {
	bad := func(format string, args ...any) *joinError {
		return &joinError{codeInvalidToken, joinInvalidToken, fmt.Sprintf(format, args...), ""}
	}
	t, err := token.Parse(raw)
	if err != nil {
		return bad("token: %v", err)
	}
	if t.AppID != appID {
		je := bad("token: not for the app ID of the request")
		je.detail = fmt.Sprintf("token: for app %s, not %s", echo(t.AppID), echo(appID))
		return je
	}
	key, ok := s.cfg.Apps[t.AppID]
	if !ok {
		je := bad(reasonBadCredentials)
		je.detail = fmt.Sprintf("token: unknown app ID %s", echo(t.AppID))
		return je
	}
	now := s.cfg.Clock.Now()
	if !t.VerifyAt(key, now) {
		// At the epoch nothing has expired: this checks the signature alone.
		if t.Expired(now) && t.VerifyAt(key, time.Unix(0, 0)) {
			return bad("token: expired")
		}
		je := bad(reasonBadCredentials)
		je.detail = fmt.Sprintf("token: bad signature for app %s", echo(t.AppID))
		return je
	}
	if t.RoomID != roomID && t.RoomID != "*" {
		return bad("token: for room %s, not %s", echo(t.RoomID), echo(roomID))
	}
	if t.UserID != userID {
		return bad("token: for user %s, not %s", echo(t.UserID), echo(userID))
	}
	return nil
}

// checkIDs applies the ID and extra-info limits to a join. The reasons
// echo an illegal ID short (see checkID).
func checkIDs(roomID, userID, extraInfo string) *joinError {
	if err := checkID("room ID", roomID); err != nil {
		return &joinError{codeRoomIDIllegal, joinInvalidID, err.Error(), ""}
	}
	if err := checkID("user ID", userID); err != nil {
		return &joinError{codeJoinRoom, joinInvalidID, err.Error(), ""}
	}
	if err := ids.CheckExtraInfo(extraInfo); err != nil {
		return &joinError{codeJoinRoom, joinInvalidID, err.Error(), ""}
	}
	return nil
}

// checkID is ids.Check with an error that may be echoed to the client and
// logged: it quotes an illegal ID only when it is short, else its first
// bytes and its length.
func checkID(what, id string) error {
	err := ids.Check(what, id)
	if err == nil || len(id) <= echoMax || len(id) > ids.MaxIDLen {
		return err // ids.Check quotes the ID only when it is at most MaxIDLen bytes
	}
	return fmt.Errorf("%s %s has an illegal character (allowed: a-z A-Z 0-9 _ @ - .)", what, echo(id))
}

// echoMax is the most bytes of a string a client sent that the server
// echoes or logs as it is; a longer one is cut (see echo).
const echoMax = 32

// echo quotes s, a string a client sent, for a reason or a log line: whole
// when it is at most echoMax bytes, else its first echoMax bytes and its
// length, so that an unchecked field costs the server at most a few dozen
// bytes per echo however long it is.
func echo(s string) string {
	if len(s) <= echoMax {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprintf("%q... (%d bytes)", s[:echoMax], len(s))
}

// quoted is a log field for a string a client sent, cut as echo cuts it.
func quoted(key, s string) zap.Field {
	if len(s) <= echoMax {
		return zap.String(key, s)
	}
	return zap.String(key, echo(s))
}
