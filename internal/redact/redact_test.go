package redact

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/m365tap/m365tap/internal/redact/redacttest"
)

// TestEveryKeyEverySpelling is the property: for every sensitive key (the
// built-in ones and a configured one), every way of writing it, both
// separators, and the query and path parameters alike, the value sent
// never appears in the rendered URL, REDACTED does, and a neighbouring
// parameter is kept.
func TestEveryKeyEverySpelling(t *testing.T) {
	r := New([]string{"Session_ID"})
	keys := append(append([]string(nil), Builtin...), "Session_ID")
	for _, key := range keys {
		for i, sp := range redacttest.Spellings(key) {
			secret := fmt.Sprintf("PLANTED-%s-%d", strings.ToUpper(key), i)
			for _, raw := range []string{
				"http://h.test/cb?" + sp + "=" + secret + "&b=2",
				"http://h.test/cb?a=1&" + sp + "=" + secret + "&b=2",
				"http://h.test/cb?a=1;" + sp + "=" + secret + ";b=2",
				"http://h.test/cb?a=1;b=2&" + sp + "=" + secret + "=x%3B;b=2",
				"http://h.test/cb;" + sp + "=" + secret + "?b=2",
				"http://h.test/x;a=1;" + sp + "=" + secret + "/cb;" + sp + "=" + secret + "&b=2?b=2",
				"http://user:pw@h.test/cb?b=2#" + sp + "=" + secret,
				"http://h.test/cb?b=2&" + sp + "=" + secret + "#" + sp + "=" + secret,
			} {
				u, err := url.Parse(raw)
				if err != nil {
					t.Fatalf("%s: %v", raw, err)
				}
				for name, got := range map[string]string{"URL": r.URL(u), "Request": r.Request(raw, u), "Location": location(t, r, raw)} {
					if strings.Contains(got, "PLANTED") {
						t.Errorf("%s(%q) = %q: the value survived", name, raw, got)
					}
					if !strings.Contains(got, "b=2") {
						t.Errorf("%s(%q) = %q: the neighbour b=2 is gone", name, raw, got)
					}
					if !strings.Contains(raw, "#") && !strings.Contains(got, "="+Placeholder) {
						t.Errorf("%s(%q) = %q: no %s", name, raw, got, Placeholder)
					}
				}
			}
		}
	}
}

func location(t *testing.T, r *Redactor, loc string) string {
	s, ok := r.Location(loc)
	if !ok {
		t.Fatalf("Location(%q) did not parse", loc)
	}
	return s
}

// TestRender pins what is kept as written: separators, key spelling, other
// parameters, keys without a value, and keys that only look sensitive.
func TestRender(t *testing.T) {
	r := New([]string{"extra"})
	for _, c := range []struct{ in, want string }{
		{"http://h.test/p", "http://h.test/p"},
		{"http://h.test/p?q=1&lang=ja", "http://h.test/p?q=1&lang=ja"},
		{"http://h.test/p?Code+=S&keep=1", "http://h.test/p?Code+=REDACTED&keep=1"},
		{"http://h.test/p?a=1;code=S;access_token=T", "http://h.test/p?a=1;code=REDACTED;access_token=REDACTED"},
		{"http://h.test/p?code%20=S", "http://h.test/p?code%20=REDACTED"},
		{"http://h.test/p?code&code=&token==x", "http://h.test/p?code&code=REDACTED&token=REDACTED"},
		{"http://h.test/p?codex=1&xcode=2&co+de=3", "http://h.test/p?codex=1&xcode=2&co+de=3"},
		{"http://h.test/p?EXTRA=1&extra+=2&ex.tra=3", "http://h.test/p?EXTRA=REDACTED&extra+=REDACTED&ex.tra=3"},
		{"http://h.test/a;jsessionid=1/b;code=S;x=2", "http://h.test/a;jsessionid=1/b;code=REDACTED;x=2"},
		{"http://h.test/code=S/b", "http://h.test/code=S/b"}, // a segment name, not a parameter
		{"http://u:p@h.test/p#access_token=S", "http://h.test/p"},
		{"/login?token=S#f", "/login?token=REDACTED"},
		{"http://h.test/p?%zz=1&token=%zz", "http://h.test/p?%zz=1&token=REDACTED"},
	} {
		u, err := url.Parse(c.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.URL(u); got != c.want {
			t.Errorf("URL(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// TestRequestReturnsTheRequestLine: the common request is logged as its
// request line, without building a string; a request line that differs
// from the URL's rendering is not.
func TestRequestReturnsTheRequestLine(t *testing.T) {
	r := New(nil)
	for _, c := range []struct {
		uri, want string
		same      bool
	}{
		{"http://www.msftconnecttest.com/connecttest.txt", "http://www.msftconnecttest.com/connecttest.txt", true},
		{"http://h.test/a%2Fb", "http://h.test/a%2Fb", false}, // url.URL.EscapedPath allocates to check RawPath
		{"http://h.test/a;code=S", "http://h.test/a;code=REDACTED", false},
		{"http://h.test/a?code=S", "http://h.test/a?code=REDACTED", false},
	} {
		u, err := url.Parse(c.uri)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Request(c.uri, u); got != c.want {
			t.Errorf("Request(%q) = %q, want %q", c.uri, got, c.want)
		}
		// A request line that is not the URL's rendering (net/http fills
		// RequestURI from the line as sent) is never returned as it is.
		if got := r.Request("http://other.test/", u); got != c.want {
			t.Errorf("Request(other, %q) = %q, want %q", c.uri, got, c.want)
		}
		if c.same && testing.AllocsPerRun(100, func() { r.Request(c.uri, u) }) != 0 {
			t.Errorf("Request(%q) allocates", c.uri)
		}
	}
}

// TestAgreesWithParseQuery compares with an independent parser: every pair
// Go's url.ParseQuery reads from an '&'-separated query, whose key
// (trimmed and folded) is sensitive, has its value gone.
func TestAgreesWithParseQuery(t *testing.T) {
	r := New(nil)
	for _, q := range []string{"code=S1&x=1", "ACCESS_TOKEN=S2&id_token=S3", "%63ode=S4", "code+=S5&+token=S6", "samlresponse=S7&SAMLRequest=S8"} {
		checkAgainstParseQuery(t, r, q)
	}
}

func checkAgainstParseQuery(t *testing.T, r *Redactor, q string) {
	t.Helper()
	parsed, err := url.ParseQuery(q)
	if err != nil {
		return
	}
	got := r.Query(q)
	logged, err := url.ParseQuery(got)
	if err != nil {
		t.Fatalf("Query(%q) = %q, which does not parse: %v", q, got, err)
	}
	for k := range parsed {
		if !r.Sensitive(url.QueryEscape(k)) {
			continue
		}
		for _, v := range logged[k] {
			if v != Placeholder && v != "" { // a key without a value carries nothing
				t.Errorf("Query(%q) = %q keeps %q=%q", q, got, k, v)
			}
		}
	}
}

// FuzzRedactURL checks URL redaction on arbitrary URLs: whatever a
// sensitive key (built in, or configured like "session" here) is called in
// the query, the logged URL parses, carries no userinfo or fragment, keeps
// its number of pairs, and no pair a server would read as sensitive keeps
// a value other than REDACTED.
func FuzzRedactURL(f *testing.F) {
	r := New([]string{"session"})
	f.Add("http://login.microsoftonline.com/common/oauth2/authorize?code=SECRET&state=1")
	f.Add("http://u:pw@h.test/p?Access_Token=SECRET&x=1#frag")
	f.Add("http://h.test/?c%6Fde=SECRET&SAMLResponse=PHNhbWw%2B")
	f.Add("http://h.test/?SESSION=SECRET&session")
	f.Add("http://h.test/?code=a=b&&code&token=")
	f.Add("https://h.test/cb?id_token=x;code=y")
	f.Add("http://h.test/a;code=S/b;token=T?x=1")
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := url.Parse(raw)
		if err != nil || !u.IsAbs() || u.Host == "" {
			// The tap logs absolute URLs with a host only.
			return
		}
		out := r.URL(u)
		got, err := url.Parse(out)
		if err != nil {
			t.Fatalf("%q: redacted URL %q does not parse: %v", raw, out, err)
		}
		if got.User != nil {
			t.Fatalf("%q: userinfo survived in %q", raw, out)
		}
		if got.Fragment != "" {
			t.Fatalf("%q: fragment survived in %q", raw, out)
		}
		params := []string{got.RawQuery}
		for _, seg := range strings.Split(got.EscapedPath(), "/") {
			if _, p, ok := strings.Cut(seg, ";"); ok {
				params = append(params, p)
			}
		}
		for _, q := range params {
			for _, part := range strings.FieldsFunc(q, func(c rune) bool { return c == '&' || c == ';' }) {
				if k, v, ok := strings.Cut(part, "="); ok && r.Sensitive(k) && v != Placeholder {
					t.Fatalf("%q: sensitive %q logged with %q in %q", raw, k, v, out)
				}
			}
		}
		if u.RawQuery != "" && !strings.Contains(u.RawQuery, "#") {
			if a, b := strings.Count(u.RawQuery, "&")+strings.Count(u.RawQuery, ";"), strings.Count(got.RawQuery, "&")+strings.Count(got.RawQuery, ";"); a != b {
				t.Fatalf("%q: %d separators became %d in %q", raw, a, b, out)
			}
		}
		checkAgainstParseQuery(t, r, u.RawQuery)
	})
}

// BenchmarkRedact measures the per-request cost: a request without query
// (the common case, through Request as the proxy calls it), a query
// without sensitive keys, and one with a code.
func BenchmarkRedact(b *testing.B) {
	r := New(nil)
	for _, c := range []struct{ name, raw string }{
		{"no-query", "http://www.msftconnecttest.com/connecttest.txt"},
		{"query", "http://h.test/search?q=office&lang=ja-JP&page=2"},
		{"sensitive", "http://login.microsoftonline.com/common/oauth2/authorize?client_id=1&code=SECRET&state=xyz"},
	} {
		u, _ := url.Parse(c.raw)
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = r.Request(c.raw, u)
			}
		})
	}
}
