//go:build !unix

package transport

import "errors"

// errNoSockopt: the platform cannot read a socket's buffer sizes.
var errNoSockopt = errors.New("socket buffer sizes cannot be read on this platform")

func getBufferSizes(uintptr) (rcv, snd int, err error) { return 0, 0, errNoSockopt }
