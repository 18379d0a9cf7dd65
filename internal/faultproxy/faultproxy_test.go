package faultproxy

import (
	"io"
	"net"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// newPair starts an echo server and a proxy to it, closed when t ends.
func newPair(t *testing.T) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(c, c); c.Close() }()
		}
	}()
	p, err := New(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(); ln.Close(); <-done })
	return p
}

func dial(t *testing.T, p *Proxy) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	return c
}

func echo(c net.Conn) error {
	if _, err := c.Write([]byte("x")); err != nil {
		return err
	}
	_, err := io.ReadFull(c, make([]byte, 1))
	return err
}

// TestProxy: bytes cross; Stall holds them (Held says so) until Flow; Cut
// ends the connection; Block refuses new ones, and unblocked they cross
// again.
func TestProxy(t *testing.T) {
	p := newPair(t)
	c := dial(t, p)
	if err := echo(c); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}

	p.Stall()
	if _, err := c.Write([]byte("y")); err != nil {
		t.Fatal(err)
	}
	<-p.Held()
	p.Flow()
	if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
		t.Fatalf("after Flow: %v", err)
	}

	p.Cut()
	if err := echo(c); err == nil {
		t.Fatal("a cut connection still carries bytes")
	}

	p.Block(true)
	if err := echo(dial(t, p)); err == nil {
		t.Fatal("a blocked proxy forwarded a new connection")
	}
	p.Block(false)
	if err := echo(dial(t, p)); err != nil {
		t.Fatalf("unblocked: %v", err)
	}
}
