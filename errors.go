package parley

import (
	"errors"
	"fmt"
)

// Errors returned synchronously for local misuse. A method that returns one
// of them did nothing, and no result callback follows. They may come
// wrapped with context; test them with errors.Is.
//
// These are the only errors the SDK's methods return: no method waits for
// the server, so what the server answers (a refused token, a removal, a
// send's fate) always arrives as a code in a callback, typed by its enum
// (LoginErrorCode, ErrorCode, UserMessageSendResult, ...).
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

// invalidArg returns an error that wraps ErrInvalidArgument with context,
// e.g. invalidArg("room ID %q", id) reads
// `parley: invalid argument: room ID "a b"`.
func invalidArg(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalidArgument}, args...)...)
}
