package transport

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/pion/datachannel"
	"github.com/pion/sctp"
	"github.com/pion/webrtc/v4"
)

// Channels is the three detached data channels of an open transport.
type Channels [NumChannels]datachannel.ReadWriteCloser

// OnOpen calls ready once all of dcs are open, with their detached ends, or
// failed if one cannot be detached. Exactly one of the two is called, at
// most once, from a pion goroutine: it must not block.
func OnOpen(dcs [NumChannels]*webrtc.DataChannel, ready func(Channels), failed func(error)) {
	var (
		mu    sync.Mutex
		chans Channels
		n     int
		done  bool
	)
	for i, dc := range dcs {
		dc.OnOpen(func() {
			rw, err := dc.Detach()
			mu.Lock()
			if done {
				mu.Unlock()
				if rw != nil {
					_ = rw.Close()
				}
				return
			}
			if err != nil {
				done = true
				mu.Unlock()
				failed(fmt.Errorf("detach data channel %d: %w", i, err))
				return
			}
			switch i { // maxRetransmits 0, ordered and not (see applyReliability)
			case ChannelUnreliableOrdered:
				applyReliability(rw, false, 0)
			case ChannelUnreliableUnordered:
				applyReliability(rw, true, 0)
			}
			chans[i] = rw
			n++
			all := n == NumChannels
			if all {
				done = true
			}
			mu.Unlock()
			if all {
				ready(chans)
			}
		})
	}
}

// ReadLoop reads messages from rw into one reused buffer and hands each to
// handle until rw fails or closes; handle must copy what it keeps. It
// returns nil when the channel was closed, else the read error.
func ReadLoop(rw datachannel.ReadWriteCloser, handle func([]byte)) error {
	return ReadLoopRoom(rw, 0, 0, func(buf []byte, off, end int) { handle(buf[off:end]) })
}

// ReadLoopRoom is ReadLoop with free space around each message: handle
// gets the whole buffer, whose bytes [off:end] are the message, with at
// least head bytes before off and tail bytes after end that it may
// overwrite (to re-frame the message in place).
//
// The buffer starts small (readSmall) and grows to MaxSCTPMessage for a
// message that does not fit (pion keeps a message it could not hand over
// for a short buffer, and the read is tried again); it goes back to small
// after readShrinkAfter small messages in a row. An idle channel so costs
// a few KiB, not 256 KiB.
func ReadLoopRoom(rw datachannel.ReadWriteCloser, head, tail int, handle func(buf []byte, off, end int)) error {
	size := readSmall
	buf := make([]byte, head+size+tail)
	small := 0 // small messages in a row read into the big buffer
	for {
		n, err := rw.Read(buf[head : head+size])
		switch {
		case errors.Is(err, io.ErrShortBuffer) && size < MaxSCTPMessage:
			size = MaxSCTPMessage
			buf = make([]byte, head+size+tail)
			small = 0
			continue
		case err != nil:
			if isClosed(err) {
				return nil
			}
			return err
		}
		handle(buf, head, head+n)
		if size > readSmall && n <= readSmall {
			if small++; small >= readShrinkAfter {
				size = readSmall
				buf = make([]byte, head+size+tail)
			}
		} else {
			small = 0
		}
	}
}

// A read loop's buffer for small messages, and how many small messages in
// a row take it back there from MaxSCTPMessage.
const (
	readSmall       = 4 << 10
	readShrinkAfter = 64
)

// isClosed reports the errors a data channel's Read returns once it, or
// its association, is closed.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrClosedPipe) || errors.Is(err, sctp.ErrStreamClosed)
}
