// Package signal runs one signaling WebSocket: a read pump and a write pump
// per connection (gorilla's chat example), keepalive pings with deadlines, a
// bounded outgoing queue, and a close handshake with a code and reason. The
// client and the server use it alike; what the frames mean is theirs.
package signal

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// MaxFrameSize is the largest frame either side reads; a larger one closes
// the connection with websocket.CloseMessageTooBig.
const MaxFrameSize = 1 << 20

const (
	writeWait  = 10 * time.Second // deadline of one frame write
	closeGrace = time.Second      // how long Close waits for the peer's close frame
)

// Errors of Send.
var (
	ErrQueueFull = errors.New("signal: send queue full")
	ErrClosed    = errors.New("signal: connection closed")
)

// CloseError is the reason a connection was closed by this side: a frame
// handler returns one to close the connection with that code and reason.
type CloseError struct {
	Code   int    // a websocket close code
	Reason string // sent in the close frame; at most 123 bytes
}

func (e *CloseError) Error() string {
	return fmt.Sprintf("signal: closed with %d: %s", e.Code, e.Reason)
}

// Config tunes a Conn; zero fields take their defaults.
type Config struct {
	// PingInterval is how often a ping is sent. Default: 10s.
	PingInterval time.Duration
	// ReadTimeout is how long the connection may stay silent (no frame, ping
	// or pong) before it is considered dead. Default: 3 × PingInterval.
	ReadTimeout time.Duration
	// QueueLen is how many outgoing frames may wait. Default: 1024.
	QueueLen int
	// ReadLimit is the largest frame read until SetReadLimit changes it.
	// Default: MaxFrameSize.
	ReadLimit int64
	// ReadPause, when set, is how long the read pump waits for room in a
	// full queue before it hands on the next frame: for a peer whose frames
	// make frames for it (requests, answers), so that a burst of its own is
	// held back by TCP rather than overflowing its queue. Bounded, since a
	// peer that does not read because it waits to send would otherwise
	// wait on this side, and this side on it. 0: no pause.
	ReadPause time.Duration
}

func (c Config) withDefaults() Config {
	if c.PingInterval <= 0 {
		c.PingInterval = 10 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 3 * c.PingInterval
	}
	if c.QueueLen <= 0 {
		c.QueueLen = 1024
	}
	if c.ReadLimit <= 0 {
		c.ReadLimit = MaxFrameSize
	}
	return c
}

// Conn is one running signaling connection.
type Conn struct {
	ws      *websocket.Conn
	cfg     Config
	onFrame func([]byte) error
	onClose func(error)

	qmu       sync.Mutex
	queue     []queued      // guarded by qmu; frames to write, oldest first
	bounded   int           // guarded by qmu; those queued by Send, at most cfg.QueueLen
	room      chan struct{} // guarded by qmu; closed when bounded falls below cfg.QueueLen, for WaitRoom
	wake      chan struct{} // signalled when a frame is queued
	closing   chan struct{} // closed by Close: flush, send the close frame, end
	readDone  chan struct{} // closed when the read pump returns
	writeDone chan struct{} // closed when the write pump stops writing
	done      chan struct{} // closed when both pumps returned

	readLimit atomic.Int64 // the largest frame the next read accepts

	closeOnce sync.Once
	mu        sync.Mutex
	closeErr  *CloseError // what Close was asked to send
	err       error       // why the connection ended
}

// Start runs the pumps of ws. onFrame is called from the read goroutine for
// each binary frame, one at a time; the slice is the callee's. A non-nil
// error from it closes the connection (with its code if it is a
// *CloseError, else 1011). onClose, if not nil, is called once, after both
// pumps have returned, with the reason the connection ended.
func Start(ws *websocket.Conn, cfg Config, onFrame func([]byte) error, onClose func(error)) *Conn {
	cfg = cfg.withDefaults()
	c := &Conn{
		ws:        ws,
		cfg:       cfg,
		onFrame:   onFrame,
		onClose:   onClose,
		wake:      make(chan struct{}, 1),
		closing:   make(chan struct{}),
		writeDone: make(chan struct{}),
		readDone:  make(chan struct{}),
		done:      make(chan struct{}),
	}
	c.readLimit.Store(cfg.ReadLimit)
	go c.readPump()
	go c.writePump()
	return c
}

// SetReadLimit sets the largest frame the connection reads, from the next
// frame on; a larger one closes the connection with
// websocket.CloseMessageTooBig. A server keeps it small until the client
// has authenticated.
func (c *Conn) SetReadLimit(n int64) { c.readLimit.Store(n) }

// Send queues a frame without waiting: ErrQueueFull when the queue is full,
// ErrClosed once the connection is closing.
func (c *Conn) Send(frame []byte) error { return c.send(frame, true) }

// SendForced queues a frame even past QueueLen, for the frames something
// else bounds already (Stream.Attach): the replay a resumed session owes
// the peer, which refused would only start the resume over on a
// connection that would refuse it again; and acknowledgements.
func (c *Conn) SendForced(frame []byte) error { return c.send(frame, false) }

func (c *Conn) send(frame []byte, bounded bool) error {
	select {
	case <-c.closing:
		return ErrClosed
	case <-c.readDone:
		return ErrClosed
	default:
	}
	c.qmu.Lock()
	if bounded && c.bounded >= c.cfg.QueueLen {
		c.qmu.Unlock()
		return ErrQueueFull
	}
	if bounded {
		c.bounded++
	}
	c.queue = append(c.queue, queued{frame, bounded})
	c.qmu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default: // the write pump has been woken already
	}
	return nil
}

// WaitRoom waits until the queue has room for a frame, ctx ends or the
// connection closes (ErrClosed); a sender that would rather wait than have
// Send refuse calls it first. Another sender may take the room meanwhile.
// The read goroutine may call it too (from onFrame): it returns when the
// write pump stops, whatever the read pump is doing.
func (c *Conn) WaitRoom(ctx context.Context) error {
	for {
		c.qmu.Lock()
		if c.bounded < c.cfg.QueueLen {
			c.qmu.Unlock()
			return nil
		}
		if c.room == nil {
			c.room = make(chan struct{})
		}
		room := c.room
		c.qmu.Unlock()
		select {
		case <-room:
		case <-ctx.Done():
			return ctx.Err()
		case <-c.closing:
			return ErrClosed
		case <-c.readDone:
			return ErrClosed
		case <-c.writeDone:
			return ErrClosed
		}
	}
}

// Full reports whether the queue is full: Send would refuse a frame now.
func (c *Conn) Full() bool {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	return c.bounded >= c.cfg.QueueLen
}

// queued is a frame in the queue; bounded if Send queued it (it counts
// toward QueueLen), not if SendForced did.
type queued struct {
	frame   []byte
	bounded bool
}

// next takes the oldest queued frame, or nil. The queue holds memory only
// while it holds frames: an idle connection costs none.
func (c *Conn) next() []byte {
	c.qmu.Lock()
	defer c.qmu.Unlock()
	if len(c.queue) == 0 {
		return nil
	}
	q := c.queue[0]
	c.queue[0] = queued{}
	c.queue = c.queue[1:]
	if len(c.queue) == 0 {
		c.queue = nil
	}
	if q.bounded {
		c.bounded--
	}
	if c.room != nil && c.bounded < c.cfg.QueueLen {
		close(c.room)
		c.room = nil
	}
	return q.frame
}

// Close flushes the queued frames, sends a close frame with code and
// reason, waits briefly for the peer's, and ends the connection. It does not
// wait; Done tells when it is over. Only the first call's code counts.
func (c *Conn) Close(code int, reason string) {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closeErr = &CloseError{Code: code, Reason: reason}
		c.mu.Unlock()
		close(c.closing)
	})
}

// Abort ends the connection at once, without the close handshake: for a
// peer that does not answer a Close in time.
func (c *Conn) Abort() {
	c.setErr(&CloseError{Code: websocket.CloseAbnormalClosure, Reason: "aborted"})
	_ = c.ws.Close()
}

// Done is closed once both pumps have returned and onClose has run.
func (c *Conn) Done() <-chan struct{} { return c.done }

// Err reports why the connection ended: a *CloseError for a close this side
// asked for, a *websocket.CloseError for the peer's, or the I/O error. Valid
// once Done is closed.
func (c *Conn) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// setErr records the first reason the connection ended.
func (c *Conn) setErr(err error) {
	c.mu.Lock()
	if c.err == nil {
		c.err = err
	}
	c.mu.Unlock()
}

func (c *Conn) readPump() {
	defer close(c.readDone)
	extend := func() { _ = c.ws.SetReadDeadline(time.Now().Add(c.cfg.ReadTimeout)) }
	extend()
	c.ws.SetPongHandler(func(string) error { extend(); return nil })
	c.ws.SetPingHandler(func(data string) error {
		extend()
		err := c.ws.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(writeWait))
		if errors.Is(err, websocket.ErrCloseSent) {
			return nil
		}
		return err
	})
	for {
		limit := c.readLimit.Load()
		c.ws.SetReadLimit(limit)
		typ, data, err := c.ws.ReadMessage()
		if err != nil {
			if errors.Is(err, websocket.ErrReadLimit) {
				err = &CloseError{Code: websocket.CloseMessageTooBig, Reason: fmt.Sprintf("frame over %d bytes", limit)}
			}
			c.setErr(err)
			return
		}
		extend()
		if typ != websocket.BinaryMessage {
			c.fail(&CloseError{Code: websocket.CloseUnsupportedData, Reason: "text frames are not part of the protocol"})
			return
		}
		if c.cfg.ReadPause > 0 && c.Full() {
			ctx, cancel := context.WithTimeout(context.Background(), c.cfg.ReadPause)
			_ = c.WaitRoom(ctx)
			cancel()
		}
		if err := c.onFrame(data); err != nil {
			var ce *CloseError
			if !errors.As(err, &ce) {
				ce = &CloseError{Code: websocket.CloseInternalServerErr, Reason: err.Error()}
			}
			c.fail(ce)
			return
		}
		extend() // time spent in onFrame (waiting for room in a queue) is not silence
	}
}

// fail closes the connection for a reason found while reading.
//
// The read pump then keeps reading, and discarding, until the peer
// answers the close or closeGrace passes (a lingering close): closing the
// socket with the peer's frames unread would make the kernel reset the
// connection, and the peer would lose the close frame and its reason.
func (c *Conn) fail(ce *CloseError) {
	c.setErr(ce)
	c.Close(ce.Code, ce.Reason)
	_ = c.ws.SetReadDeadline(time.Now().Add(closeGrace))
	c.ws.SetPingHandler(func(string) error { return nil })
	for {
		if _, _, err := c.ws.NextReader(); err != nil {
			return
		}
	}
}

func (c *Conn) writePump() {
	ping := time.NewTicker(c.cfg.PingInterval)
	defer func() {
		ping.Stop()
		close(c.writeDone)
		_ = c.ws.Close()
		<-c.readDone
		if c.onClose != nil {
			c.onClose(c.Err())
		}
		close(c.done)
	}()
	for {
		select {
		case <-c.wake:
			for frame := c.next(); frame != nil; frame = c.next() {
				if !c.write(frame) {
					return
				}
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(writeWait)); err != nil {
				c.setErr(err)
				return
			}
		case <-c.readDone:
			// A read pump that failed has asked for a close first (fail):
			// send its close frame rather than drop the connection.
			select {
			case <-c.closing:
				c.flushAndClose()
			default:
			}
			return
		case <-c.closing:
			c.flushAndClose()
			return
		}
	}
}

func (c *Conn) write(frame []byte) bool {
	_ = c.ws.SetWriteDeadline(time.Now().Add(writeWait))
	if err := c.ws.WriteMessage(websocket.BinaryMessage, frame); err != nil {
		c.setErr(err)
		return false
	}
	return true
}

// flushAndClose writes what is queued, then the close frame, then waits a
// moment for the peer to answer it.
func (c *Conn) flushAndClose() {
	for frame := c.next(); frame != nil; frame = c.next() {
		if !c.write(frame) {
			return
		}
	}
	c.mu.Lock()
	ce := c.closeErr
	c.mu.Unlock()
	c.setErr(ce)
	msg := websocket.FormatCloseMessage(ce.Code, truncate(ce.Reason, 123))
	if err := c.ws.WriteControl(websocket.CloseMessage, msg, time.Now().Add(writeWait)); err != nil {
		return
	}
	t := time.NewTimer(closeGrace)
	defer t.Stop()
	select {
	case <-c.readDone:
	case <-t.C:
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n]
}
