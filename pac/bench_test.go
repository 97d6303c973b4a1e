package pac

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

// rulesPAC is a PAC of n shExpMatch and dnsDomainIs rules in the style of
// Microsoft 365 bypass files, the last one matching nothing the benchmark
// asks, so an evaluation walks all of them.
func rulesPAC(n int) string {
	var b strings.Builder
	b.WriteString("function FindProxyForURL(url, host) {\n  host = host.toLowerCase();\n")
	for i := range n {
		if i%2 == 0 {
			fmt.Fprintf(&b, "  if (shExpMatch(host, \"*.svc%d.example.com\")) return \"DIRECT\";\n", i)
		} else {
			fmt.Fprintf(&b, "  if (dnsDomainIs(host, \".svc%d.example.net\")) return \"PROXY p%d.corp.example:8080\";\n", i, i)
		}
	}
	b.WriteString("  if (isInNet(host, \"10.0.0.0\", \"255.0.0.0\")) return \"DIRECT\";\n")
	b.WriteString("  return \"PROXY proxy.corp.example:8080; DIRECT\";\n}\n")
	return b.String()
}

// BenchmarkCachedDecision is the request path: a decision found in the
// cache. The issue asks for at most 1 µs and no allocation.
func BenchmarkCachedDecision(b *testing.B) {
	e := benchEngine(b, Options{})
	tg := Target{Scheme: "https", Host: "outlook.office365.com", Port: 443, Client: netip.MustParseAddr("10.1.2.3")}
	if _, err := e.FindProxy(context.Background(), tg); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d, err := e.FindProxy(ctx, tg)
		if err != nil || !d.Cached {
			b.Fatal(d, err)
		}
	}
}

// BenchmarkCachedDecisionParallel: the same from every core at once.
func BenchmarkCachedDecisionParallel(b *testing.B) {
	e := benchEngine(b, Options{})
	tg := Target{Scheme: "https", Host: "outlook.office365.com", Port: 443, Client: netip.MustParseAddr("10.1.2.3")}
	if _, err := e.FindProxy(context.Background(), tg); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if d, err := e.FindProxy(ctx, tg); err != nil || !d.Cached {
				b.Fatal(d, err)
			}
		}
	})
}

// BenchmarkColdEvaluate200Rules is one evaluation of a 200-rule PAC that
// misses the cache (a runtime from the pool, all rules walked, one DNS
// helper on an IP literal).
func BenchmarkColdEvaluate200Rules(b *testing.B) {
	e := benchEngine(b, Options{CacheTTL: -1})
	tg := Target{Scheme: "https", Host: "www.example.org", Client: netip.MustParseAddr("10.1.2.3")}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		d, err := e.FindProxy(ctx, tg)
		if err != nil || d.Answer != "PROXY proxy.corp.example:8080; DIRECT" {
			b.Fatal(d, err)
		}
	}
}

// BenchmarkLoad200Rules is what a new or refreshed PAC costs once:
// compile, and a first runtime that runs the script's top level.
func BenchmarkLoad200Rules(b *testing.B) {
	src := []byte(rulesPAC(200))
	b.ReportAllocs()
	for b.Loop() {
		s, err := Compile("bench.pac", src)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := New(s, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchEngine(b *testing.B, opts Options) *Engine {
	b.Helper()
	s, err := Compile("bench.pac", []byte(rulesPAC(200)))
	if err != nil {
		b.Fatal(err)
	}
	opts.Resolver = testDNS
	e, err := New(s, opts)
	if err != nil {
		b.Fatal(err)
	}
	return e
}
