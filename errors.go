package parley

import (
	"errors"
	"fmt"
	"strconv"
)

// Errors returned synchronously for local misuse. A method that returns one
// of them did nothing, and no result callback follows. They may come
// wrapped with context; test them with errors.Is.
var (
	// ErrInvalidArgument reports an argument the SDK refuses before any
	// network I/O: an illegal room or user ID, extra info over 200 bytes, a
	// missing required config field (ByteRTC return -1).
	ErrInvalidArgument = errors.New("parley: invalid argument")

	// ErrAlreadyInRoom is returned by JoinRoom on a Room that has joined, or
	// is joining, and has not left since (ByteRTC joinRoom -2).
	ErrAlreadyInRoom = errors.New("parley: already in room")

	// ErrAlreadyLoggedIn is returned by Login on an Engine that is logged
	// in, or logging in, and has not logged out since (ByteRTC login -2).
	ErrAlreadyLoggedIn = errors.New("parley: already logged in")

	// ErrNotLoggedIn is returned by an Engine method that needs a login, or
	// a login attempt in progress, when there is none.
	ErrNotLoggedIn = errors.New("parley: not logged in")

	// ErrEngineClosed is returned by the methods of an Engine and of its
	// Rooms, Close excepted, once Engine.Close has been called.
	ErrEngineClosed = errors.New("parley: engine closed")

	// ErrRoomClosed is returned by the methods of a Room, Close excepted,
	// once Room.Close has been called.
	ErrRoomClosed = errors.New("parley: room closed")
)

// Error is a code reported by the server: a request reached it and was
// refused, as opposed to the sentinel errors above, which the SDK returns
// without asking the server. Codes are ByteRTC numbers (a LoginErrorCode or
// ErrorCode value, for instance) wherever ByteRTC has one.
//
// Result callbacks carry such codes as their enum types; Error is the form a
// server code takes where it travels as an error. Test for a code with
// errors.Is, which compares codes only:
//
//	errors.Is(err, &parley.Error{Code: int(parley.ErrorCodeInvalidToken)})
//
// and read the reason with errors.As.
type Error struct {
	// Code is the server's numeric code.
	Code int
	// Reason is the server's human-readable explanation; it may be empty
	// and is not meant to be matched.
	Reason string
}

// Error returns "parley: code <Code>: <Reason>", or "parley: code <Code>"
// when Reason is empty.
func (e *Error) Error() string {
	if e.Reason == "" {
		return "parley: code " + strconv.Itoa(e.Code)
	}
	return "parley: code " + strconv.Itoa(e.Code) + ": " + e.Reason
}

// Is reports whether target is an *Error with the same Code, whatever its
// Reason, so that errors.Is(err, &Error{Code: c}) matches any server error
// with code c.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t != nil && t.Code == e.Code
}

// invalidArg returns an error that wraps ErrInvalidArgument with context,
// e.g. invalidArg("room ID %q", id) reads
// `parley: invalid argument: room ID "a b"`.
func invalidArg(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidArgument}, args...)...)
}
