package proxy_test

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"

	"go.uber.org/zap"

	"github.com/m365tap/m365tap/internal/testsquid"
	"github.com/m365tap/m365tap/proxy"
)

// BenchmarkNTLMRelayConnect measures what an NTLM client pays for a tunnel
// through an authenticating Squid: a new connection, CONNECT with the NTLM
// handshake (NEGOTIATE, 407 with the challenge, AUTHENTICATE, 200), a TLS
// handshake and one request inside. "direct" is the client straight to
// Squid, "tap" the same client through the tap with Squid as its parent;
// the ratio of their ns/op is the relay's cost.
//
//	go test -tags authrelay -run '^$' -bench NTLMRelayConnect -benchtime 200x -count 5 ./proxy
func BenchmarkNTLMRelayConnect(b *testing.B) {
	user := testsquid.User{Name: "alice", Password: "Alice-pw-1"}
	squid := testsquid.Start(b, testsquid.Options{Auth: testsquid.AuthNTLM, Users: []testsquid.User{user}})
	origin := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}))
	b.Cleanup(origin.Close)
	target := origin.Listener.Addr().String()
	pool := origin.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	parent, _ := url.Parse("http://" + squid.Addr)
	h := newHarness(b, proxy.Options{Parent: parent, AllowPorts: []int{mustPort(target)},
		Log: zap.NewNop()})
	cr := &testsquid.Credentials{Scheme: "NTLM", User: user.Name, Domain: "CORP", Password: user.Password}

	for _, via := range []struct{ name, addr string }{{"direct", squid.Addr}, {"tap", h.addr}} {
		b.Run(via.name, func(b *testing.B) {
			for b.Loop() {
				c, err := testsquid.Dial(via.addr)
				if err != nil {
					b.Fatal(err)
				}
				resp, _, err := c.Authenticate(func() *http.Request { return testsquid.Connect(target) }, cr)
				if err != nil || resp.StatusCode != http.StatusOK {
					b.Fatalf("CONNECT: %v %v", resp, err)
				}
				tc := c.TLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
				if _, err := io.WriteString(tc, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadAll(tc); err != nil {
					b.Fatal(err)
				}
				tc.Close()
			}
		})
	}
}
