package proxy_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/logs"
	"github.com/m365tap/m365tap/proxy"
)

// FuzzRequestPath writes arbitrary bytes to a running tap as one client
// connection, half-closes it and reads until the tap closes. The tap must
// not panic or hold the connection, and the connection must leave at
// least one event if it carried a byte and at most one per request head
// it carried (a head ends with an empty line; a cut-off head is one more).
//
// Every exchange goes to a parent on loopback that answers at once, so
// nothing the fuzzer writes is ever dialled or resolved: the parent's
// address is an IP literal, and no event may have a direct route.
func FuzzRequestPath(f *testing.F) {
	parent := fuzzParent(f)
	dnsClosed := testnet.Closed(f)
	var tapAddr string
	for _, s := range []string{
		"GET http://h.test/ HTTP/1.1\r\nHost: h.test\r\n\r\n",
		"GET http://h.test/a?code=x HTTP/1.1\r\nHost: h.test\r\n\r\nGET http://h.test/b HTTP/1.1\r\nHost: h.test\r\n\r\n",
		"POST http://h.test/up HTTP/1.1\r\nHost: h.test\r\nContent-Length: 5\r\n\r\nhello",
		"POST http://h.test/up HTTP/1.1\r\nHost: h.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"CONNECT login.microsoftonline.com:443 HTTP/1.1\r\nHost: login.microsoftonline.com:443\r\n\r\n\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",
		"CONNECT h.test:25 HTTP/1.1\r\n\r\n",
		"GET https://h.test/ HTTP/1.1\r\nHost: h.test\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h.test\r\n\r\n",
		"GET http://h.test/ HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
		"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
		"GET http://h.test/ HTTP/1.1\r\nHost: h",
		"\r\n\r\n",
		"\x00\xff garbage",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		events := &eventLog{}
		srv := proxy.New(proxy.Options{
			Parent:                parent,
			DNSServers:            []string{dnsClosed},
			DNSTimeout:            time.Second,
			ConnectTimeout:        time.Second,
			ResponseHeaderTimeout: 2 * time.Second,
			ReadHeaderTimeout:     2 * time.Second,
			IdleTimeout:           2 * time.Second,
			TunnelLinger:          time.Second,
			Log:                   zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(logs.EncoderConfig()), events, zapcore.DebugLevel)),
		})
		ln, err := listenAgain(&tapAddr)
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan struct{})
		go func() { _ = srv.Serve(ln); close(served) }()

		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		client := c.LocalAddr().String()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		_, werr := c.Write(data)
		c.(*net.TCPConn).CloseWrite()
		_, rerr := io.Copy(io.Discard, c)
		c.Close()
		if errors.Is(rerr, os.ErrDeadlineExceeded) {
			t.Fatalf("the tap held the connection for 10s (write: %v)", werr)
		}
		srv.Shutdown(time.Second)
		<-served

		var mine int
		for _, ev := range events.events(t) {
			if ev["client"] != client {
				t.Fatalf("event for a connection the test did not open: %v", ev)
			}
			if ev["route"] == "direct" || ev["dest_ip"] != nil {
				t.Fatalf("exchange went direct: %v", ev)
			}
			if ev["outcome"] == nil || ev["class"] == nil {
				t.Fatalf("event without an outcome: %v", ev)
			}
			mine++
		}
		heads := 1 + bytes.Count(data, []byte("\n\n")) + bytes.Count(data, []byte("\n\r\n"))
		if mine > heads {
			t.Fatalf("%d events for at most %d request heads in %q", mine, heads, data)
		}
		if mine == 0 && len(data) > 0 && werr == nil {
			t.Fatalf("no event for a connection that sent %q", data)
		}
	})
}

// listenAgain listens on *addr, the port the previous tap listened on, or
// on a new port when there was none or it was taken. Each closed connection
// holds its port in TIME_WAIT for a minute, and a fuzzer opens thousands: a
// new port for every tap would soon find none free, while connections to
// the same port reuse those in TIME_WAIT (Linux does on loopback).
func listenAgain(addr *string) (net.Listener, error) {
	if *addr != "" {
		if ln, err := net.Listen("tcp", *addr); err == nil {
			return ln, nil
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err == nil {
		*addr = ln.Addr().String()
	}
	return ln, err
}

// fuzzParent is a parent proxy on loopback that never dials anything: it
// answers every request with a short 200 and every CONNECT with a 200 and
// then discards the tunnel, so FuzzRequestPath reaches every path of the
// tap without leaving the machine. (testnet.NewParent would log through
// the *testing.F, which a fuzz function must not use; testnet.Serve does
// not.)
func fuzzParent(f *testing.F) *url.URL {
	srv := testnet.Serve(f, func(c *net.TCPConn) {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		br := bufio.NewReader(c)
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				return
			}
			if strings.TrimRight(l, "\r\n") == "" {
				break
			}
		}
		if strings.HasPrefix(line, "CONNECT ") {
			io.WriteString(c, "HTTP/1.1 200 Connection established\r\n\r\n")
		} else {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
			c.CloseWrite()
		}
		io.Copy(io.Discard, br)
	})
	return &url.URL{Scheme: "http", Host: srv.Addr()}
}
