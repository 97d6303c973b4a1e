package upstream

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// peer is a loopback server that hands each accepted connection's request
// lines to the test and answers with whatever the test sends.
type peer struct {
	ln    net.Listener
	conns chan net.Conn
}

func newPeer(t *testing.T) *peer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &peer{ln: ln, conns: make(chan net.Conn, 8)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.conns <- c
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return p
}

func (p *peer) dial(t *testing.T) *net.TCPConn {
	t.Helper()
	c, err := net.Dial("tcp", p.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return c.(*net.TCPConn)
}

func (p *peer) accept(t *testing.T) (net.Conn, *bufio.Reader) {
	t.Helper()
	select {
	case c := <-p.conns:
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	case <-time.After(5 * time.Second):
		t.Fatal("no connection")
		return nil, nil
	}
}

// readHead reads one request head and returns its request line; it runs
// on the peer's goroutines, where a failure shows as the client's error.
func readHead(br *bufio.Reader) string {
	line, err := br.ReadString('\n')
	for err == nil {
		var l string
		if l, err = br.ReadString('\n'); l == "\r\n" {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

func get(t *testing.T, url string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSendFormAndReturnToPool(t *testing.T) {
	cases := []struct {
		name     string
		key      PoolKey
		wantLine string
	}{
		{"origin", PoolKey{Host: "origin.test", Port: 80}, "GET /a?b=1 HTTP/1.1"},
		{"parent", PoolKey{Host: "parent.test:3128", Proxy: true}, "GET http://origin.test/a?b=1 HTTP/1.1"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPeer(t)
			pool := NewPool(4, 16, time.Minute)
			c := pool.New(p.dial(t), tc.key)
			sc, br := p.accept(t)
			for i := range 2 {
				go func() {
					readHead(br)
					io.WriteString(sc, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
				}()
				resp, err := c.Send(context.Background(), get(t, "http://origin.test/a?b=1"), time.Now().Add(5*time.Second))
				if err != nil {
					t.Fatal(err)
				}
				if pool.Idle() != 0 {
					t.Fatalf("round %d: in the pool while its body is unread", i)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if string(b) != "hello" {
					t.Fatalf("body %q", b)
				}
				if pool.Idle() != 1 {
					t.Fatalf("round %d: %d idle after the body's end, want 1", i, pool.Idle())
				}
				if got := pool.Get(tc.key); got != c {
					t.Fatalf("round %d: Get gave %p, want the same connection %p", i, got, c)
				}
				if i == 1 && !c.Reused() {
					t.Fatal("Reused() false after two answers")
				}
			}
			// The request line, checked on a third exchange read here.
			go func() {
				c.Send(context.Background(), get(t, "http://origin.test/a?b=1"), time.Now().Add(time.Second))
			}()
			if line := readHead(br); line != tc.wantLine {
				t.Fatalf("request line %q, want %q", line, tc.wantLine)
			}
		})
	}
}

// TestPoolNotReturned: an answer that ends the connection's use (body cut
// short by the reader, Connection: close, a request asking to close) closes
// the connection instead of pooling it.
func TestPoolNotReturned(t *testing.T) {
	cases := []struct {
		name   string
		answer string
		close  bool // request asks to close
		read   bool // body read to its end
	}{
		{"body closed early", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", false, false},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello", false, true},
		{"http/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello", false, true},
		{"request close", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := newPeer(t)
			pool := NewPool(4, 16, time.Minute)
			k := PoolKey{Host: "o", Port: 80}
			c := pool.New(p.dial(t), k)
			sc, br := p.accept(t)
			go func() { readHead(br); io.WriteString(sc, tc.answer) }()
			r := get(t, "http://o/")
			r.Close = tc.close
			resp, err := c.Send(context.Background(), r, time.Now().Add(5*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if tc.read {
				io.ReadAll(resp.Body)
			}
			resp.Body.Close()
			if pool.Idle() != 0 {
				t.Fatal("pooled")
			}
			sc.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("peer read %v, want EOF: the tap must close the connection", err)
			}
		})
	}
}

func TestPoolIdleTimeoutAndLimits(t *testing.T) {
	p := newPeer(t)
	pool := NewPool(2, 3, 150*time.Millisecond)
	k := PoolKey{Host: "o", Port: 80}
	var conns []*Conn
	for range 3 {
		c := pool.New(p.dial(t), k)
		p.accept(t)
		conns = append(conns, c)
	}
	for _, c := range conns {
		pool.put(c)
	}
	if n := pool.Idle(); n != 2 {
		t.Fatalf("%d idle, want 2 (per-key limit)", n)
	}
	if conns[2].usable {
		t.Fatal("the connection over the limit was not closed")
	}
	time.Sleep(400 * time.Millisecond)
	if n := pool.Idle(); n != 0 {
		t.Fatalf("%d idle after the idle timeout, want 0", n)
	}
	c := pool.New(p.dial(t), k)
	p.accept(t)
	pool.CloseIdle(true)
	pool.put(c)
	if pool.Idle() != 0 || c.usable {
		t.Fatal("a pool shut down took a connection back")
	}
}

func TestSendAbortAndHeaderTimeout(t *testing.T) {
	p := newPeer(t)
	pool := NewPool(2, 2, time.Minute)
	k := PoolKey{Host: "o", Port: 80}

	// No answer head before the deadline: the Transport's words.
	c := pool.New(p.dial(t), k)
	_, br := p.accept(t)
	go readHead(br)
	_, err := c.Send(context.Background(), get(t, "http://o/"), time.Now().Add(100*time.Millisecond))
	if !errors.Is(err, ErrHeaderTimeout) {
		t.Fatalf("err %v, want ErrHeaderTimeout", err)
	}

	// The context ends while the head is awaited.
	c = pool.New(p.dial(t), k)
	_, br = p.accept(t)
	go readHead(br)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	_, err = c.Send(ctx, get(t, "http://o/"), time.Now().Add(10*time.Second))
	if err == nil || errors.Is(err, ErrHeaderTimeout) || time.Since(start) > 5*time.Second {
		t.Fatalf("err %v after %v, want an abort well before the deadline", err, time.Since(start))
	}

	// The context ends while the body is read: context.Canceled.
	c = pool.New(p.dial(t), k)
	sc, br := p.accept(t)
	go func() { readHead(br); io.WriteString(sc, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart") }()
	ctx, cancel = context.WithCancel(context.Background())
	resp, err := c.Send(ctx, get(t, "http://o/"), time.Now().Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = io.ReadAll(resp.Body)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("body read %v, want context.Canceled", err)
	}
	resp.Body.Close()
	if pool.Idle() != 0 {
		t.Fatal("an aborted connection was pooled")
	}
}
