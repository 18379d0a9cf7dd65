//go:build !unix

package transport

func getBufferSizes(uintptr) (rcv, snd int, err error) { return 0, 0, errNoSockopt }
