package testsquid

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/m365tap/m365tap/internal/testsquid/ntlm"
)

// Credentials are what a Go client answers a proxy's 407 with.
type Credentials struct {
	// Scheme is "Basic", "NTLM", or "Negotiate" (which here carries NTLM
	// tokens, as Windows sends when it has no Kerberos ticket).
	Scheme string
	// User, Domain and Password; Domain is used by NTLM only.
	User, Domain, Password string
}

// Conn is one client connection to a proxy on which a Go client sends
// requests in proxy form and reads the answers in order. net/http's
// Transport cannot run a connection-bound handshake (NTLM, Negotiate) with
// a proxy, least of all for CONNECT, so the tests drive the protocol here.
type Conn struct {
	net.Conn
	br *bufio.Reader
	// authenticated is set once the proxy accepted a connection-bound
	// handshake: later requests on the connection carry no header, as
	// WinINET's do.
	authenticated bool
}

// Dial opens a client connection to the proxy at addr.
func Dial(addr string) (*Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &Conn{Conn: c, br: bufio.NewReader(c)}, nil
}

// Get builds a plain request for rawURL, to send in proxy form.
func Get(rawURL string) *http.Request {
	u, err := url.Parse(rawURL)
	if err != nil {
		panic(err)
	}
	return &http.Request{Method: http.MethodGet, URL: u, Host: u.Host, Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
}

// Connect builds a CONNECT request for host:port.
func Connect(hostport string) *http.Request {
	return &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: hostport}, Host: hostport,
		Header: http.Header{}, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1}
}

// Do sends req as it is and reads the answer, its body to the end.
func (c *Conn) Do(req *http.Request) (*http.Response, []byte, error) {
	_ = c.SetDeadline(time.Now().Add(15 * time.Second))
	defer func() { _ = c.SetDeadline(time.Time{}) }()
	var err error
	if req.Method == http.MethodConnect {
		err = req.Write(c)
	} else {
		err = req.WriteProxy(c)
	}
	if err != nil {
		return nil, nil, err
	}
	resp, err := http.ReadResponse(c.br, req)
	if err != nil {
		return nil, nil, err
	}
	if req.Method == http.MethodConnect && resp.StatusCode == http.StatusOK {
		return resp, nil, nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, body, err
}

// Authenticate sends the request mk builds, answering 407s with cr on this
// connection as a real client does: Basic at once; NTLM and Negotiate
// with a NEGOTIATE message first and the AUTHENTICATE answer to the
// proxy's challenge second. mk is called once per leg. With cr nil the
// request goes without credentials. It returns the final answer and the
// status of every leg.
func (c *Conn) Authenticate(mk func() *http.Request, cr *Credentials) (*http.Response, []int, error) {
	var legs []int
	do := func(header string) (*http.Response, error) {
		req := mk()
		if header != "" {
			req.Header.Set("Proxy-Authorization", header)
		}
		resp, _, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		legs = append(legs, resp.StatusCode)
		return resp, nil
	}
	if cr == nil {
		resp, err := do("")
		return resp, legs, err
	}
	switch cr.Scheme {
	case "Basic":
		resp, err := do("Basic " + base64.StdEncoding.EncodeToString([]byte(cr.User+":"+cr.Password)))
		return resp, legs, err
	case "NTLM", "Negotiate":
	default:
		return nil, nil, fmt.Errorf("testsquid: unknown scheme %q", cr.Scheme)
	}
	if c.authenticated {
		resp, err := do("")
		if err != nil || resp.StatusCode != http.StatusProxyAuthRequired {
			return resp, legs, err
		}
		c.authenticated = false
	}
	resp, err := do(cr.Scheme + " " + base64.StdEncoding.EncodeToString(ntlm.Negotiate()))
	if err != nil || resp.StatusCode != http.StatusProxyAuthRequired {
		return resp, legs, err
	}
	var challenge []byte
	for _, v := range resp.Header.Values("Proxy-Authenticate") {
		scheme, token, ok := strings.Cut(v, " ")
		if ok && strings.EqualFold(scheme, cr.Scheme) {
			if challenge, err = base64.StdEncoding.DecodeString(strings.TrimSpace(token)); err != nil {
				return resp, legs, fmt.Errorf("testsquid: %s challenge is not base64: %v", cr.Scheme, err)
			}
		}
	}
	if challenge == nil {
		// The proxy refused the NEGOTIATE message outright.
		return resp, legs, nil
	}
	ch, err := ntlm.ParseChallenge(challenge)
	if err != nil {
		return resp, legs, err
	}
	answer, err := ntlm.Respond(ch, cr.User, cr.Domain, cr.Password)
	if err != nil {
		return resp, legs, err
	}
	resp, err = do(cr.Scheme + " " + base64.StdEncoding.EncodeToString(answer))
	if err == nil && resp.StatusCode/100 == 2 {
		c.authenticated = true
	}
	return resp, legs, err
}

// TLS starts TLS over an established CONNECT tunnel.
func (c *Conn) TLS(cfg *tls.Config) *tls.Conn {
	return tls.Client(bufferedConn{c.Conn, c.br}, cfg)
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }
