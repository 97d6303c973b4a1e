package proxy_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/m365tap/m365tap/internal/testnet"
	"github.com/m365tap/m365tap/proxy"
)

// secrets are planted in every place a client, origin or config can put
// them; none may appear in any event.
var secrets = []string{
	"SECRET-USERINFO", "SECRET-CODE", "SECRET-TOKEN", "SECRET-ACCESS", "SECRET-ID", "SECRET-REFRESH",
	"SECRET-CLIENT", "SECRET-PASSWORD", "SECRET-SIG", "SECRET-ASSERTION", "SECRET-SAML", "SECRET-EXTRA",
	"SECRET-AUTHZ", "SECRET-COOKIE", "SECRET-SETCOOKIE", "SECRET-PROXYAUTH", "SECRET-PARENT", "SECRET-LOCATION",
}

// TestSecretsNeverLogged pushes credentials and tokens through the plain
// path, the CONNECT path, a parent with credentials and a probe redirect,
// and checks the log.
func TestSecretsNeverLogged(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "s", Value: "SECRET-SETCOOKIE"})
		io.WriteString(w, "ok")
	}))
	t.Cleanup(origin.Close)
	probe := probeOrigin(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://portal.test/login?token=SECRET-LOCATION", http.StatusFound)
	})
	parent := testnet.NewParent(t, testnet.ParentOptions{Mode: testnet.ParentAuth407, User: "corp", Pass: "SECRET-PARENT",
		Dial: hostsDial(hostsFor(probe.Listener.Addr().String(), "www.msftconnecttest.com"))})
	pu, _ := url.Parse("http://corp:SECRET-PARENT@" + parent.Addr())
	h := newHarness(t, proxy.Options{Parent: pu, RedactQuery: []string{"extra"}, AllowPorts: []int{443, 80, mustPort(origin.Listener.Addr().String())}})

	q := "code=SECRET-CODE&token=SECRET-TOKEN&access_token=SECRET-ACCESS&id_token=SECRET-ID&refresh_token=SECRET-REFRESH" +
		"&client_secret=SECRET-CLIENT&password=SECRET-PASSWORD&sig=SECRET-SIG&assertion=SECRET-ASSERTION&SAMLResponse=SECRET-SAML&extra=SECRET-EXTRA"
	u := strings.Replace(origin.URL, "http://", "http://user:SECRET-USERINFO@", 1) + "/cb?" + q
	// A raw request, so the userinfo really travels in the request line.
	c, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer SECRET-AUTHZ\r\nCookie: a=SECRET-COOKIE\r\nProxy-Authorization: Basic SECRET-PROXYAUTH\r\nConnection: close\r\n\r\n", u)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	c.Close()
	// CONNECT through the parent, with the tap's own Proxy-Authorization.
	cc, _, _ := rawConnect(t, h.addr, "login.microsoftonline.com:443", nil)
	cc.Close()
	// A probe whose redirect carries a token.
	r2, err := h.client().Get("http://www.msftconnecttest.com/connecttest.txt")
	if err != nil {
		t.Fatal(err)
	}
	r2.Body.Close()
	h.waitEvents(3)
	h.shutdown(0)
	for _, line := range h.log.lines {
		for _, s := range secrets {
			if strings.Contains(string(line), s) {
				t.Errorf("secret %s in the log: %s", s, line)
			}
		}
	}
}
