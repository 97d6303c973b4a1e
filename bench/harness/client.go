package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync/atomic"
)

// A lean HTTP/1.1 client: the generator shares two cores with the proxy
// under test, so every microsecond it spends parsing is taken from the
// proxy. It handles what the proxies answer: Content-Length, chunked,
// close-delimited bodies, and Connection: close / HTTP/1.0.

type response struct {
	status int
	close  bool  // the server will close: the caller must redial
	body   int64 // body bytes read
}

var errMalformed = errors.New("malformed response")

// readResponse reads one response. connect: the answer to a CONNECT, which
// has no body when 2xx. counter, when not nil, is advanced as body bytes
// arrive (for throughput sampled while a long body is still streaming).
func readResponse(br *bufio.Reader, connect bool, buf []byte, counter *atomic.Int64) (response, error) {
	var r response
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return r, err
		}
		if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) {
			return r, fmt.Errorf("%w: status line %q", errMalformed, line)
		}
		code, err := strconv.Atoi(string(line[9:12]))
		if err != nil {
			return r, fmt.Errorf("%w: status line %q", errMalformed, line)
		}
		r.status = code
		http10 := line[7] == '0'
		r.close = http10
		cl := int64(-1)
		chunked := false
		for {
			line, err = br.ReadSlice('\n')
			if err != nil {
				return r, err
			}
			line = bytes.TrimRight(line, "\r\n")
			if len(line) == 0 {
				break
			}
			name, value, ok := bytes.Cut(line, []byte(":"))
			if !ok {
				continue
			}
			value = bytes.TrimSpace(value)
			switch {
			case asciiEqualFold(name, "content-length"):
				cl, err = strconv.ParseInt(string(value), 10, 64)
				if err != nil {
					return r, fmt.Errorf("%w: Content-Length %q", errMalformed, value)
				}
			case asciiEqualFold(name, "transfer-encoding"):
				chunked = bytes.Contains(bytes.ToLower(value), []byte("chunked"))
			case asciiEqualFold(name, "connection"), asciiEqualFold(name, "proxy-connection"):
				v := bytes.ToLower(value)
				if bytes.Contains(v, []byte("close")) {
					r.close = true
				} else if bytes.Contains(v, []byte("keep-alive")) && http10 {
					r.close = false
				}
			}
		}
		if code >= 100 && code < 200 {
			continue // 100 Continue: the real answer follows
		}
		switch {
		case connect && code >= 200 && code < 300:
			return r, nil
		case code == 204 || code == 304:
			return r, nil
		case chunked:
			n, err := readChunked(br, buf, counter)
			r.body = n
			return r, err
		case cl >= 0:
			n, err := discardN(br, cl, buf, counter)
			r.body = n
			return r, err
		default:
			r.close = true
			n, err := discardN(br, -1, buf, counter)
			r.body = n
			if err == io.EOF {
				err = nil
			}
			return r, err
		}
	}
}

// discardN reads n bytes (n < 0: until EOF). Reads of len(buf) bypass the
// bufio buffer once it is empty, so large bodies cost few syscalls.
func discardN(br *bufio.Reader, n int64, buf []byte, counter *atomic.Int64) (int64, error) {
	if n >= 0 && n <= int64(br.Buffered()) {
		_, _ = br.Discard(int(n))
		if counter != nil {
			counter.Add(n)
		}
		return n, nil
	}
	var total int64
	for n < 0 || total < n {
		p := buf
		if n >= 0 && int64(len(p)) > n-total {
			p = p[:n-total]
		}
		k, err := br.Read(p)
		total += int64(k)
		if counter != nil && k > 0 {
			counter.Add(int64(k))
		}
		if err != nil {
			if err == io.EOF && n >= 0 {
				err = io.ErrUnexpectedEOF
			}
			return total, err
		}
	}
	return total, nil
}

func readChunked(br *bufio.Reader, buf []byte, counter *atomic.Int64) (int64, error) {
	var total int64
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return total, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if i := bytes.IndexByte(line, ';'); i >= 0 {
			line = line[:i]
		}
		size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
		if err != nil || size < 0 {
			return total, fmt.Errorf("%w: chunk size %q", errMalformed, line)
		}
		if size == 0 {
			for { // trailers, then the empty line
				line, err = br.ReadSlice('\n')
				if err != nil {
					return total, err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return total, nil
				}
			}
		}
		n, err := discardN(br, size, buf, counter)
		total += n
		if err != nil {
			return total, err
		}
		if _, err := br.Discard(2); err != nil {
			return total, err
		}
	}
}

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// getRequest is a GET for path on origin, in absolute form through a proxy.
func getRequest(viaProxy bool, origin, path string) []byte {
	target := path
	if viaProxy {
		target = "http://" + origin + path
	}
	return []byte("GET " + target + " HTTP/1.1\r\nHost: " + origin + "\r\nUser-Agent: m365tap-bench/1\r\nAccept: */*\r\n\r\n")
}

// connectTunnel sends CONNECT target on c and waits for a 2xx. It returns a
// reader to use from then on (bytes the proxy sent behind its answer stay
// in it).
func connectTunnel(c net.Conn, target string) (*bufio.Reader, error) {
	if _, err := io.WriteString(c, "CONNECT "+target+" HTTP/1.1\r\nHost: "+target+"\r\nUser-Agent: m365tap-bench/1\r\n\r\n"); err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(c, 4096)
	r, err := readResponse(br, true, nil, nil)
	if err != nil {
		return nil, err
	}
	if r.status/100 != 2 {
		return nil, fmt.Errorf("CONNECT %s: status %d", target, r.status)
	}
	return br, nil
}

// bufConn reads through br (which may hold bytes already read from c) and
// writes to c directly.
type bufConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *bufConn) Read(p []byte) (int, error) { return c.br.Read(p) }
