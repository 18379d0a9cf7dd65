package signal

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// ClientState is a change in a Client's connection.
type ClientState int

// The states a Client reports.
const (
	StateReconnecting ClientState = iota + 1 // the connection dropped; reconnecting
	StateReconnected                         // connected again (the session resumed, or a new one)
	StateLost                                // reconnecting for longer than LostAfter; still trying
	StateFailed                              // the server refuses for good; no more tries
)

// ErrNothingToResume ends a Client whose ShouldReconnect said no.
var ErrNothingToResume = errors.New("signal: connection ended with nothing to resume")

// ErrSessionLost fails the requests in flight when the server no longer
// had the session on reconnect and a new one replaced it.
var ErrSessionLost = errors.New("signal: session lost")

// ClientConfig configures a Client.
type ClientConfig struct {
	URL string
	// Fallbacks are more URLs of the same service (nodes of one cluster):
	// a dial that fails moves the Client to the next, round robin, URL
	// first. A refusal for good (401, 403, 404) stops the Client only
	// once every URL has refused in a row.
	Fallbacks []string
	Conn      Config
	// OnEvent gets each event frame (request ID 0) once, in order, on a
	// read goroutine; it must not block.
	OnEvent func(*pb.ServerFrame)
	// OnState gets the Client's connection changes, from its own goroutine.
	OnState func(ClientState)
	// OnSessionLost runs when a reconnect found the session gone (grace
	// period over, server restarted): the Client now has a new, empty
	// session, and the requests in flight failed with ErrSessionLost.
	OnSessionLost func()
	// OnClosed runs once when the Client has stopped for good: after
	// Close, or after StateFailed.
	OnClosed func(error)
	// ShouldReconnect, if set, is asked when the connection drops: false
	// stops the Client (OnClosed follows) instead of reconnecting, for a
	// client with nothing on the server worth keeping.
	ShouldReconnect func() bool
	// LostAfter is how long reconnecting lasts before StateLost.
	// Default: 10s.
	LostAfter time.Duration
	// Backoff bounds the jittered wait between reconnect tries.
	// Defaults: 100ms and 5s.
	BackoffMin, BackoffMax time.Duration
}

// maxClientReplay bounds what a Client keeps for replay.
const maxClientReplay = 16 << 20

// Client is the client end of a signaling session: it pairs requests with
// responses, numbers its frames and keeps them until the server has them,
// and when its connection drops it reconnects with jittered backoff and
// resumes the session, so that nothing sent either way is lost or
// repeated while the server keeps the session.
type Client struct {
	cfg    ClientConfig
	ctx    context.Context // cancelled by Close
	cancel context.CancelFunc
	done   chan struct{}

	// sendMu makes waiting for room in the connection's queue and
	// queueing one step among senders (send).
	sendMu sync.Mutex

	mu        sync.Mutex
	urlAt     int // guarded by mu; the URL dialled now: 0 is URL, then the Fallbacks
	out       *Stream
	conn      *Conn // the current connection; nil while reconnecting
	sessionID string
	secret    []byte
	nextID    uint64
	pending   map[uint64]chan *pb.ServerFrame
	closed    bool
	ackTimer  *time.Timer
}

// Dial connects to cfg.URL and starts a session; the Client then keeps it
// up until Close.
func Dial(ctx context.Context, cfg ClientConfig) (*Client, error) {
	if cfg.LostAfter <= 0 {
		cfg.LostAfter = 10 * time.Second
	}
	if cfg.BackoffMin <= 0 {
		cfg.BackoffMin = 100 * time.Millisecond
	}
	if cfg.BackoffMax <= 0 {
		cfg.BackoffMax = 5 * time.Second
	}
	c := &Client{cfg: cfg, done: make(chan struct{}), pending: make(map[uint64]chan *pb.ServerFrame), out: NewStream(maxClientReplay)}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	var (
		conn *Conn
		err  error
	)
	for range c.urls() { // each URL once, until one answers
		if conn, err = c.connect(ctx, false); err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		c.cancel()
		return nil, err
	}
	go c.run(conn)
	return c, nil
}

// urls is how many URLs the Client may dial.
func (c *Client) urls() int { return 1 + len(c.cfg.Fallbacks) }

// url is the URL to dial now.
func (c *Client) url() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.urlAt == 0 {
		return c.cfg.URL
	}
	return c.cfg.Fallbacks[c.urlAt-1]
}

// failedURL moves the Client to the next URL after a failed dial of u.
func (c *Client) failedURL(u string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cur := c.cfg.URL
	if c.urlAt > 0 {
		cur = c.cfg.Fallbacks[c.urlAt-1]
	}
	if cur == u { // not moved on by another dial meanwhile
		c.urlAt = (c.urlAt + 1) % c.urls()
	}
}

// errPermanent marks a dial error that retrying cannot fix.
type errPermanent struct{ error }

func (e errPermanent) Unwrap() error { return e.error }

// IsRefused reports whether err is a dial the server refused for good: it
// answered the WebSocket upgrade with 401, 403 or 404, so it does not
// serve this endpoint, and retrying cannot help.
func IsRefused(err error) bool {
	var p errPermanent
	return errors.As(err, &p)
}

// connect opens one connection and, with resume, asks to resume the
// session; it returns once the connection carries a session.
func (c *Client) connect(ctx context.Context, resume bool) (*Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second, ReadBufferSize: 16 << 10, WriteBufferSize: 16 << 10}
	u := c.url()
	ws, resp, err := d.DialContext(ctx, u, http.Header{})
	if err != nil {
		c.failedURL(u)
		if resp != nil {
			err = fmt.Errorf("signal: dial %s: %w (HTTP %s)", u, err, resp.Status)
			switch resp.StatusCode {
			case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound:
				return nil, errPermanent{err}
			}
			return nil, err
		}
		return nil, fmt.Errorf("signal: dial %s: %w", u, err)
	}
	h := &handshake{c: c, resume: resume, ready: make(chan error, 1), started: make(chan struct{})}
	conn := Start(ws, c.cfg.Conn, h.onFrame, nil)
	h.conn = conn
	close(h.started)
	select {
	case err := <-h.ready:
		if err != nil {
			conn.Close(websocket.CloseProtocolError, err.Error())
			<-conn.Done()
			return nil, err
		}
		return conn, nil
	case <-conn.Done():
		return nil, fmt.Errorf("signal: connection closed during the handshake: %w", conn.Err())
	case <-ctx.Done():
		// Not a normal close: the server would take it for a goodbye and
		// end a session this handshake may already have resumed.
		conn.Abort()
		<-conn.Done()
		return nil, fmt.Errorf("signal: handshake: %w", ctx.Err())
	}
}

// handshake reads one connection's frames: its Welcome, the answer to a
// resume, then the session's frames. It runs on the connection's read
// goroutine, so a session switch happens before any later frame is read.
type handshake struct {
	c       *Client
	conn    *Conn
	started chan struct{} // closed once conn is set
	resume  bool
	welcome *pb.Welcome
	ready   chan error // the handshake's outcome
	done    bool
}

func (h *handshake) onFrame(b []byte) error {
	<-h.started
	f, err := DecodeServerFrame(b)
	if err != nil {
		return &CloseError{Code: websocket.CloseInvalidFramePayloadData, Reason: err.Error()}
	}
	c := h.c
	switch body := f.Body.(type) {
	case *pb.ServerFrame_Welcome:
		if h.welcome != nil {
			return &CloseError{Code: websocket.CloseProtocolError, Reason: "second Welcome"}
		}
		h.welcome = body.Welcome
		if !h.resume {
			c.adopt(h.welcome, h.conn)
			h.finish(nil)
			return nil
		}
		c.mu.Lock()
		c.nextID++
		req := &pb.ClientFrame{RequestId: c.nextID, Body: &pb.ClientFrame_Resume{Resume: &pb.ResumeRequest{
			SessionId: c.sessionID, Secret: c.secret, Ack: c.out.Received(),
		}}}
		c.mu.Unlock()
		return h.conn.Send(MustMarshal(req))
	case *pb.ServerFrame_Resume:
		if h.done || h.welcome == nil {
			return &CloseError{Code: websocket.CloseProtocolError, Reason: "unexpected ResumeResponse"}
		}
		if body.Resume.Ok {
			c.mu.Lock()
			err := c.out.Attach(body.Resume.Ack, h.conn.SendForced, h.conn.Send)
			c.conn = h.conn
			c.mu.Unlock()
			h.finish(err)
			return err
		}
		c.adopt(h.welcome, h.conn)
		h.finish(nil)
		if c.cfg.OnSessionLost != nil {
			c.cfg.OnSessionLost()
		}
		return nil
	case *pb.ServerFrame_AckOnly:
		_, _ = c.out.Receive(0, f.Acked)
		return nil
	}
	if !h.done {
		return &CloseError{Code: websocket.CloseProtocolError, Reason: "frame before the handshake ended"}
	}
	return c.onFrame(f)
}

func (h *handshake) finish(err error) {
	h.done = true
	h.ready <- err
}

// adopt makes welcome's session the Client's, on conn: a new sequence in
// both directions; requests of an earlier session fail.
func (c *Client) adopt(w *pb.Welcome, conn *Conn) {
	c.mu.Lock()
	pending := c.pending
	c.pending = make(map[uint64]chan *pb.ServerFrame)
	c.sessionID, c.secret = w.SessionId, w.ResumeSecret
	c.out = NewStream(maxClientReplay)
	_ = c.out.Attach(0, conn.SendForced, conn.Send)
	c.conn = conn
	c.mu.Unlock()
	for _, ch := range pending {
		close(ch)
	}
}

// onFrame handles a frame of the session's sequence.
func (c *Client) onFrame(f *pb.ServerFrame) error {
	c.mu.Lock()
	out := c.out
	c.mu.Unlock()
	fresh, err := out.Receive(f.Seq, f.Acked)
	if err != nil {
		return &CloseError{Code: websocket.CloseProtocolError, Reason: err.Error()}
	}
	if !fresh {
		return nil
	}
	if f.Seq != 0 {
		c.ackSoon(out)
	}
	if f.RequestId != 0 {
		c.mu.Lock()
		ch := c.pending[f.RequestId]
		delete(c.pending, f.RequestId)
		c.mu.Unlock()
		if ch != nil {
			ch <- f
		}
		return nil
	}
	c.cfg.OnEvent(f)
	return nil
}

// ackSoon acknowledges what the Client has received: at once when 32
// frames wait for it, else within 100 ms (unless a frame to the server
// carries it first).
func (c *Client) ackSoon(out *Stream) {
	if out.Unacknowledged() >= 32 {
		c.sendAck(out)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ackTimer == nil && !c.closed {
		c.ackTimer = time.AfterFunc(100*time.Millisecond, func() {
			c.mu.Lock()
			c.ackTimer = nil
			c.mu.Unlock()
			if out.Unacknowledged() > 0 {
				c.sendAck(out)
			}
		})
	}
}

func (c *Client) sendAck(out *Stream) {
	c.mu.Lock() // before the Stream's lock, never inside it (run takes them in this order)
	c.nextID++
	id := c.nextID
	c.mu.Unlock()
	_ = out.SendUnsequenced(func(acked uint64) []byte {
		return MustMarshal(&pb.ClientFrame{RequestId: id, Acked: acked, Body: &pb.ClientFrame_AckOnly{AckOnly: &pb.SeqAck{}}})
	})
}

// run watches the connection and, when it drops, reconnects and resumes
// until Close.
func (c *Client) run(conn *Conn) {
	var final error
	defer func() {
		c.mu.Lock()
		pending := c.pending
		c.pending = nil
		c.closed = true
		if c.ackTimer != nil {
			c.ackTimer.Stop()
		}
		c.mu.Unlock()
		for _, ch := range pending {
			close(ch)
		}
		if c.cfg.OnClosed != nil {
			c.cfg.OnClosed(final)
		}
		close(c.done)
	}()
	for {
		select {
		case <-conn.Done():
		case <-c.ctx.Done():
			conn.Close(websocket.CloseNormalClosure, "")
			<-conn.Done()
			return
		}
		c.mu.Lock()
		if c.conn == conn {
			c.conn = nil
		}
		c.out.Detach()
		c.mu.Unlock()
		if c.ctx.Err() != nil {
			return
		}
		if c.cfg.ShouldReconnect != nil && !c.cfg.ShouldReconnect() {
			final = ErrNothingToResume
			return
		}
		c.state(StateReconnecting)
		next, err := c.reconnect()
		if err != nil {
			final = err
			if !errors.Is(err, context.Canceled) {
				c.state(StateFailed)
			}
			return
		}
		conn = next
		c.state(StateReconnected)
	}
}

// reconnect tries, with jittered exponential backoff, until a connection
// carries the session again, Close is called, or the server refuses for
// good.
func (c *Client) reconnect() (*Conn, error) {
	start := time.Now()
	wait := c.cfg.BackoffMin
	lost := false
	refused := 0 // refusals for good in a row, one per URL at most
	for {
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		conn, err := c.connect(ctx, true)
		cancel()
		if err == nil {
			return conn, nil
		}
		var perm errPermanent
		if errors.As(err, &perm) {
			if refused++; refused >= c.urls() {
				return nil, err
			}
		} else {
			refused = 0
		}
		if c.ctx.Err() != nil {
			return nil, c.ctx.Err()
		}
		if !lost && time.Since(start) >= c.cfg.LostAfter {
			lost = true
			c.state(StateLost)
		}
		// Jitter: between half and all of the current bound, so that
		// clients cut off together do not come back together.
		t := time.NewTimer(wait/2 + rand.N(wait/2+1))
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return nil, c.ctx.Err()
		}
		wait = min(wait*2, c.cfg.BackoffMax)
	}
}

func (c *Client) state(s ClientState) {
	if c.cfg.OnState != nil {
		c.cfg.OnState(s)
	}
}

// Request sends f with a fresh request ID and waits for its response. The
// request survives reconnects; it fails with ErrSessionLost if the session
// does not, and with ErrClosed after Close.
func (c *Client) Request(ctx context.Context, f *pb.ClientFrame) (*pb.ServerFrame, error) {
	wait, err := c.Start(f)
	if err != nil {
		return nil, err
	}
	return wait(ctx)
}

// Start sends f now, in sequence with everything sent before it (waiting
// for room while the connection's queue is full), and returns the function
// that waits for its response (see Request).
func (c *Client) Start(f *pb.ClientFrame) (wait func(context.Context) (*pb.ServerFrame, error), err error) {
	ch := make(chan *pb.ServerFrame, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	out := c.out
	c.mu.Unlock()
	f.RequestId = id
	if err := c.send(context.Background(), out, f); err != nil {
		c.forget(id)
		return nil, err
	}
	return func(ctx context.Context) (*pb.ServerFrame, error) { return c.await(ctx, id, ch) }, nil
}

func (c *Client) await(ctx context.Context, id uint64, ch chan *pb.ServerFrame) (*pb.ServerFrame, error) {
	select {
	case resp, ok := <-ch:
		if !ok {
			if c.ctx.Err() != nil {
				return nil, ErrClosed
			}
			return nil, ErrSessionLost
		}
		return resp, nil
	case <-ctx.Done():
		c.forget(id)
		return nil, ctx.Err()
	}
}

func (c *Client) forget(id uint64) {
	c.mu.Lock()
	delete(c.pending, id)
	c.mu.Unlock()
}

// Send sends f with a fresh request ID and does not wait for the response,
// which is dropped when it comes. While reconnecting, f waits for the
// next connection. While the connection's queue is full (a burst of the
// caller's own), Send waits for room until ctx ends, and then returns its
// error: a full queue would otherwise start the connection over, and the
// resumed one would be as full.
func (c *Client) Send(ctx context.Context, f *pb.ClientFrame) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	c.nextID++
	f.RequestId = c.nextID
	out := c.out
	c.mu.Unlock()
	return c.send(ctx, out, f)
}

// send numbers f in out and writes it, or keeps it for the next
// connection. While the connection's queue is full it waits for room,
// until ctx ends (its error then) or the connection closes.
func (c *Client) send(ctx context.Context, out *Stream, f *pb.ClientFrame) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		if err := conn.WaitRoom(ctx); err != nil && !errors.Is(err, ErrClosed) {
			return err
		}
	}
	err := out.Send(func(seq, acked uint64) []byte {
		f.Seq, f.Acked = seq, acked
		return MustMarshal(f)
	})
	if errors.Is(err, ErrClosed) {
		return nil // the connection is going: the frame waits for the next
	}
	if errors.Is(err, ErrQueueFull) {
		// The frame is kept for replay, and no later one may go before
		// it: start over on a new connection, whose replay sends it. (A
		// frame the Client did not queue through send took the room.)
		c.mu.Lock()
		conn := c.conn
		c.mu.Unlock()
		if conn != nil {
			conn.Abort()
		}
		return nil
	}
	return err
}

// Close ends the session: the server is told (a normal close), and the
// Client stops trying. Done tells when it has stopped.
func (c *Client) Close() { c.cancel() }

// Abort drops the current connection as if the network had: the Client
// reconnects and resumes. For tests of resumption.
func (c *Client) Abort() {
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		conn.Abort()
	}
}

// Connected reports whether the Client has a connection now (it is not
// reconnecting).
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// Done is closed when the Client has stopped and OnClosed has run.
func (c *Client) Done() <-chan struct{} { return c.done }

// Stopped reports whether the Client has stopped for good or is stopping
// (Close, StateFailed, or ShouldReconnect said no): it does not connect
// again, and Done is closed once OnClosed has run.
func (c *Client) Stopped() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed || c.ctx.Err() != nil
}
