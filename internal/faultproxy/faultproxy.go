// Package faultproxy is a TCP proxy for tests of network faults: it
// forwards every connection to one address until told to cut them all (a
// reset, as a dead network path ends up), to refuse new ones (a network
// that is down), or to hold back every byte (a network that stopped
// delivering without closing anything). It listens on 127.0.0.1 only.
package faultproxy

import (
	"net"
	"sync"
)

// Proxy forwards connections from its listener to a target address.
type Proxy struct {
	ln     net.Listener
	target string
	held   chan struct{}
	wg     sync.WaitGroup

	mu      sync.Mutex
	conns   map[net.Conn]struct{} // both ends of every open pair; guarded by mu
	blocked bool                  // close new connections at once; guarded by mu
	stalled chan struct{}         // non-nil while stalled, closed by Flow; guarded by mu
}

// New starts a proxy on an ephemeral 127.0.0.1 port that forwards to
// target (host:port).
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, held: make(chan struct{}, 1024), conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Close stops listening, cuts every connection, ends a stall and waits
// for the proxy's goroutines.
func (p *Proxy) Close() {
	_ = p.ln.Close()
	p.Cut()
	p.Flow()
	p.wg.Wait()
}

// Cut resets every forwarded connection: neither end gets a close frame
// or a FIN. New connections are still forwarded unless blocked.
func (p *Proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		_ = c.Close()
	}
}

// Block makes the proxy refuse new connections (true) or forward them
// again (false).
func (p *Proxy) Block(blocked bool) {
	p.mu.Lock()
	p.blocked = blocked
	p.mu.Unlock()
}

// Stall makes the proxy hold back every byte it reads, both ways and on
// every connection, until Flow. The connections stay open.
func (p *Proxy) Stall() {
	p.mu.Lock()
	if p.stalled == nil {
		p.stalled = make(chan struct{})
	}
	p.mu.Unlock()
	for { // forget what earlier stalls held
		select {
		case <-p.held:
		default:
			return
		}
	}
}

// Flow ends a stall: what was held back is delivered.
func (p *Proxy) Flow() {
	p.mu.Lock()
	if p.stalled != nil {
		close(p.stalled)
		p.stalled = nil
	}
	p.mu.Unlock()
}

// Held receives each time a connection starts holding bytes back in a
// stall: something was sent that the other end will not get until Flow.
func (p *Proxy) Held() <-chan struct{} { return p.held }

func (p *Proxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		blocked := p.blocked
		p.mu.Unlock()
		if blocked {
			_ = c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		p.mu.Lock()
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, s)
		go p.pipe(s, c)
	}
}

// pipe copies src to dst, holding bytes back while the proxy is stalled;
// when either fails, both close.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			stalled := p.stalled
			p.mu.Unlock()
			if stalled != nil {
				select {
				case p.held <- struct{}{}:
				default:
				}
				<-stalled
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = dst.Close()
	_ = src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}
