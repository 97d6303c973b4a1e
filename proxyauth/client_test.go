package proxyauth

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/m365tap/m365tap/internal/testsquid"
)

// handshake runs h on one new connection to a parent proxy as the tap
// will: the first leg at once, each 407's Proxy-Authenticate values fed
// back, every leg on the same connection. It returns the final status,
// the number of 407s, and Step's error.
func handshake(t *testing.T, proxyAddr, target string, c Client) (status, legs int, err error) {
	t.Helper()
	h, err := c.Start()
	if err != nil {
		return 0, 0, err
	}
	conn, err := testsquid.Dial(proxyAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var challenges []string
	for range 5 {
		v, err := h.Step(challenges)
		if err != nil {
			return http.StatusProxyAuthRequired, legs, err
		}
		req := testsquid.Get(target)
		req.Header.Set("Proxy-Authorization", v)
		resp, _, err := conn.Do(req)
		if err != nil {
			t.Fatalf("leg %d: %v", legs+1, err)
		}
		if resp.StatusCode != http.StatusProxyAuthRequired {
			return resp.StatusCode, legs, nil
		}
		legs++
		challenges = resp.Header.Values("Proxy-Authenticate")
	}
	t.Fatalf("handshake did not end after %d legs", legs)
	return 0, 0, nil
}

// TestClientsAgainstSquid authenticates each tap-held Client to Debian's
// Squid, which checks the credential for real: htpasswd for Basic,
// testsquid's NTLMv2 helper, and an MIT KDC's tickets through
// negotiate_kerberos_auth (and negotiate_wrapper_auth for NTLM inside
// Negotiate). Squid's access log must name the user.
func TestClientsAgainstSquid(t *testing.T) {
	const parent = "proxy.corp.test"
	spn := "HTTP/" + parent
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(origin.Close)
	kdc := testsquid.StartKDC(t)
	kdc.AddUser("alice", "Alice-pw-1")
	kdc.AddUser("mallory", "Mallory-pw-3")
	tapKeytab := kdc.AddService("m365tap") // a principal of the tap's own, with its keytab
	users := []testsquid.User{{Name: "alice", Password: "Alice-pw-1"}}
	squid := map[testsquid.Auth]*testsquid.Squid{}
	for _, mode := range []testsquid.Auth{testsquid.AuthBasic, testsquid.AuthNTLM, testsquid.AuthNegotiate, testsquid.AuthAll} {
		squid[mode] = testsquid.Start(t, testsquid.Options{Auth: mode, Users: users, KDC: kdc, SPN: spn,
			Deny: []string{"mallory@" + kdc.Realm}})
	}
	aliceCC := kdc.Kinit("alice", "Alice-pw-1")
	malloryCC := kdc.Kinit("mallory", "Mallory-pw-3")
	negotiate := func(o NegotiateOptions) Client {
		if o.Krb5Conf == "" {
			o.Krb5Conf = kdc.Conf
		}
		c, err := NewNegotiate(o)
		if err != nil {
			t.Fatalf("NewNegotiate: %v", err)
		}
		return c
	}

	tests := []struct {
		name   string
		mode   testsquid.Auth
		client Client
		status int
		legs   int
		err    error
		user   string // as Squid logs it
	}{
		{"basic", testsquid.AuthBasic, NewBasic("alice", "Alice-pw-1"), 200, 0, nil, "alice"},
		{"basic wrong password", testsquid.AuthBasic, NewBasic("alice", "wrong"), 407, 1, ErrRejected, ""},
		{"basic offered ntlm only", testsquid.AuthNTLM, NewBasic("alice", "Alice-pw-1"), 407, 1, ErrNotOffered, ""},
		{"ntlm", testsquid.AuthNTLM, NewNTLM("TESTDOM", "alice", "Alice-pw-1", ""), 200, 1, nil, "alice"},
		{"ntlm without domain", testsquid.AuthNTLM, NewNTLM("", "alice", "Alice-pw-1", "TAP"), 200, 1, nil, "alice"},
		{"ntlm wrong password", testsquid.AuthNTLM, NewNTLM("TESTDOM", "alice", "wrong", ""), 407, 2, ErrRejected, ""},
		{"ntlm offered basic only", testsquid.AuthBasic, NewNTLM("TESTDOM", "alice", "Alice-pw-1", ""), 407, 1, ErrNotOffered, ""},
		{"ntlm offered with negotiate and basic", testsquid.AuthAll, NewNTLM("TESTDOM", "alice", "Alice-pw-1", ""), 200, 1, nil, "alice"},
		{"kerberos ccache", testsquid.AuthNegotiate, negotiate(NegotiateOptions{SPN: spn, CCache: aliceCC}), 200, 0, nil, "alice@" + kdc.Realm},
		{"kerberos FILE: ccache", testsquid.AuthAll, negotiate(NegotiateOptions{SPN: spn, CCache: "FILE:" + aliceCC}), 200, 0, nil, "alice@" + kdc.Realm},
		{"kerberos keytab", testsquid.AuthNegotiate, negotiate(NegotiateOptions{SPN: spn, Keytab: tapKeytab}), 200, 0, nil, "m365tap@" + kdc.Realm},
		{"kerberos keytab named user", testsquid.AuthNegotiate, negotiate(NegotiateOptions{SPN: spn, Keytab: tapKeytab, User: "m365tap@" + kdc.Realm}), 200, 0, nil, "m365tap@" + kdc.Realm},
		{"kerberos account refused", testsquid.AuthNegotiate, negotiate(NegotiateOptions{SPN: spn, CCache: malloryCC}), 407, 1, ErrRejected, ""},
		{"kerberos offered basic only", testsquid.AuthBasic, negotiate(NegotiateOptions{SPN: spn, CCache: aliceCC}), 407, 1, ErrNotOffered, ""},
		{"ntlm inside negotiate", testsquid.AuthAll, negotiate(NegotiateOptions{User: "alice", Domain: "TESTDOM", Password: "Alice-pw-1"}), 200, 1, nil, "alice"},
		{"ntlm inside negotiate wrong password", testsquid.AuthAll, negotiate(NegotiateOptions{User: "alice", Password: "wrong"}), 407, 2, ErrRejected, ""},
		// No ticket for an SPN the realm does not know: NTLM takes over.
		{"kerberos falls back to ntlm", testsquid.AuthAll, negotiate(NegotiateOptions{SPN: "HTTP/unknown.corp.test", CCache: aliceCC,
			User: "alice", Domain: "TESTDOM", Password: "Alice-pw-1"}), 200, 1, nil, "alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := squid[tt.mode]
			mark := s.Mark(t)
			status, legs, err := handshake(t, s.Addr, origin.URL+"/"+strings.ReplaceAll(tt.name, " ", "-"), tt.client)
			if status != tt.status || legs != tt.legs || !errors.Is(err, tt.err) || (tt.err == nil) != (err == nil) {
				t.Fatalf("status %d after %d 407s, err %v; want %d after %d, err %v", status, legs, err, tt.status, tt.legs, tt.err)
			}
			if tt.status != 200 {
				return
			}
			entries := s.WaitEntries(t, mark, tt.legs+1)
			last := entries[len(entries)-1]
			if last.Status != 200 || last.User != tt.user {
				t.Errorf("Squid logged %v; want 200 for %q", entries, tt.user)
			}
		})
	}

	t.Run("kerberos without a ticket and no ntlm", func(t *testing.T) {
		c := negotiate(NegotiateOptions{SPN: "HTTP/unknown.corp.test", CCache: aliceCC})
		if _, err := c.Start(); err == nil || !strings.Contains(err.Error(), "HTTP/unknown.corp.test") {
			t.Errorf("Start: %v; want an error naming the SPN", err)
		}
	})
	t.Run("concurrent starts", func(t *testing.T) {
		// One Client serves every parent connection at once: Start runs
		// concurrently (go test -race), and each handshake Squid accepts.
		c := negotiate(NegotiateOptions{SPN: spn, Keytab: tapKeytab})
		hs := make([]Handshake, 8)
		errs := make([]error, len(hs))
		var wg sync.WaitGroup
		for i := range hs {
			wg.Go(func() { hs[i], errs[i] = c.Start() })
		}
		wg.Wait()
		for i, h := range hs {
			if errs[i] != nil {
				t.Fatalf("Start %d: %v", i, errs[i])
			}
			status, _, err := handshake(t, squid[testsquid.AuthNegotiate].Addr, origin.URL+"/concurrent", started{c, h})
			if status != 200 {
				t.Errorf("handshake %d: %d, %v", i, status, err)
			}
		}
	})
	t.Run("each connection a fresh authenticator", func(t *testing.T) {
		// Squid's replay cache refuses a reused AP-REQ; three connections
		// in a row from one Client must all pass.
		c := negotiate(NegotiateOptions{SPN: spn, CCache: aliceCC})
		for i := range 3 {
			if status, _, err := handshake(t, squid[testsquid.AuthNegotiate].Addr, origin.URL+"/again", c); status != 200 {
				t.Fatalf("connection %d: %d, %v", i+1, status, err)
			}
		}
	})
}

// started is a Client whose next Start returns a handshake already begun.
type started struct {
	Client
	h Handshake
}

func (s started) Start() (Handshake, error) { return s.h, nil }

func TestNewNegotiateErrors(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "krb5.conf")
	if err := os.WriteFile(conf, []byte("[libdefaults]\n  default_realm = TEST.M365TAP\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		o    NegotiateOptions
		want string
	}{
		{"nothing", NegotiateOptions{SPN: "HTTP/p"}, "needs a keytab or a credential cache"},
		{"ntlm without password", NegotiateOptions{User: "alice"}, "needs a keytab or a credential cache"},
		{"no spn", NegotiateOptions{Keytab: "x"}, "needs the parent's SPN"},
		{"missing krb5.conf", NegotiateOptions{SPN: "HTTP/p", Keytab: "x", Krb5Conf: filepath.Join(dir, "none")}, "krb5.conf"},
		{"missing keytab", NegotiateOptions{SPN: "HTTP/p", Keytab: filepath.Join(dir, "none"), Krb5Conf: conf}, "keytab"},
		{"missing ccache", NegotiateOptions{SPN: "HTTP/p", CCache: filepath.Join(dir, "none"), Krb5Conf: conf}, "credential cache"},
	}
	for _, tt := range tests {
		if _, err := NewNegotiate(tt.o); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v; want one containing %q", tt.name, err, tt.want)
		}
	}
	if c, err := NewNegotiate(NegotiateOptions{User: "alice", Password: "pw"}); err != nil || c.Scheme() != SchemeNegotiate {
		t.Errorf("NTLM only: %v, %v", c, err)
	}
}

func TestNewSSPIElsewhere(t *testing.T) {
	if _, err := NewSSPI("HTTP/proxy.corp.example"); !errors.Is(err, errors.ErrUnsupported) {
		t.Errorf("NewSSPI: %v; want ErrUnsupported", err)
	}
}

// TestHandshakeSteps pins the legs without a parent: what each client
// sends first, and how it reads a 407.
func TestHandshakeSteps(t *testing.T) {
	h, _ := NewNTLM("CORP", "alice", "pw", "").Start()
	first, err := h.Step(nil)
	if err != nil || Inspect(first) != (Credential{Scheme: SchemeNTLM, NTLM: 1}) {
		t.Fatalf("first leg %q, %v", first, err)
	}
	second, err := h.Step([]string{"NTLM " + b64(ntlmChallenge(t)), `Basic realm="x"`})
	if err != nil || Inspect(second) != (Credential{Scheme: SchemeNTLM, NTLM: 3, User: `CORP\alice`}) {
		t.Fatalf("second leg %+v, %v", Inspect(second), err)
	}
	if _, err := h.Step([]string{"NTLM", "Basic realm=x"}); !errors.Is(err, ErrRejected) {
		t.Errorf("third leg: %v; want ErrRejected", err)
	}
	h, _ = NewNTLM("CORP", "alice", "pw", "").Start()
	_, _ = h.Step(nil)
	if _, err := h.Step([]string{"NTLM"}); !errors.Is(err, ErrRejected) {
		t.Errorf("bare NTLM after NEGOTIATE: %v; want ErrRejected", err)
	}
	h, _ = NewNTLM("CORP", "alice", "pw", "").Start()
	_, _ = h.Step(nil)
	if _, err := h.Step([]string{"NTLM a"}); err == nil || errors.Is(err, ErrRejected) {
		t.Errorf("bad challenge: %v; want a decoding error", err)
	}
	h, _ = NewBasic("alice", "pw").Start()
	v, _ := h.Step(nil)
	if Inspect(v) != (Credential{Scheme: SchemeBasic, User: "alice"}) {
		t.Errorf("basic: %q", v)
	}
	_, err = h.Step([]string{"Negotiate", "NTLM"})
	if !errors.Is(err, ErrNotOffered) || !strings.Contains(err.Error(), `"negotiate,ntlm"`) {
		t.Errorf("basic not offered: %v", err)
	}
}

func TestToken68(t *testing.T) {
	for v, want := range map[string]string{
		"NTLM abc":        "abc",
		"NTLM abc==  ":    "abc==",
		"Negotiate":       "",
		`Basic realm="x"`: "",
		"NTLM a=b":        "",
		"NTLM abc def":    "",
	} {
		if got := token68(v); got != want {
			t.Errorf("token68(%q) = %q; want %q", v, got, want)
		}
	}
}
