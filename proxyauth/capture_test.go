package proxyauth

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/m365tap/m365tap/internal/testsquid/ntlm"
)

// authCapture is a loopback "proxy" that records every Proxy-Authorization
// a client sends and answers like an authenticating proxy: NTLM with a
// real challenge, the answer checked by testsquid's NTLMv2 verifier; Basic
// against its password; Negotiate with Kerberos accepted as it comes (the
// test reads the token; Squid checks tickets in the client tests).
type authCapture struct {
	ln        net.Listener
	offer     []string // Proxy-Authenticate values of a 407
	passwords map[string]string

	mu       sync.Mutex
	seen     []string // Proxy-Authorization values in arrival order
	verified []string // users whose NTLMv2 response checked out
}

func newAuthCapture(t *testing.T, offer ...string) *authCapture {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &authCapture{ln: ln, offer: offer, passwords: map[string]string{"alice": "alice-Pa55"}}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go c.serve(conn)
		}
	}()
	return c
}

func (c *authCapture) addr() string { return c.ln.Addr().String() }

func (c *authCapture) values() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.seen...)
}

func (c *authCapture) users() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.verified...)
}

func (c *authCapture) serve(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	var challenge *ntlm.Challenge // per connection, as NTLM is
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		_ = req.Body.Close()
		v := req.Header.Get("Proxy-Authorization")
		c.mu.Lock()
		if v != "" {
			c.seen = append(c.seen, v)
		}
		c.mu.Unlock()
		status, auth := 407, c.offer
		raw, _ := decodeBase64(token68(v))
		switch cred := Inspect(v); {
		case v == "":
		case cred.NTLM == 1:
			if challenge, err = ntlm.NewChallenge("CORP", "PROXY"); err != nil {
				return
			}
			auth = []string{cred.Scheme.wire() + " " + base64.StdEncoding.EncodeToString(challenge.Marshal())}
		case cred.NTLM == 3 && challenge != nil:
			if i := strings.Index(string(raw), "NTLMSSP\x00"); i > 0 {
				raw = raw[i:] // inside SPNEGO
			}
			a, err := ntlm.ParseAuthenticate(raw)
			if err == nil && a.Verify(challenge.Server, c.passwords[strings.ToLower(a.User)]) == nil {
				c.mu.Lock()
				c.verified = append(c.verified, a.Domain+`\`+a.User)
				c.mu.Unlock()
				status, auth = 200, nil
			}
		case cred.Scheme == SchemeBasic:
			if u, p, _ := strings.Cut(string(raw), ":"); c.passwords[u] == p {
				status, auth = 200, nil
			}
		case cred.Kerberos:
			status, auth = 200, nil
		}
		fmt.Fprintf(conn, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
		for _, a := range auth {
			fmt.Fprintf(conn, "Proxy-Authenticate: %s\r\n", a)
		}
		fmt.Fprintf(conn, "Content-Length: 2\r\nConnection: keep-alive\r\n\r\nok")
	}
}
