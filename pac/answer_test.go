package pac

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseAnswer(t *testing.T) {
	tests := []struct {
		in      string
		want    []Hop
		wantErr string
	}{
		{"DIRECT", []Hop{{Kind: Direct}}, ""},
		{"PROXY proxy.corp.example:8080; PROXY backup.corp.example:3128; DIRECT",
			[]Hop{{Proxy, "proxy.corp.example", 8080}, {Proxy, "backup.corp.example", 3128}, {Kind: Direct}}, ""},
		{"  proxy  Proxy.Corp.Example:8080 ;;direct;", []Hop{{Proxy, "proxy.corp.example", 8080}, {Kind: Direct}}, ""},
		{"PROXY proxy.corp.example", []Hop{{Proxy, "proxy.corp.example", 80}}, ""},
		{"HTTP 192.0.2.1:3128", []Hop{{Proxy, "192.0.2.1", 3128}}, ""},
		{"HTTPS secure.corp.example", []Hop{{HTTPS, "secure.corp.example", 443}}, ""},
		{"PROXY [2001:db8::1]:8080", []Hop{{Proxy, "2001:db8::1", 8080}}, ""},
		{"SOCKS5 socks.corp.example:1081; SOCKS s2; SOCKS4 s4:9",
			[]Hop{{SOCKS5, "socks.corp.example", 1081}, {SOCKS, "s2", 1080}, {SOCKS4, "s4", 9}}, ""},
		{"PROXY\tp:1", []Hop{{Proxy, "p", 1}}, ""},
		{"", nil, `pac: answer entry "": no entry; want DIRECT, PROXY host:port or HTTPS host:port`},
		{" ; ", nil, `pac: answer entry " ; ": no entry; want DIRECT, PROXY host:port or HTTPS host:port`},
		{"PROXY p:99999; DIRECT", []Hop{{Kind: Direct}}, `pac: answer entry "PROXY p:99999": port must be 1..65535`},
		{"PROXY p:0", nil, `pac: answer entry "PROXY p:0": port must be 1..65535`},
		{"PROXY", nil, `pac: answer entry "PROXY": no proxy address`},
		{"PROXY user@p:8080", nil, `pac: answer entry "PROXY user@p:8080": want host:port`},
		{"PROXY http://p:8080", nil, `pac: answer entry "PROXY http://p:8080": want host:port`},
		{"DIRECT p:8080", nil, `pac: answer entry "DIRECT p:8080": DIRECT takes no address`},
		{"FTP p:21; PROXY q:1", []Hop{{Proxy, "q", 1}}, `pac: answer entry "FTP p:21": unknown keyword; want DIRECT, PROXY, HTTPS, SOCKS, SOCKS4 or SOCKS5`},
		{"PROXY :8080", nil, `pac: answer entry "PROXY :8080": no proxy host`},
	}
	for _, tc := range tests {
		got, err := ParseAnswer(tc.in)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ParseAnswer(%q) = %v, want %v", tc.in, got, tc.want)
		}
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("ParseAnswer(%q): %v", tc.in, err)
		case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
			t.Errorf("ParseAnswer(%q) error = %v, want %s", tc.in, err, tc.wantErr)
		case err != nil && !errors.Is(err, ErrAnswer):
			t.Errorf("ParseAnswer(%q) error does not wrap ErrAnswer", tc.in)
		}
	}
}

func TestKinds(t *testing.T) {
	for k := Direct; k <= SOCKS5; k++ {
		hops, err := ParseAnswer(k.String() + map[bool]string{true: "", false: " h:1"}[k == Direct])
		if err != nil || len(hops) != 1 || hops[0].Kind != k {
			t.Errorf("%s does not round-trip: %v %v", k, hops, err)
		}
		if want := k == Direct || k == Proxy; k.Supported() != want {
			t.Errorf("%s.Supported() = %v", k, k.Supported())
		}
	}
	if got := Kind(0).String(); got != "kind(0)" {
		t.Errorf("Kind(0) = %q", got)
	}
	if got := (Hop{Proxy, "2001:db8::1", 8080}).String(); got != "PROXY [2001:db8::1]:8080" {
		t.Errorf("hop string %q", got)
	}
}

// FuzzParseAnswer: whatever a PAC returns, the parser neither panics nor
// yields a hop the dialer could not use: every proxy hop has a host and a
// port, and its String parses back to the same hop.
func FuzzParseAnswer(f *testing.F) {
	for _, s := range []string{"DIRECT", "PROXY a:1; DIRECT", "HTTPS [::1]:443", "SOCKS5 s", "proxy p:99999", ";;", "PROXY \x00:1", "PROXY [::1", "PROXY a:b:c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		hops, err := ParseAnswer(s)
		if len(hops) == 0 && err == nil {
			t.Fatalf("%q: no hops and no error", s)
		}
		for _, h := range hops {
			if h.Kind == Direct {
				continue
			}
			if h.Host == "" || h.Port == 0 || strings.ContainsAny(h.Host, " \t;/@") {
				t.Fatalf("%q: unusable hop %#v", s, h)
			}
			back, err := ParseAnswer(h.String())
			if err != nil || len(back) != 1 || back[0] != h {
				t.Fatalf("%q: hop %#v prints as %q, which parses to %v %v", s, h, h.String(), back, err)
			}
		}
	})
}
