package parley

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/pion/webrtc/v4"
	"go.uber.org/zap"

	"github.com/parleyhq/parley/internal/signal"
	"github.com/parleyhq/parley/internal/transport"
	pb "github.com/parleyhq/parley/proto/parley/v1"
)

// An Engine has one PeerConnection to the server, its rtc, shared by all
// its rooms: a bot in 1,000 rooms pays for one PeerConnection, three data
// channels and three read loops. Each packet names its room by the Room's
// handle (Room.handle, JoinRequest.room); the readers route each to its
// Room, and the writers keep a queue per room (transport.Writer), so one
// room's backlog does not hold up another's packets.
//
// The rtc belongs to the server session it was negotiated on. The first
// join of a session goes before its TransportRequest (the server sets up a
// PeerConnection only for a session with an accepted join or login); after
// the rtc failed, its replacement's TransportRequest goes before the
// rejoins, so the server has moved off the dead one when they arrive. A
// failed rtc makes every room on it rejoin (JoinTypeReconnected) on the
// next one; a lost session (onSessionLost) ends it quietly, since its
// rooms rejoin anyway.

// rtc is the Engine's PeerConnection to the server.
type rtc struct {
	e *Engine

	// Set by bindLocked under Engine.mu, before kick is closed; build reads
	// them after kick.
	sig   *signal.Client // nil until bound
	gen   uint64         // the session it belongs to (Engine.sessGen)
	early bool           // its TransportRequest goes before the joins that use it (a rebuild)
	prev  *rtc           // guarded by Engine.mu; the rtc it replaces, until bound

	pc *webrtc.PeerConnection // guarded by Engine.mu; set once by build

	// Set before open is closed, then read-only (tests swap ws).
	chans transport.Channels
	ws    atomic.Pointer[[transport.NumChannels]*transport.Writer]

	kick     chan struct{} // closed when its TransportRequest may go (after the first join, or at once if early)
	kickOnce sync.Once
	sent     chan struct{} // closed once its TransportRequest is queued, or it failed first (markSent)
	sentOnce sync.Once
	open     chan struct{} // closed when the data channels are open
	done     chan struct{} // closed when it has failed or was closed
	freed    chan struct{} // closed once what it held is let go (release), after done
	err      error         // why it ended; written before done is closed
	accepted bool          // the server answered its TransportRequest with 0; guarded by Engine.mu
}

// prepareRTC starts building a PeerConnection when the Engine has none
// that works, before the signaling connection is there: its offer is
// made while the WebSocket connects. rtcFor binds it to the session.
func (e *Engine) prepareRTC() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed || (e.pr != nil && !e.pr.ended()) {
		return
	}
	e.pr = e.newRTCLocked()
}

// rtcFor returns the Engine's rtc for the signaling session of sig: the
// current one, one prepared and not bound yet, or a new one when the last
// ended or belongs to another session.
func (e *Engine) rtcFor(sig *signal.Client) (*rtc, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil, ErrEngineClosed
	}
	cur := e.pr
	switch {
	case cur != nil && !cur.ended() && cur.sig == nil:
		e.bindLocked(cur, sig)
		return cur, nil
	case cur != nil && !cur.ended() && cur.sig == sig && cur.gen == e.sessGen:
		return cur, nil
	}
	x := e.newRTCLocked()
	e.bindLocked(x, sig)
	e.pr = x
	return x, nil
}

// newRTCLocked makes an rtc, not bound to a session yet, and starts
// building its PeerConnection. The rtc it replaces (Engine.pr) tells the
// binding whether the session is authenticated.
func (e *Engine) newRTCLocked() *rtc {
	prev := e.pr
	if prev != nil && prev.sig == nil {
		// Never bound (it ended while the signaling connected): what it
		// replaced still tells whether the session is authenticated.
		prev = prev.prev
	}
	x := &rtc{
		e:     e,
		prev:  prev,
		kick:  make(chan struct{}),
		sent:  make(chan struct{}),
		open:  make(chan struct{}),
		done:  make(chan struct{}),
		freed: make(chan struct{}),
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if err := x.build(); err != nil {
			x.fail(err, false)
		}
	}()
	return x
}

// bindLocked makes x the rtc of sig's current session. A replacement of
// an rtc the server accepted on the same session is early: its
// TransportRequest goes at once, before the rejoins.
func (e *Engine) bindLocked(x *rtc, sig *signal.Client) {
	prev := x.prev
	x.prev = nil
	x.sig, x.gen = sig, e.sessGen
	x.early = prev != nil && prev.sig == sig && prev.gen == e.sessGen && prev.accepted
	if x.early {
		x.letGo()
	}
}

// errTransportRefused ends an rtc whose TransportRequest the server
// refused: sent with the session's first join, it is refused when that
// join is.
var errTransportRefused = errors.New("transport refused")

// markSent releases the joins that wait for x's TransportRequest.
func (x *rtc) markSent() { x.sentOnce.Do(func() { close(x.sent) }) }

// letGo lets x's TransportRequest go.
func (x *rtc) letGo() { x.kickOnce.Do(func() { close(x.kick) }) }

// ended reports whether x has failed or was closed.
func (x *rtc) ended() bool {
	select {
	case <-x.done:
		return true
	default:
		return false
	}
}

// build makes the PeerConnection and its offer, sends the TransportRequest
// when it may go, and applies the server's answer.
func (x *rtc) build() error {
	e := x.e
	ctx, cancel := context.WithTimeout(e.ctx, e.opts.joinTimeout)
	defer cancel()
	pc, err := e.api.NewPeerConnection(transport.Configuration(e.opts.iceServers))
	if err != nil {
		return err
	}
	e.mu.Lock()
	x.pc = pc
	e.mu.Unlock()
	if x.ended() { // failed meanwhile, before it could close pc
		return pc.Close()
	}
	dcs, err := transport.CreateChannels(pc)
	if err != nil {
		return err
	}
	transport.OnOpen(dcs, func(ch transport.Channels) {
		var ws [transport.NumChannels]*transport.Writer
		for i := range ch {
			ws[i] = transport.NewFlowWriter(dcs[i], ch[i])
		}
		x.chans = ch
		x.ws.Store(&ws)
		close(x.open)
		x.read(ch)
	}, func(err error) { x.fail(err, false) })
	pc.OnConnectionStateChange(func(st webrtc.PeerConnectionState) {
		if st == webrtc.PeerConnectionStateFailed || st == webrtc.PeerConnectionStateClosed {
			x.fail(errors.New("room transport "+st.String()), false)
		}
	})
	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return err
	}
	if err := pc.SetLocalDescription(offer); err != nil {
		return err
	}
	if err := transport.WaitGathered(ctx, pc); err != nil {
		return err
	}
	select {
	case <-x.kick:
	case <-x.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("transport: %w", ctx.Err())
	}
	wait, err := x.sig.Start(&pb.ClientFrame{Body: &pb.ClientFrame_Transport{Transport: &pb.TransportRequest{
		SdpOffer: pc.LocalDescription().SDP, PacketVersion: packetVersion,
	}}})
	x.markSent()
	if err != nil {
		return fmt.Errorf("transport request: %w", err)
	}
	resp, err := wait(ctx)
	if err != nil {
		return fmt.Errorf("transport request: %w", err)
	}
	tr := resp.GetTransport()
	switch {
	case tr == nil:
		return errors.New("transport request: answered with something else")
	case tr.Code != 0:
		return fmt.Errorf("%w: %s", errTransportRefused, tr.Reason)
	}
	e.mu.Lock()
	x.accepted = true
	e.mu.Unlock()
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: tr.SdpAnswer}); err != nil {
		return fmt.Errorf("bad SDP answer: %w", err)
	}
	return nil
}

// peerConn is x's PeerConnection, nil until build has made it.
func (x *rtc) peerConn() *webrtc.PeerConnection {
	x.e.mu.Lock()
	defer x.e.mu.Unlock()
	return x.pc
}

// writer is the writer of channel ch; x must be open.
func (x *rtc) writer(ch int) *transport.Writer { return x.ws.Load()[ch] }

// forget drops what x holds queued for the room with handle.
func (x *rtc) forget(handle uint32) {
	if ws := x.ws.Load(); ws != nil {
		for _, w := range ws {
			w.Forget(handle)
		}
	}
}

// waitSent waits until x's TransportRequest is queued (or x ended).
func (x *rtc) waitSent(ctx context.Context) error {
	select {
	case <-x.sent:
		return nil
	case <-x.done:
		return x.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// waitOpen waits until x's data channels are open.
func (x *rtc) waitOpen(ctx context.Context) error {
	select {
	case <-x.open:
		return nil
	case <-x.done:
		return x.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// fail ends x with err: its PeerConnection closes, and unless quiet, every
// room that was joined on it rejoins on a new one. Rooms still joining on
// it see it end (waitOpen) and fail their try. Only the first end counts.
func (x *rtc) fail(err error, quiet bool) {
	e := x.e
	// Engine.pr keeps pointing at x: its successor learns from it whether
	// the session is authenticated (early).
	e.mu.Lock()
	pc, ok := x.endLocked(err)
	if !ok {
		e.mu.Unlock()
		return
	}
	rooms := make([]*Room, 0, len(e.rooms))
	for _, r := range e.rooms {
		rooms = append(rooms, r)
	}
	sig := x.sig
	e.mu.Unlock()
	x.release(pc)
	if quiet || (sig != nil && sig.Stopped()) {
		// A connection that ends for good ends the rooms (signalClosed),
		// and the server closes the transport with it: no reason to
		// rejoin.
		return
	}
	e.log.Info("room transport ended", zap.Error(err))
	for _, r := range rooms {
		r.mu.Lock()
		a := r.att
		on := a != nil && a.rtc == x && a.joined
		r.mu.Unlock()
		if on { // a room that worked comes back by itself
			r.rejoin(a, err.Error())
		}
	}
}

// endLocked ends x with err and returns its PeerConnection for release;
// false if x had ended already. Engine.mu is held: build, which sets pc
// under it, sees one or the other, and rtcFor never hands out x again.
func (x *rtc) endLocked(err error) (*webrtc.PeerConnection, bool) {
	if x.ended() {
		return nil, false
	}
	x.err = err
	close(x.done)
	return x.pc, true
}

// release lets go of what x held once it ended: the joins waiting for its
// TransportRequest, its writers, its PeerConnection pc.
func (x *rtc) release(pc *webrtc.PeerConnection) {
	x.markSent()
	if ws := x.ws.Load(); ws != nil {
		for _, w := range ws {
			w.Close()
		}
	}
	if pc != nil {
		_ = pc.Close()
	}
	close(x.freed)
}

// errTransportIdle ends an rtc no room has used for the idle timeout
// (WithIdleTransportTimeout).
var errTransportIdle = errors.New("room transport idle")

// closeIdle closes x, the Engine's rtc, once no room has used it for the
// idle timeout: unless a room has started using it again meanwhile, or it
// was replaced or ended. The next join sets up a new one, whose
// TransportRequest replaces x's at the server (early, as after a failure).
func (e *Engine) closeIdle(x *rtc) {
	e.mu.Lock()
	if e.closed || e.attempts > 0 || e.pr != x {
		e.mu.Unlock()
		return
	}
	e.idleStop = nil
	pc, ok := x.endLocked(errTransportIdle)
	e.mu.Unlock()
	if ok {
		e.log.Info("room transport closed: no room used it", zap.Duration("for", e.opts.idleTransport))
		x.release(pc)
	}
}

// read reads x's data channels until they close.
func (x *rtc) read(chans transport.Channels) {
	for i, ch := range chans {
		x.e.goTracked(func() {
			if err := transport.ReadLoop(ch, func(b []byte) { x.onPacket(i, b) }); err != nil {
				x.e.log.Debug("data channel read ended", zap.Int("channel", i), zap.Error(err))
			}
		})
	}
}

// onPacket hands one data-channel message from the server, a packet or a
// batch of them, to the rooms it names; it runs on the channel's read
// goroutine.
func (x *rtc) onPacket(ch int, b []byte) {
	e := x.e
	p, err := decodePacket(b)
	if err != nil {
		e.log.Debug("malformed packet dropped", zap.Error(err))
		return
	}
	if len(p.Batch) == 0 {
		x.onOne(ch, p)
		return
	}
	if p.Body != nil {
		e.log.Debug("malformed batch dropped: it has a body too")
		return
	}
	for _, q := range p.Batch {
		x.onOne(ch, q)
	}
}

// onOne hands one packet, not a batch, to its room's current join.
func (x *rtc) onOne(ch int, p *pb.Packet) {
	if len(p.Batch) > 0 {
		x.e.log.Debug("malformed packet dropped: a batch in a batch")
		return
	}
	r := x.e.roomOf(p.Room)
	if r == nil {
		return // a room closed meanwhile
	}
	r.mu.Lock()
	a := r.att
	r.mu.Unlock()
	if a == nil {
		return // left meanwhile
	}
	a.onOne(ch, p)
}

// packetVersion is the data-channel packet version the SDK speaks: rooms
// on one PeerConnection (Packet.room), batches.
const packetVersion = 3
