//go:build unix

package transport

import (
	"runtime"
	"syscall"
)

// getBufferSizes reads SO_RCVBUF and SO_SNDBUF of fd; on Linux, halved
// (see bufferSizes).
func getBufferSizes(fd uintptr) (rcv, snd int, err error) {
	if rcv, err = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF); err != nil {
		return 0, 0, err
	}
	if snd, err = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_SNDBUF); err != nil {
		return 0, 0, err
	}
	if runtime.GOOS == "linux" {
		rcv, snd = rcv/2, snd/2
	}
	return rcv, snd, nil
}
