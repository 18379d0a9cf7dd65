package signal

import (
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// ErrMalformed reports a frame that is not a valid envelope.
var ErrMalformed = errors.New("signal: malformed frame")

// DecodeClientFrame decodes one client-to-server frame. A frame that does
// not decode, or that carries no request this version knows, is
// ErrMalformed.
func DecodeClientFrame(b []byte) (*pb.ClientFrame, error) {
	var f pb.ClientFrame
	if err := proto.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if f.Body == nil {
		return nil, fmt.Errorf("%w: no known request", ErrMalformed)
	}
	if f.RequestId == 0 {
		return nil, fmt.Errorf("%w: request_id 0", ErrMalformed)
	}
	return &f, nil
}

// DecodeServerFrame decodes one server-to-client frame. A frame that does
// not decode is ErrMalformed; an unknown body is left to the caller, so a
// newer server's events can be skipped.
func DecodeServerFrame(b []byte) (*pb.ServerFrame, error) {
	if f, ok := decodeMembership(b); ok {
		return f, nil
	}
	var f pb.ServerFrame
	if err := proto.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return &f, nil
}

// MustMarshal encodes m, one of Parley's protobuf messages. Encoding those
// fails only on a programming error (a string field that is not UTF-8 where
// the SDK or the server had to check it), so it panics rather than hand a
// caller an error it cannot act on.
func MustMarshal(m proto.Message) []byte {
	b, err := proto.Marshal(m)
	if err != nil {
		panic("parley: marshal " + string(m.ProtoReflect().Descriptor().FullName()) + ": " + err.Error())
	}
	return b
}
