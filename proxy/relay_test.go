package proxy_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/proxy"
)

// boundParent is a parent proxy whose authentication belongs to the TCP
// connection, as NTLM's does: "NTLM leg1" is answered 407 with a challenge
// naming the connection, "NTLM leg2:<challenge>:<user>:<password>" must
// come back on the same connection, and from then on the connection is
// that user's. It answers plain requests itself ("hello <user>") and tunnels
// CONNECTs, and records which user each request was served as.
type boundParent struct {
	t     testing.TB
	ln    net.Listener
	users map[string]string
	next  atomic.Int64
	mu    sync.Mutex
	// served is "user method target" per request answered 2xx.
	served []string
	conns  atomic.Int64
}

type boundConn struct {
	id     string
	user   string
	parent *boundParent
}

type boundKey struct{}

func newBoundParent(t testing.TB, users map[string]string) *boundParent {
	p := &boundParent{t: t, users: users}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.ln = ln
	srv := &http.Server{
		Handler: p,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			p.conns.Add(1)
			return context.WithValue(ctx, boundKey{}, &boundConn{id: fmt.Sprintf("c%d", p.next.Add(1)), parent: p})
		},
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return p
}

func (p *boundParent) URL() *url.URL { return &url.URL{Scheme: "http", Host: p.ln.Addr().String()} }

func (p *boundParent) servedAs() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.served...)
}

func (p *boundParent) challenge(w http.ResponseWriter, token string) {
	w.Header().Add("Proxy-Authenticate", "Negotiate")
	w.Header().Add("Proxy-Authenticate", "NTLM"+token)
	w.Header().Add("Proxy-Authenticate", `Basic realm="corp"`)
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusProxyAuthRequired)
	_, _ = io.WriteString(w, "parent says: authenticate\n")
}

func (p *boundParent) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	bc := r.Context().Value(boundKey{}).(*boundConn)
	if bc.user == "" {
		v := r.Header.Get("Proxy-Authorization")
		switch {
		case v == "NTLM leg1":
			p.challenge(w, " "+bc.id)
			return
		case strings.HasPrefix(v, "NTLM leg2:"):
			parts := strings.Split(strings.TrimPrefix(v, "NTLM leg2:"), ":")
			if len(parts) != 3 || parts[0] != bc.id || p.users[parts[1]] != parts[2] {
				p.challenge(w, "")
				return
			}
			bc.user = parts[1]
		case strings.HasPrefix(v, "Basic "):
			b, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(v, "Basic "))
			u, pw, _ := strings.Cut(string(b), ":")
			if p.users[u] != pw || pw == "" {
				p.challenge(w, "")
				return
			}
			// Basic is per request: the connection stays anonymous.
			p.serve(w, r, u)
			return
		default:
			p.challenge(w, "")
			return
		}
	}
	p.serve(w, r, bc.user)
}

func (p *boundParent) serve(w http.ResponseWriter, r *http.Request, user string) {
	p.mu.Lock()
	p.served = append(p.served, user+" "+r.Method+" "+r.Host)
	p.mu.Unlock()
	if r.Method != http.MethodConnect {
		_, _ = io.WriteString(w, "hello "+user)
		return
	}
	up, err := net.Dial("tcp", r.Host)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadGateway)
		return
	}
	w.WriteHeader(http.StatusOK)
	c, brw, err := w.(http.Hijacker).Hijack()
	if err != nil {
		up.Close()
		return
	}
	_ = brw.Flush()
	go func() { _, _ = io.Copy(up, brw); up.Close() }()
	_, _ = io.Copy(c, up)
	c.Close()
}

// rawClient is one keep-alive client connection written by hand, so a test
// controls exactly which request goes on which connection.
type rawClient struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t testing.TB, addr string) *rawClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, c: c, br: bufio.NewReader(c)}
}

func (rc *rawClient) do(method, target, auth string) (*http.Response, string) {
	rc.t.Helper()
	var b strings.Builder
	host := target
	if u, err := url.Parse(target); err == nil && u.Host != "" {
		host = u.Host
	}
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nProxy-Connection: keep-alive\r\n", method, target, host)
	if auth != "" {
		fmt.Fprintf(&b, "Proxy-Authorization: %s\r\n", auth)
	}
	b.WriteString("\r\n")
	if _, err := rc.c.Write([]byte(b.String())); err != nil {
		rc.t.Fatal(err)
	}
	_ = rc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(rc.br, &http.Request{Method: method})
	if err != nil {
		rc.t.Fatalf("%s %s: %v", method, target, err)
	}
	if method == http.MethodConnect && resp.StatusCode == http.StatusOK {
		return resp, ""
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		rc.t.Fatal(err)
	}
	return resp, string(body)
}

func challengeFor(t testing.TB, resp *http.Response) string {
	t.Helper()
	for _, v := range resp.Header.Values("Proxy-Authenticate") {
		if strings.HasPrefix(v, "NTLM ") {
			return strings.TrimPrefix(v, "NTLM ")
		}
	}
	t.Fatalf("no NTLM challenge in %v", resp.Header)
	return ""
}

func TestRelayPlainHandshakeIsPinned(t *testing.T) {
	parent := newBoundParent(t, map[string]string{"alice": "pw-a"})
	h := newHarness(t, proxy.Options{Parent: parent.URL()})
	c := dialRaw(t, h.addr)

	resp, body := c.do("GET", "http://intranet.example/a", "NTLM leg1")
	if resp.StatusCode != http.StatusProxyAuthRequired {
		t.Fatalf("leg 1: %d", resp.StatusCode)
	}
	// The 407 comes back as the parent sent it: its body, its schemes in
	// their order, and kept alive.
	if body != "parent says: authenticate\n" {
		t.Errorf("407 body %q", body)
	}
	if got := resp.Header.Values("Proxy-Authenticate"); len(got) != 3 || got[0] != "Negotiate" || !strings.HasPrefix(got[1], "NTLM ") || got[2] != `Basic realm="corp"` {
		t.Errorf("Proxy-Authenticate %q", got)
	}
	if resp.Close {
		t.Error("407 closes the client connection; the parent kept it open")
	}
	ch := challengeFor(t, resp)
	resp, body = c.do("GET", "http://intranet.example/a", "NTLM leg2:"+ch+":alice:pw-a")
	if resp.StatusCode != http.StatusOK || body != "hello alice" {
		t.Fatalf("leg 2: %d %q", resp.StatusCode, body)
	}
	// Authenticated: the next request needs no header, on the same parent connection.
	resp, body = c.do("GET", "http://intranet.example/b", "")
	if resp.StatusCode != http.StatusOK || body != "hello alice" {
		t.Fatalf("after handshake: %d %q", resp.StatusCode, body)
	}
	c.c.Close()
	ev := h.waitEvents(2)
	want(t, ev[0], map[string]any{"outcome": "ok", "parent_auth": "relay", "proxy_auth_scheme": "ntlm",
		"proxy_auth_legs": 1.0, "pinned": true, "proxy_auth_offered": "negotiate,ntlm,basic"})
	want(t, ev[1], map[string]any{"outcome": "ok", "parent_auth": "relay", "pinned": true})
	if _, ok := ev[0]["proxy_auth_user"]; ok {
		t.Error("user name logged without log.users")
	}
}

func TestRelayConnectHandshakeIsPinned(t *testing.T) {
	parent := newBoundParent(t, map[string]string{"alice": "pw-a"})
	echo := testnet.Echo(t).Addr()
	h := newHarness(t, proxy.Options{Parent: parent.URL(), AllowPorts: []int{mustPort(echo)}})
	c := dialRaw(t, h.addr)

	resp, body := c.do("CONNECT", echo, "NTLM leg1")
	if resp.StatusCode != http.StatusProxyAuthRequired || body != "parent says: authenticate\n" || resp.Close {
		t.Fatalf("leg 1: %d %q close=%v", resp.StatusCode, body, resp.Close)
	}
	resp, _ = c.do("CONNECT", echo, "NTLM leg2:"+challengeFor(t, resp)+":alice:pw-a")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("leg 2: %d", resp.StatusCode)
	}
	if _, err := c.c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 4)
	if _, err := io.ReadFull(c.br, got); err != nil || string(got) != "ping" {
		t.Fatalf("tunnel echo %q %v", got, err)
	}
	c.c.Close()
	ev := h.waitEvents(1)
	want(t, ev[0], map[string]any{"outcome": "ok", "method": "CONNECT", "parent_auth": "relay",
		"proxy_auth_scheme": "ntlm", "proxy_auth_legs": 1.0, "pinned": true})
	if s := parent.servedAs(); len(s) != 1 || !strings.HasPrefix(s[0], "alice CONNECT") {
		t.Errorf("parent served %q", s)
	}
}

// Two users and an anonymous client at once: the parent serves each
// request as its own client's user, or answers 407, never as another's.
func TestRelayNeverLendsAnIdentity(t *testing.T) {
	parent := newBoundParent(t, map[string]string{"alice": "pw-a", "bob": "pw-b"})
	h := newHarness(t, proxy.Options{Parent: parent.URL()})
	const rounds = 20
	var wg sync.WaitGroup
	errs := make(chan string, 3*rounds)
	for _, u := range []struct{ name, pw string }{{"alice", "pw-a"}, {"bob", "pw-b"}, {"", ""}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dialRaw(t, h.addr)
			if u.name != "" {
				resp, _ := c.do("GET", "http://intranet.example/", "NTLM leg1")
				resp, _ = c.do("GET", "http://intranet.example/", "NTLM leg2:"+challengeFor(t, resp)+":"+u.name+":"+u.pw)
				if resp.StatusCode != http.StatusOK {
					errs <- u.name + ": handshake " + resp.Status
					return
				}
			}
			for range rounds {
				resp, body := c.do("GET", "http://intranet.example/x", "")
				switch {
				case u.name == "" && resp.StatusCode != http.StatusProxyAuthRequired:
					errs <- "anonymous got " + resp.Status + " " + body
				case u.name != "" && body != "hello "+u.name:
					errs <- u.name + " got " + body
				}
				if u.name == "" {
					// A fresh connection, as a client that cannot answer does.
					c.c.Close()
					c = dialRaw(t, h.addr)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestRelay407Explained(t *testing.T) {
	parent := newBoundParent(t, map[string]string{"alice": "pw-a"})
	h := newHarness(t, proxy.Options{Parent: parent.URL(), Hosts: hostsFor("127.0.0.1:80", "www.msftconnecttest.com")})

	// No credentials at all: NCSI's case.
	c := dialRaw(t, h.addr)
	resp, _ := c.do("GET", "http://www.msftconnecttest.com/connecttest.txt", "")
	if resp.StatusCode != http.StatusProxyAuthRequired {
		t.Fatalf("anonymous probe: %d", resp.StatusCode)
	}
	c.c.Close()
	// A wrong password after a challenge.
	c = dialRaw(t, h.addr)
	resp, _ = c.do("GET", "http://intranet.example/", "NTLM leg1")
	resp, _ = c.do("GET", "http://intranet.example/", "NTLM leg2:"+challengeFor(t, resp)+":alice:wrong")
	if resp.StatusCode != http.StatusProxyAuthRequired {
		t.Fatalf("wrong password: %d", resp.StatusCode)
	}
	c.c.Close()
	ev := h.waitEvents(2)
	// Each 407 is written when its client connection closes, in either order.
	if ev[0]["host"] != "www.msftconnecttest.com" {
		ev[0], ev[1] = ev[1], ev[0]
	}
	want(t, ev[0], map[string]any{"outcome": "parent_auth_required", "cause_id": "ncsi-no-internet", "parent_auth": "relay", "status": 407.0})
	if e, _ := ev[0]["error"].(string); !strings.Contains(e, "sent no credentials") || !strings.Contains(e, "NCSI") {
		t.Errorf("error %q", e)
	}
	want(t, ev[1], map[string]any{"outcome": "parent_auth_required", "cause_id": "proxy-credentials-rejected",
		"proxy_auth_legs": 2.0, "proxy_auth_scheme": "ntlm", "pinned": true})
}

// Credentials in parent.url are the tap's own: they never go with a
// client's request unless configured, and never with the NCSI probe unless
// that is configured too, because the PC's probe gets the 407 without the tap.
func TestTapCredentialsOnlyWhereConfigured(t *testing.T) {
	parent := newBoundParent(t, map[string]string{"tap": "tap-pw"})
	u := parent.URL()
	u.User = url.UserPassword("tap", "tap-pw")
	for _, tc := range []struct {
		name              string
		clients, ncsi     bool
		wantPlain, wantNC int
		mode              string
	}{
		{"default", false, false, 407, 407, "relay"},
		{"clients", true, false, 200, 407, "tap"},
		{"clients+ncsi", true, true, 200, 200, "tap"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, proxy.Options{Parent: u, ParentAuthClients: tc.clients, ParentAuthNCSI: tc.ncsi,
				Hosts: hostsFor("127.0.0.1:80", "www.msftconnecttest.com")})
			c := dialRaw(t, h.addr)
			resp, _ := c.do("GET", "http://intranet.example/", "")
			if resp.StatusCode != tc.wantPlain {
				t.Errorf("plain: %d, want %d", resp.StatusCode, tc.wantPlain)
			}
			c.c.Close()
			c = dialRaw(t, h.addr)
			resp, _ = c.do("GET", "http://www.msftconnecttest.com/connecttest.txt", "")
			if resp.StatusCode != tc.wantNC {
				t.Errorf("probe: %d, want %d", resp.StatusCode, tc.wantNC)
			}
			c.c.Close()
			ev := h.waitEvents(2)
			want(t, ev[0], map[string]any{"parent_auth": tc.mode})
		})
	}
}

// An upload with Expect: 100-continue into a 407 gets the 407 before the
// client has sent its body.
func TestRelayExpectContinueGets407First(t *testing.T) {
	parent := newBoundParent(t, nil)
	h := newHarness(t, proxy.Options{Parent: parent.URL()})
	c := dialRaw(t, h.addr)
	req := "POST http://intranet.example/up HTTP/1.1\r\nHost: intranet.example\r\nProxy-Authorization: NTLM leg1\r\n" +
		"Content-Length: 100000\r\nExpect: 100-continue\r\n\r\n"
	if _, err := c.c.Write([]byte(req)); err != nil {
		t.Fatal(err)
	}
	_ = c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusProxyAuthRequired {
		t.Fatalf("status %d, want the parent's 407 before the body", resp.StatusCode)
	}
}
