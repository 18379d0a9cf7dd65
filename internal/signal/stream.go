package signal

import (
	"errors"
	"sync"
)

// ErrReplayFull reports that the frames a peer has not acknowledged
// outgrew the replay buffer: the session can no longer promise to lose
// nothing across a resume.
var ErrReplayFull = errors.New("signal: replay buffer full")

// ErrGap reports a frame whose number skips ahead: frames were lost on a
// connection that should lose nothing.
var ErrGap = errors.New("signal: frame sequence gap")

// Stream is one session's sequencing of frames in both directions, across
// its connections: it numbers the frames it sends and keeps them until the
// peer acknowledges them, so they can be replayed on the next connection
// after a resume; and it remembers how far it has received, so that
// replayed frames it already has are dropped.
type Stream struct {
	mu       sync.Mutex
	sent     uint64             // the last seq handed out
	received uint64             // the last seq received in order
	acked    uint64             // the last received seq this side has acknowledged
	replay   []frame            // sent frames the peer has not acknowledged, oldest first
	bytes    int                // their size
	max      int                // the most bytes replay may hold
	write    func([]byte) error // the current connection's; nil while detached
	force    func([]byte) error // the same, past its queue's bound (Conn.SendForced); nil while detached
}

type frame struct {
	seq uint64
	b   []byte
}

// NewStream returns a Stream whose replay buffer holds at most maxBytes.
func NewStream(maxBytes int) *Stream { return &Stream{max: maxBytes} }

// SetMax changes the most bytes the replay buffer holds, for the next
// Send on: a server keeps it small until the peer has authenticated.
func (s *Stream) SetMax(maxBytes int) {
	s.mu.Lock()
	s.max = maxBytes
	s.mu.Unlock()
}

// Send numbers a frame, keeps it for replay and writes it to the current
// connection, if any, in one step: frames reach the connection in the
// order of their numbers. encode builds the frame from its seq and the
// acknowledgement to piggyback.
func (s *Stream) Send(encode func(seq, acked uint64) []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	seq := s.sent + 1
	b := encode(seq, s.received)
	if s.bytes+len(b) > s.max {
		return ErrReplayFull
	}
	s.sent = seq
	s.acked = s.received
	s.replay = append(s.replay, frame{seq, b})
	s.bytes += len(b)
	if s.write != nil {
		return s.write(b)
	}
	return nil
}

// SendUnsequenced writes a frame outside the sequence (an acknowledgement,
// a resume handshake) to the current connection; it is never replayed.
func (s *Stream) SendUnsequenced(encode func(acked uint64) []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.force == nil {
		return ErrClosed
	}
	s.acked = s.received
	return s.force(encode(s.received))
}

// Receive records a received frame's seq and the peer's acknowledgement,
// and reports whether the frame is new and should be processed: a seq of
// 0 (unsequenced) always is, one already received is not, one that skips
// ahead is ErrGap.
func (s *Stream) Receive(seq, acked uint64) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trim(acked)
	switch {
	case seq == 0:
		return true, nil
	case seq <= s.received:
		return false, nil
	case seq == s.received+1:
		s.received = seq
		return true, nil
	default:
		return false, ErrGap
	}
}

// Received is the last seq received in order.
func (s *Stream) Received() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received
}

// Unacknowledged is how many received frames this side has not yet
// acknowledged (piggybacked or alone).
func (s *Stream) Unacknowledged() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.received - s.acked
}

// Attach makes a connection the current one: the frames the peer has not
// received (after its acked) are written first, in order, with force, then
// every later Send goes to write. force is the connection's write past its
// queue's bound (Conn.SendForced), for the frames that something else
// bounds already: the replay (by the replay buffer) and the unsequenced
// acknowledgements (by the frames received).
func (s *Stream) Attach(acked uint64, force, write func([]byte) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.trim(acked)
	for _, f := range s.replay {
		if err := force(f.b); err != nil {
			return err
		}
	}
	s.write, s.force = write, force
	return nil
}

// Detach forgets the current connection; Send keeps frames for the next.
func (s *Stream) Detach() {
	s.mu.Lock()
	s.write, s.force = nil, nil
	s.mu.Unlock()
}

// trim forgets the frames up to acked.
func (s *Stream) trim(acked uint64) {
	i := 0
	for i < len(s.replay) && s.replay[i].seq <= acked {
		s.bytes -= len(s.replay[i].b)
		i++
	}
	if i > 0 {
		n := copy(s.replay, s.replay[i:])
		clear(s.replay[n:])
		s.replay = s.replay[:n]
	}
}
