package pac

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

func mustEngine(t *testing.T, src string, opts Options) *Engine {
	t.Helper()
	s, err := Compile("test.pac", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if opts.Resolver == nil {
		opts.Resolver = testDNS
	}
	e, err := New(s, opts)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestScriptErrors(t *testing.T) {
	big := "function FindProxyForURL(u, h) { return \"DIRECT\"; }\n//" + strings.Repeat("x", MaxScriptSize)
	tests := []struct {
		name, src string
		want      error
		msg       string
	}{
		{"oversized", big, ErrTooLarge, "pac: test.pac: 1048630 bytes: PAC larger than 1 MiB"},
		{"syntax", "function FindProxyForURL(u, h) { return \"DIRECT\"", ErrCompile, ""},
		{"no function", "var x = 1;", ErrNoFunction, "pac: PAC defines neither FindProxyForURL nor FindProxyForURLEx"},
		{"top level throws", "throw new Error('boom'); function FindProxyForURL(u, h) { return 'DIRECT'; }", ErrScript, ""},
		{"top level endless", "while (true) {} function FindProxyForURL(u, h) { return 'DIRECT'; }", ErrTimeout, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Compile("test.pac", []byte(tc.src))
			if err == nil {
				_, err = New(s, Options{EvalTimeout: 50 * time.Millisecond})
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if tc.msg != "" && err.Error() != tc.msg {
				t.Errorf("message\n got %s\nwant %s", err, tc.msg)
			}
		})
	}
}

func TestEvaluationErrors(t *testing.T) {
	tests := []struct {
		name, body string
		want       error
		detail     string
	}{
		{"throws", `throw "bad PAC";`, ErrScript, "bad PAC"},
		{"reference error", `return undefinedHelper(host);`, ErrScript, "ReferenceError"},
		{"endless loop", `for (;;) {}`, ErrTimeout, "after 100ms"},
		{"endless loop caught", `try { for (;;) {} } catch (e) { return "DIRECT"; }`, ErrTimeout, "after 100ms"},
		{"recursion", `function f(n) { return f(n + 1); } return f(0);`, ErrScript, "call stack deeper than 1000"},
		{"undefined", `return;`, ErrResult, "returned undefined"},
		{"null", `return null;`, ErrResult, "returned null"},
		{"number", `return 42;`, ErrResult, "returned a int64"},
		{"too many lookups", `for (var i = 0; i < 100; i++) dnsResolve("h" + i + ".invalid"); return "DIRECT";`, ErrLookups, "more than 16"},
		{"lookup bound not catchable", `try { for (var i = 0; i < 100; i++) dnsResolve("h" + i + ".invalid"); } catch (e) {} return "DIRECT";`, ErrLookups, "more than 16"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := mustEngine(t, "function FindProxyForURL(url, host) {"+tc.body+"}", Options{EvalTimeout: 100 * time.Millisecond})
			_, err := e.FindProxy(context.Background(), Target{Scheme: "http", Host: "www.example.com"})
			var ee *EvalError
			if !errors.As(err, &ee) || !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if !strings.Contains(ee.Detail, tc.detail) {
				t.Errorf("detail %q, want it to contain %q", ee.Detail, tc.detail)
			}
			// The runtime that failed is replaced: the engine still works.
			e2 := mustEngine(t, "function FindProxyForURL(url, host) { if (host == 'ok') return 'DIRECT';"+tc.body+"}", Options{EvalTimeout: 100 * time.Millisecond})
			_, _ = e2.FindProxy(context.Background(), Target{Scheme: "http", Host: "x"})
			if d, err := e2.FindProxy(context.Background(), Target{Scheme: "http", Host: "ok"}); err != nil || d.Answer != "DIRECT" {
				t.Errorf("after a failure: %v %v", d, err)
			}
		})
	}
}

// TestTimeLimitBoundsEvaluation: an endless loop returns ErrTimeout close
// to the limit, not never.
func TestTimeLimitBoundsEvaluation(t *testing.T) {
	e := mustEngine(t, "function FindProxyForURL(u, h) { while (true) {} }", Options{EvalTimeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := e.FindProxy(context.Background(), Target{Scheme: "https", Host: "a"})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("error %v, want ErrTimeout", err)
	}
	// A bound far above the limit: the point is that it returns at all.
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %s with a 200ms limit", el)
	}
}

// TestRegexpBacktracking: a pattern that backtracks without end (regexp2
// runs it, in one native call an interrupt cannot stop) ends the
// evaluation as a timeout, not never.
func TestRegexpBacktracking(t *testing.T) {
	e := mustEngine(t, `function FindProxyForURL(u, h) {
		if (/(x+x+)+y(?=\1)/.test("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx")) return "PROXY p:1";
		return "DIRECT"; }`, Options{EvalTimeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := e.FindProxy(context.Background(), Target{Scheme: "https", Host: "a"})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("error %v, want ErrTimeout", err)
	}
	if el := time.Since(start); el > 10*time.Second {
		t.Errorf("took %s", el)
	}
}

// TestDNSDeadline: a resolver that never answers (and ignores its
// context) costs the call timeout, after which the helper sees an
// unresolvable name, and the evaluation still ends well inside its limit.
func TestDNSDeadline(t *testing.T) {
	dns := &fakeDNS{names: map[string][]string{"fast.example": {"192.0.2.1"}}, block: map[string]bool{"hang.example": true}}
	src := `function FindProxyForURL(url, host) {
		if (isResolvable("hang.example")) return "PROXY hung:1";
		if (isInNet(host, "192.0.2.0", "255.255.255.0")) return "DIRECT";
		return "PROXY p:8080";
	}`
	e := mustEngine(t, src, Options{Resolver: dns, EvalTimeout: 5 * time.Second, CallTimeout: 100 * time.Millisecond})
	start := time.Now()
	d, err := e.FindProxy(context.Background(), Target{Scheme: "https", Host: "fast.example"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Answer != "DIRECT" || d.Lookups != 2 || d.FailedLookups != 1 {
		t.Errorf("decision %+v, want DIRECT after 2 lookups, 1 failed", d)
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("took %s with a 100ms DNS deadline", el)
	}
}

// TestDNSDeadlineEndsWithEvaluation: when the evaluation's own limit is
// shorter than the call timeout, a hung lookup ends with the evaluation.
func TestDNSDeadlineEndsWithEvaluation(t *testing.T) {
	dns := &fakeDNS{block: map[string]bool{"hang.example": true}}
	e := mustEngine(t, `function FindProxyForURL(u, h) { dnsResolve("hang.example"); return "DIRECT"; }`,
		Options{Resolver: dns, EvalTimeout: 100 * time.Millisecond, CallTimeout: time.Hour})
	_, err := e.FindProxy(context.Background(), Target{Scheme: "https", Host: "a"})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("error %v, want ErrTimeout", err)
	}
}

func TestLookupsCountedOncePerName(t *testing.T) {
	dns := &fakeDNS{names: map[string][]string{"a.example": {"192.0.2.1"}}}
	e := mustEngine(t, `function FindProxyForURL(u, h) {
		for (var i = 0; i < 50; i++) dnsResolve("a.example");
		return isResolvable("A.example") ? "DIRECT" : "PROXY p:1"; }`, Options{Resolver: dns, MaxLookups: 1})
	d, err := e.FindProxy(context.Background(), Target{Scheme: "https", Host: "x"})
	if err != nil || d.Answer != "DIRECT" || d.Lookups != 1 || dns.calls.Load() != 1 {
		t.Errorf("%+v %v, resolver asked %d times", d, err, dns.calls.Load())
	}
}

func TestCache(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	e := mustEngine(t, `var n = 0; function FindProxyForURL(url, host) { n++; return "PROXY p" + n + ":8080"; }`,
		Options{Now: clock, CacheTTL: time.Hour, Runtimes: 1})
	ask := func(t Target) string {
		d, err := e.FindProxy(context.Background(), t)
		if err != nil {
			panic(err)
		}
		return fmt.Sprintf("%s cached=%v", d.Answer, d.Cached)
	}
	c1, c2 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	steps := []struct {
		t    Target
		want string
	}{
		{Target{Scheme: "https", Host: "a.example", Client: c1}, "PROXY p1:8080 cached=false"},
		{Target{Scheme: "https", Host: "A.example", Port: 443, Client: c1}, "PROXY p1:8080 cached=true"},
		{Target{Scheme: "http", Host: "a.example", Client: c1}, "PROXY p2:8080 cached=false"},
		{Target{Scheme: "https", Host: "a.example", Port: 8443, Client: c1}, "PROXY p3:8080 cached=false"},
		{Target{Scheme: "https", Host: "a.example", Client: c2}, "PROXY p4:8080 cached=false"},
		{Target{Scheme: "https", Host: "a.example", Client: c1}, "PROXY p1:8080 cached=true"},
	}
	for i, s := range steps {
		if got := ask(s.t); got != s.want {
			t.Errorf("step %d: %s, want %s", i, got, s.want)
		}
	}
	if d, _ := e.Evaluate(context.Background(), steps[0].t); d.Answer != "PROXY p5:8080" || d.Cached {
		t.Errorf("Evaluate used the cache: %+v", d)
	}
}

func TestCacheExpiresAndHoldsFailures(t *testing.T) {
	e := mustEngine(t, `var n = 0; function FindProxyForURL(url, host) { n++; if (n == 1) throw "first"; return "DIRECT"; }`,
		Options{CacheTTL: 50 * time.Millisecond, Runtimes: 1})
	tg := Target{Scheme: "https", Host: "a.example"}
	if _, err := e.FindProxy(context.Background(), tg); !errors.Is(err, ErrScript) {
		t.Fatalf("first: %v", err)
	}
	d, err := e.FindProxy(context.Background(), tg)
	if !errors.Is(err, ErrScript) || !d.Cached {
		t.Fatalf("second: %+v %v, want the cached failure", d, err)
	}
	time.Sleep(100 * time.Millisecond)
	// The failed runtime was replaced by a fresh one, whose n starts at 0
	// again: the first call on it throws once more.
	if _, err := e.FindProxy(context.Background(), tg); !errors.Is(err, ErrScript) {
		t.Fatalf("after expiry: %v", err)
	}
}

func TestCacheBounded(t *testing.T) {
	e := mustEngine(t, `function FindProxyForURL(url, host) { return "DIRECT"; }`, Options{CacheSize: 8})
	for i := range 100 {
		if _, err := e.FindProxy(context.Background(), Target{Scheme: "https", Host: fmt.Sprintf("h%d.example", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(e.cache.m); n > 8 {
		t.Errorf("cache holds %d decisions, bound 8", n)
	}
}

// TestConcurrentEvaluations runs more evaluations than runtimes at once
// (run with -race): each gets its own runtime and its own client address.
func TestConcurrentEvaluations(t *testing.T) {
	e := mustEngine(t, `function FindProxyForURL(url, host) { return "PROXY " + myIpAddress() + ":" + dnsDomainLevels(host); }`,
		Options{Runtimes: 3, CacheTTL: -1})
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			client := netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
			host := strings.Repeat("a.", i%5) + "example"
			d, err := e.FindProxy(context.Background(), Target{Scheme: "https", Host: host, Client: client})
			if want := fmt.Sprintf("PROXY %s:%d", client, i%5); err != nil || d.Answer != want {
				errs <- fmt.Errorf("got %q %v, want %q", d.Answer, err, want)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestURLForAndFunc(t *testing.T) {
	e := mustEngine(t, `function FindProxyForURL(url, host) { return "PROXY old:1"; }
		function FindProxyForURLEx(url, host) { return "PROXY " + host + ":1; DIRECT " + url; }`, Options{CacheTTL: -1})
	tests := []struct {
		t         Target
		url, host string
	}{
		{Target{Scheme: "https", Host: "Login.MicrosoftOnline.com"}, "https://login.microsoftonline.com/", "login.microsoftonline.com"},
		{Target{Scheme: "https", Host: "a.example", Port: 8443}, "https://a.example:8443/", "a.example"},
		{Target{Scheme: "https", Host: "2001:db8::1", Port: 443}, "https://[2001:db8::1]/", "2001:db8::1"},
	}
	for _, tc := range tests {
		d, err := e.FindProxy(context.Background(), tc.t)
		if err != nil {
			t.Fatal(err)
		}
		if d.URL != tc.url || d.Host != tc.host || d.Func != "FindProxyForURLEx" {
			t.Errorf("%+v: url %q host %q func %s", tc.t, d.URL, d.Host, d.Func)
		}
		if d.AnswerErr == nil || len(d.Hops) != 1 {
			t.Errorf("answer %q: hops %v err %v", d.Answer, d.Hops, d.AnswerErr)
		}
	}
}
