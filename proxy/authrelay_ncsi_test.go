package proxy_test

import (
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/m365tap/m365tap/internal/testsquid"
	"github.com/m365tap/m365tap/proxy"
)

// testRelayNCSI: NCSI's web probe runs as SYSTEM without credentials, so
// an authenticating parent answers it 407 and Windows decides "no
// internet" (the article's cause 2). Through the tap it must get the same
// 407, whether or not the tap holds credentials of its own, and the event
// must name the cause.
func testRelayNCSI(t *testing.T, e *arEnv) {
	probe := curlClient(nil, false, []string{"-A", "Microsoft NCSI"}, []string{"http://www.msftconnecttest.com/connecttest.txt"})
	for _, tc := range []struct {
		name string
		mod  func(*proxy.Options)
	}{
		{"tap without credentials", nil},
		{"tap with credentials in parent URL", func(o *proxy.Options) {
			o.Parent.User = url.UserPassword("bob", arBob.Password)
		}},
		{"tap with credentials for clients", func(o *proxy.Options) {
			o.Parent.User = url.UserPassword("bob", arBob.Password)
			o.ParentAuthClients = true
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, codes := e.sameThroughTap(t, probe, tc.mod)
			if !slices.Equal(codes, []int{407}) {
				t.Errorf("straight to Squid: %v, want 407", codes)
			}
			ev := relayEvents(t, h, 1)[0]
			want(t, ev, map[string]any{"outcome": "parent_auth_required", "cause_id": "ncsi-no-internet",
				"parent_auth": "relay", "probe": true})
		})
	}
}

// testRelayExpect: an upload with Expect: 100-continue into a 407 gets the
// 407 at once, through the tap as straight to Squid, instead of waiting
// out the client's expect timeout (5 s here) before sending its body.
func testRelayExpect(t *testing.T, e *arEnv) {
	body := filepath.Join(t.TempDir(), "upload")
	if err := os.WriteFile(body, []byte(strings.Repeat("x", 256<<10)), 0o600); err != nil {
		t.Fatal(err)
	}
	const expectTimeout = 5 * time.Second
	for _, tc := range []struct {
		name string
		args []string
		code int
	}{
		{"no credentials", nil, 407},
		{"basic wrong", []string{"--proxy-basic", "-U", "alice:not-" + arAlice.Password}, 407},
		{"ntlm right", []string{"--proxy-ntlm", "-U", "alice:" + arAlice.Password}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			elapsed := map[string]time.Duration{}
			client := func(t *testing.T, addr string) []int {
				args := append([]string{"-X", "POST", "-H", "Expect: 100-continue", "--expect100-timeout", "5",
					"--data-binary", "@" + body, "-x", "http://" + addr}, tc.args...)
				r := testsquid.Curl(t, nil, args, e.plainURLs("upload", 1)...)
				t.Logf("curl via %s: %v", addr, r)
				elapsed[addr] = r.Elapsed
				return r.Codes
			}
			h, codes := e.sameThroughTap(t, client, nil)
			if !slices.Equal(codes, []int{tc.code}) {
				t.Errorf("straight to Squid: %v, want %d", codes, tc.code)
			}
			// Not a timing test: only that nobody waited out the 5 s expect
			// timeout, with a wide margin for a loaded machine.
			for addr, d := range elapsed {
				if d >= expectTimeout*4/5 {
					t.Errorf("the upload via %s took %v: it waited for the expect timeout (%v)", addr, d, expectTimeout)
				}
			}
			_ = h
		})
	}
}
