package testnet

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// hosts maps host:port names to loopback fixture addresses, standing in
// for DNS in a Parent's Dial.
type hosts map[string]string

func (h hosts) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	target, ok := h[addr]
	if !ok {
		return nil, fmt.Errorf("no test host %q", addr)
	}
	var d net.Dialer
	return d.DialContext(ctx, network, target)
}

// proxiedClient sends everything through proxy and trusts ca (if any).
func proxiedClient(t *testing.T, proxy *url.URL, ca *CA, timeout time.Duration) *http.Client {
	t.Helper()
	tr := &http.Transport{Proxy: http.ProxyURL(proxy)}
	if ca != nil {
		tr.TLSClientConfig = &tls.Config{RootCAs: ca.Pool()}
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: timeout}
}

func basic(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// connect sends a raw CONNECT and returns the connection and the parsed
// response head, for checks below what net/http's client reports.
func connect(t *testing.T, proxy, target, auth string) (net.Conn, *bufio.Reader, *http.Response) {
	t.Helper()
	c := dial(t, proxy)
	must(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	req := "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n"
	if auth != "" {
		req += "Proxy-Authorization: " + auth + "\r\n"
	}
	_, err := io.WriteString(c, req+"\r\n")
	must(t, err)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	must(t, err)
	return c, br, resp
}

func TestParentForwards(t *testing.T) {
	t.Parallel()
	ca := NewCA(t)
	plain := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A forwarded request must arrive in origin form and without the
		// hop-by-hop proxy headers.
		fmt.Fprintf(w, "plain %s %s auth=%q", r.Method, r.RequestURI, r.Header.Get("Proxy-Authorization"))
	})
	secure := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "secure %s %s", r.Host, r.URL.Path)
	})
	origin := NewHTTPOrigin(t, plain)
	tlsOrigin := NewTLSOrigin(t, ca, secure, TLSOptions{Names: []string{"login.test"}})
	echo := Echo(t)

	p := NewParent(t, ParentOptions{Dial: hosts{
		"app.test:80":    origin.Listener.Addr().String(),
		"login.test:443": tlsOrigin.Listener.Addr().String(),
		"echo.test:7":    echo.Addr(),
		"closed.test:80": Closed(t),
	}.dial})
	client := proxiedClient(t, p.URL(), ca, 5*time.Second)

	tests := []struct {
		url, want string
		status    int
	}{
		{"http://app.test/a?b=c", `plain GET /a?b=c auth=""`, http.StatusOK},
		{"https://login.test/common/oauth2", "secure login.test /common/oauth2", http.StatusOK},
		{"http://closed.test/", "", http.StatusBadGateway},
	}
	for _, tc := range tests {
		resp, err := client.Get(tc.url)
		if err != nil {
			t.Fatalf("GET %s: %v", tc.url, err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		must(t, err)
		if resp.StatusCode != tc.status {
			t.Errorf("GET %s: status %d, want %d", tc.url, resp.StatusCode, tc.status)
		}
		if tc.want != "" && string(body) != tc.want {
			t.Errorf("GET %s: body %q, want %q", tc.url, body, tc.want)
		}
	}

	t.Run("CONNECT tunnel keeps half-close", func(t *testing.T) {
		c, br, resp := connect(t, p.Addr(), "echo.test:7", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("CONNECT status %d", resp.StatusCode)
		}
		_, err := io.WriteString(c, "through the tunnel")
		must(t, err)
		must(t, c.(*net.TCPConn).CloseWrite())
		got, err := io.ReadAll(br)
		must(t, err)
		if string(got) != "through the tunnel" {
			t.Errorf("echo through tunnel = %q", got)
		}
	})

	t.Run("CONNECT dial failure is 502", func(t *testing.T) {
		_, err := client.Get("https://unmapped.test/")
		if err == nil || !strings.Contains(err.Error(), "Bad Gateway") {
			t.Errorf("GET through failed CONNECT: %v, want a Bad Gateway error", err)
		}
	})

	wantTargets := []string{"http://app.test/a?b=c", "login.test:443", "http://closed.test/", "echo.test:7", "unmapped.test:443"}
	if got := p.Targets(); !slices.Equal(got, wantTargets) {
		t.Errorf("Targets() = %q, want %q", got, wantTargets)
	}
	if p.Requests() != len(wantTargets) {
		t.Errorf("Requests() = %d, want %d", p.Requests(), len(wantTargets))
	}
}

func TestParentAuth407(t *testing.T) {
	t.Parallel()
	ca := NewCA(t)
	origin := NewHTTPOrigin(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "auth=%q", r.Header.Get("Proxy-Authorization"))
	}))
	tlsOrigin := NewTLSOrigin(t, ca, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secure")
	}), TLSOptions{Names: []string{"login.test"}})
	p := NewParent(t, ParentOptions{Mode: ParentAuth407, User: "alice", Pass: "s3cret:x", Dial: hosts{
		"app.test:80":    origin.Listener.Addr().String(),
		"login.test:443": tlsOrigin.Listener.Addr().String(),
	}.dial})

	tests := []struct {
		name       string
		user       *url.Userinfo
		wantStatus int
		wantBody   string
	}{
		{"no credentials", nil, http.StatusProxyAuthRequired, ""},
		{"wrong password", url.UserPassword("alice", "nope"), http.StatusProxyAuthRequired, ""},
		{"wrong user", url.UserPassword("bob", "s3cret:x"), http.StatusProxyAuthRequired, ""},
		{"right credentials", url.UserPassword("alice", "s3cret:x"), http.StatusOK, `auth=""`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			proxy := p.URL()
			proxy.User = tc.user
			resp, err := proxiedClient(t, proxy, ca, 5*time.Second).Get("http://app.test/")
			must(t, err)
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			must(t, err)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.wantStatus)
			}
			if tc.wantStatus == http.StatusProxyAuthRequired {
				if got, want := resp.Header.Get("Proxy-Authenticate"), `Basic realm="corp"`; got != want {
					t.Errorf("Proxy-Authenticate = %q, want %q", got, want)
				}
			} else if string(body) != tc.wantBody {
				t.Errorf("body %q, want %q (credentials must not reach the origin)", body, tc.wantBody)
			}
			want := ""
			if tc.user != nil {
				pass, _ := tc.user.Password()
				want = basic(tc.user.Username(), pass)
			}
			if got := p.LastProxyAuthorization(); got != want {
				t.Errorf("LastProxyAuthorization() = %q, want %q", got, want)
			}
		})
	}

	t.Run("CONNECT", func(t *testing.T) {
		_, _, resp := connect(t, p.Addr(), "login.test:443", "")
		if resp.StatusCode != http.StatusProxyAuthRequired || resp.Header.Get("Proxy-Authenticate") != `Basic realm="corp"` {
			t.Errorf("unauthenticated CONNECT: %d %q", resp.StatusCode, resp.Header.Get("Proxy-Authenticate"))
		}
		_, _, resp = connect(t, p.Addr(), "login.test:443", "bAsIc "+base64.StdEncoding.EncodeToString([]byte("alice:s3cret:x")))
		if resp.StatusCode != http.StatusOK {
			t.Errorf("authenticated CONNECT (scheme in odd case): %d", resp.StatusCode)
		}
		proxy := p.URL()
		proxy.User = url.UserPassword("alice", "s3cret:x")
		resp2, err := proxiedClient(t, proxy, ca, 5*time.Second).Get("https://login.test/")
		must(t, err)
		resp2.Body.Close()
		if resp2.StatusCode != http.StatusOK {
			t.Errorf("HTTPS through authenticated tunnel: %d", resp2.StatusCode)
		}
	})
}

func TestParentDeny403(t *testing.T) {
	t.Parallel()
	p := NewParent(t, ParentOptions{Mode: ParentDeny403})
	resp, err := proxiedClient(t, p.URL(), nil, 5*time.Second).Get("http://app.test/")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("GET status %d, want 403", resp.StatusCode)
	}
	_, _, cresp := connect(t, p.Addr(), "login.test:443", basic("alice", "x"))
	if cresp.StatusCode != http.StatusForbidden {
		t.Errorf("CONNECT status %d, want 403", cresp.StatusCode)
	}
	if p.Requests() != 2 || p.LastProxyAuthorization() != basic("alice", "x") {
		t.Errorf("Requests() = %d, LastProxyAuthorization() = %q", p.Requests(), p.LastProxyAuthorization())
	}
}

func TestParentSlow(t *testing.T) {
	t.Parallel()
	p := NewParent(t, ParentOptions{Mode: ParentSlow})

	t.Run("requests arrive and are never answered", func(t *testing.T) {
		for i, req := range []string{
			"GET http://app.test/ HTTP/1.1\r\nHost: app.test\r\n\r\n",
			"CONNECT login.test:443 HTTP/1.1\r\nHost: login.test:443\r\n\r\n",
		} {
			c := dial(t, p.Addr())
			_, err := io.WriteString(c, req)
			must(t, err)
			WaitFor(t, func() bool { return p.Requests() == i+1 }, 5*time.Second)
			must(t, c.SetReadDeadline(time.Now().Add(100*time.Millisecond)))
			if n, err := c.Read(make([]byte, 1)); !isTimeout(err) {
				t.Errorf("read after %q: %d bytes, %v; want a timeout", strings.Fields(req)[0], n, err)
			}
		}
	})

	t.Run("net/http client times out", func(t *testing.T) {
		for _, target := range []string{"http://app.test/", "https://login.test/"} {
			start := time.Now()
			_, err := proxiedClient(t, p.URL(), nil, 200*time.Millisecond).Get(target)
			if !isTimeout(err) {
				t.Errorf("GET %s: %v, want a timeout", target, err)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("GET %s took %v, want it bounded by the client timeout", target, d)
			}
		}
	})
}

func TestParentPipelinedTunnelBytes(t *testing.T) {
	t.Parallel()
	echo := Echo(t)
	p := NewParent(t, ParentOptions{Dial: hosts{"echo.test:7": echo.Addr()}.dial})
	c := dial(t, p.Addr())
	must(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	// Bytes sent right behind the CONNECT head, before the 200, as a client
	// racing its ClientHello would; the parent must not lose them.
	_, err := io.WriteString(c, "CONNECT echo.test:7 HTTP/1.1\r\nHost: echo.test:7\r\n\r\nearly bytes")
	must(t, err)
	must(t, c.CloseWrite())
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
	must(t, err)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("CONNECT status %d", resp.StatusCode)
	}
	got, err := io.ReadAll(br)
	must(t, err)
	if !bytes.Equal(got, []byte("early bytes")) {
		t.Errorf("echo = %q, want the pipelined bytes", got)
	}
}

func TestParentOriginFormIsRejected(t *testing.T) {
	t.Parallel()
	p := NewParent(t, ParentOptions{})
	resp, err := noProxyClient(t, 5*time.Second).Get("http://" + p.Addr() + "/")
	must(t, err)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("origin-form request: status %d, want 400", resp.StatusCode)
	}
}
