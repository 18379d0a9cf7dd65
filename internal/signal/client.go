package signal

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/protobuf/proto"

	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// Client is the client end of a signaling connection: it pairs requests
// with responses by request ID and hands every other frame to onEvent.
type Client struct {
	conn    *Conn
	welcome *pb.Welcome

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan *pb.ServerFrame
	closed  bool
}

// ErrProtocol reports a frame from the server that breaks the protocol.
var ErrProtocol = errors.New("signal: protocol error")

// Dial connects to url and waits for the server's Welcome. onEvent is
// called from the read goroutine for each event frame (request ID 0), in
// order; it must not block. onClose is called once when the connection
// ends, after every pending request has failed.
func Dial(ctx context.Context, url string, cfg Config, onEvent func(*pb.ServerFrame), onClose func(error)) (*Client, error) {
	d := websocket.Dialer{
		HandshakeTimeout: 10 * time.Second,
		ReadBufferSize:   16 << 10,
		WriteBufferSize:  16 << 10,
	}
	ws, resp, err := d.DialContext(ctx, url, http.Header{})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("signal: dial %s: %w (HTTP %s)", url, err, resp.Status)
		}
		return nil, fmt.Errorf("signal: dial %s: %w", url, err)
	}
	c := &Client{pending: make(map[uint64]chan *pb.ServerFrame)}
	welcomed := make(chan *pb.Welcome, 1)
	first := true
	onFrame := func(b []byte) error {
		f, err := DecodeServerFrame(b)
		if err != nil {
			return &CloseError{Code: websocket.CloseInvalidFramePayloadData, Reason: err.Error()}
		}
		if first {
			first = false
			w, ok := f.Body.(*pb.ServerFrame_Welcome)
			if !ok {
				return &CloseError{Code: websocket.CloseProtocolError, Reason: "first frame is not Welcome"}
			}
			welcomed <- w.Welcome
			return nil
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
		onEvent(f)
		return nil
	}
	closed := func(err error) {
		c.mu.Lock()
		c.closed = true
		pending := c.pending
		c.pending = nil
		c.mu.Unlock()
		for _, ch := range pending {
			close(ch)
		}
		if onClose != nil {
			onClose(err)
		}
	}
	c.conn = Start(ws, cfg, onFrame, closed)
	select {
	case w := <-welcomed:
		c.welcome = w
		return c, nil
	case <-c.conn.Done():
		return nil, fmt.Errorf("signal: connection closed before Welcome: %w", c.conn.Err())
	case <-ctx.Done():
		c.conn.Close(websocket.CloseNormalClosure, "")
		<-c.conn.Done()
		return nil, fmt.Errorf("signal: waiting for Welcome: %w", ctx.Err())
	}
}

// Welcome is the server's first frame.
func (c *Client) Welcome() *pb.Welcome { return c.welcome }

// Request sends f with a fresh request ID and waits for its response.
func (c *Client) Request(ctx context.Context, f *pb.ClientFrame) (*pb.ServerFrame, error) {
	ch := make(chan *pb.ServerFrame, 1)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, ErrClosed
	}
	c.nextID++
	id := c.nextID
	c.pending[id] = ch
	c.mu.Unlock()
	f.RequestId = id
	forget := func() {
		c.mu.Lock()
		delete(c.pending, id)
		c.mu.Unlock()
	}
	b, err := proto.Marshal(f)
	if err != nil {
		forget()
		return nil, err
	}
	if err := c.conn.SendWait(ctx, b); err != nil {
		forget()
		return nil, err
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return nil, ErrClosed
		}
		return resp, nil
	case <-ctx.Done():
		forget()
		return nil, ctx.Err()
	}
}

// Send sends f with a fresh request ID and does not wait for the response,
// which is dropped when it comes.
func (c *Client) Send(ctx context.Context, f *pb.ClientFrame) error {
	c.mu.Lock()
	c.nextID++
	f.RequestId = c.nextID
	c.mu.Unlock()
	b, err := proto.Marshal(f)
	if err != nil {
		return err
	}
	return c.conn.SendWait(ctx, b)
}

// Close closes the connection normally; Done tells when it has ended.
func (c *Client) Close() { c.conn.Close(websocket.CloseNormalClosure, "") }

// Done is closed when the connection has ended and onClose has run.
func (c *Client) Done() <-chan struct{} { return c.conn.Done() }
