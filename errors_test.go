package parley

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestSentinelErrors(t *testing.T) {
	sentinels := []struct {
		err  error
		text string
	}{
		{ErrInvalidArgument, "parley: invalid argument"},
		{ErrAlreadyInRoom, "parley: already in room"},
		{ErrAlreadyLoggedIn, "parley: already logged in"},
		{ErrNotLoggedIn, "parley: not logged in"},
		{ErrEngineClosed, "parley: engine closed"},
		{ErrRoomClosed, "parley: room closed"},
	}
	for _, s := range sentinels {
		t.Run(s.text, func(t *testing.T) {
			require.EqualError(t, s.err, s.text)

			wrapped := fmt.Errorf("join room r1: %w", s.err)
			require.ErrorIs(t, wrapped, s.err)
			require.EqualError(t, wrapped, "join room r1: "+s.text)

			twice := fmt.Errorf("outer: %w", wrapped)
			require.ErrorIs(t, twice, s.err)

			joined := errors.Join(errors.New("other"), wrapped)
			require.ErrorIs(t, joined, s.err)

			// Distinct sentinels never match each other.
			for _, o := range sentinels {
				if o.err != s.err {
					require.NotErrorIs(t, wrapped, o.err)
				}
			}
		})
	}
}

func TestInvalidArg(t *testing.T) {
	err := invalidArg("room ID %q", "a b")
	require.ErrorIs(t, err, ErrInvalidArgument)
	require.EqualError(t, err, `parley: invalid argument: room ID "a b"`)

	err = invalidArg("extra info is %d bytes, over %d", 201, 200)
	require.ErrorIs(t, err, ErrInvalidArgument)
	require.EqualError(t, err, "parley: invalid argument: extra info is 201 bytes, over 200")

	err = invalidArg("empty AppID")
	require.ErrorIs(t, err, ErrInvalidArgument)
	require.EqualError(t, err, "parley: invalid argument: empty AppID")
	require.NotErrorIs(t, err, ErrAlreadyInRoom)
}

func TestErrorMessage(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Code: -1000, Reason: "reason"}, "parley: code -1000: reason"},
		{&Error{Code: int(LoginErrorCodeInvalidUserID), Reason: "bad user ID"}, "parley: code -1002: bad user ID"},
		{&Error{Code: 103}, "parley: code 103"},
		{&Error{}, "parley: code 0"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			require.EqualError(t, tt.err, tt.want)
		})
	}
}

func TestErrorIs(t *testing.T) {
	var err error = fmt.Errorf("login: %w", &Error{Code: -1000, Reason: "token expired"})

	tests := []struct {
		name   string
		target error
		want   bool
	}{
		{"same code, no reason", &Error{Code: -1000}, true},
		{"same code, other reason", &Error{Code: -1000, Reason: "anything"}, true},
		{"typed code", &Error{Code: int(ErrorCodeInvalidToken)}, true},
		{"other code", &Error{Code: -1001}, false},
		{"nil *Error", (*Error)(nil), false},
		{"sentinel", ErrInvalidArgument, false},
		{"plain error", errors.New("parley: code -1000: token expired"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, errors.Is(err, tt.target))
		})
	}

	// A server code never matches a sentinel, and vice versa.
	require.NotErrorIs(t, ErrInvalidArgument, &Error{Code: -1000})
}

func TestErrorAs(t *testing.T) {
	err := fmt.Errorf("join room r1: %w", &Error{Code: int(ErrorCodeTokenExpired), Reason: "token expired"})

	var e *Error
	require.ErrorAs(t, err, &e)
	require.Equal(t, -1009, e.Code)
	require.Equal(t, ErrorCodeTokenExpired, ErrorCode(e.Code))
	require.Equal(t, "token expired", e.Reason)

	joined := errors.Join(ErrEngineClosed, err)
	e = nil
	require.ErrorAs(t, joined, &e)
	require.Equal(t, -1009, e.Code)

	require.False(t, errors.As(fmt.Errorf("x: %w", ErrRoomClosed), &e))
}

func ExampleError() {
	err := fmt.Errorf("login: %w", &Error{Code: int(LoginErrorCodeInvalidToken), Reason: "token expired"})

	fmt.Println(errors.Is(err, &Error{Code: int(LoginErrorCodeInvalidToken)}))
	var e *Error
	if errors.As(err, &e) {
		fmt.Println(LoginErrorCode(e.Code), e.Reason)
	}
	fmt.Println(err)
	// Output:
	// true
	// InvalidToken token expired
	// login: parley: code -1000: token expired
}
