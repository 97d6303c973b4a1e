package pac

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeDNS answers from a map; a name mapped to nil does not resolve. A
// name in block never answers and ignores its context, the worst resolver
// the engine must survive.
type fakeDNS struct {
	names map[string][]string
	block map[string]bool
	calls atomic.Int32
}

func (f *fakeDNS) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	f.calls.Add(1)
	if f.block[host] {
		select {} // never returns: the engine must not wait for it
	}
	var out []netip.Addr
	for _, s := range f.names[strings.ToLower(host)] {
		a := netip.MustParseAddr(s)
		if inFamily(network, a) {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no such host")
	}
	return out, nil
}

var testDNS = &fakeDNS{names: map[string][]string{
	"intranet.corp.example":     {"10.1.2.3"},
	"dual.example":              {"2001:db8::5", "192.0.2.5"},
	"v6only.example":            {"2001:db8::6"},
	"login.microsoftonline.com": {"20.190.128.1"},
}}

// evalExpr evaluates one JavaScript expression inside FindProxyForURL and
// returns it as a string.
func evalExpr(t *testing.T, expr string, opts Options, client string) string {
	t.Helper()
	src := "function FindProxyForURL(url, host) { return String(" + expr + "); }"
	s, err := Compile("expr.pac", []byte(src))
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	if opts.Resolver == nil {
		opts.Resolver = testDNS
	}
	opts.CacheTTL = -1
	e, err := New(s, opts)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	var c netip.Addr
	if client != "" {
		c = netip.MustParseAddr(client)
	}
	d, err := e.FindProxy(context.Background(), Target{Scheme: "https", Host: "www.example.com", Client: c})
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	return d.Answer
}

func TestHelpers(t *testing.T) {
	tests := []struct{ expr, want string }{
		{`isPlainHostName("www")`, "true"},
		{`isPlainHostName("www.example.com")`, "false"},
		{`isPlainHostName("::1")`, "false"},
		{`dnsDomainIs("www.example.com", ".example.com")`, "true"},
		{`dnsDomainIs("www.example.com", ".EXAMPLE.com")`, "true"},
		{`dnsDomainIs("www", ".example.com")`, "false"},
		{`dnsDomainIs("www.example.org", ".example.com")`, "false"},
		{`localHostOrDomainIs("www.example.com", "www.example.com")`, "true"},
		{`localHostOrDomainIs("www", "www.example.com")`, "true"},
		{`localHostOrDomainIs("www.example.org", "www.example.com")`, "false"},
		{`localHostOrDomainIs("home.example.com", "www.example.com")`, "false"},
		{`localHostOrDomainIs("ww", "www.example.com")`, "false"},
		{`isResolvable("intranet.corp.example")`, "true"},
		{`isResolvable("v6only.example")`, "false"},
		{`isResolvable("nowhere.invalid")`, "false"},
		{`isInNet("intranet.corp.example", "10.0.0.0", "255.0.0.0")`, "true"},
		{`isInNet("10.1.2.3", "10.1.0.0", "255.255.0.0")`, "true"},
		{`isInNet("10.1.2.3", "10.2.0.0", "255.255.0.0")`, "false"},
		{`isInNet("nowhere.invalid", "0.0.0.0", "0.0.0.0")`, "false"},
		{`isInNet("10.1.2.3", "10.1.0.0", "nonsense")`, "false"},
		{`dnsResolve("intranet.corp.example")`, "10.1.2.3"},
		{`dnsResolve("dual.example")`, "192.0.2.5"},
		{`dnsResolve("nowhere.invalid")`, "null"},
		{`dnsResolve("192.0.2.9")`, "192.0.2.9"},
		{`convert_addr("104.16.41.2")`, "1745889538"},
		{`convert_addr("192.168.1.1")`, "-1062731519"},
		{`dnsDomainLevels("www")`, "0"},
		{`dnsDomainLevels("www.example.com")`, "2"},
		{`shExpMatch("http://home.example.com/a/b.html", "*/a/*")`, "true"},
		{`shExpMatch("www.example.com", "*.example.com")`, "true"},
		{`shExpMatch("example.com", "*.example.com")`, "false"},
		{`shExpMatch("www.example.com", "www.?xample.com")`, "true"},
		{`shExpMatch("www.example.com", "www.example.co")`, "false"},
		{`shExpMatch("a.b", "a?b")`, "true"},
		{`shExpMatch("axb", "a.b")`, "false"},
		{`shExpMatch("", "*")`, "true"},
		{`shExpMatch("abcabd", "*abd")`, "true"},
		{`getClientVersion()`, "1.0"},
		{`isResolvableEx("v6only.example")`, "true"},
		{`isResolvableEx("nowhere.invalid")`, "false"},
		{`dnsResolveEx("dual.example")`, "2001:db8::5;192.0.2.5"},
		{`dnsResolveEx("nowhere.invalid")`, ""},
		{`isInNetEx("2001:db8::5", "2001:db8::/32")`, "true"},
		{`isInNetEx("2001:db9::5", "2001:db8::/32")`, "false"},
		{`isInNetEx("10.1.2.3", "10.0.0.0/8")`, "true"},
		{`isInNetEx("10.1.2.3", "10.0.0.0")`, "false"},
		{`isInNetEx("intranet.corp.example", "10.0.0.0/8")`, "false"},
		{`sortIpAddressList("10.2.3.9;2001:4898:28:3:201:2ff:feea:fc14;::1;127.0.0.1;::9")`, "::1;::9;2001:4898:28:3:201:2ff:feea:fc14;10.2.3.9;127.0.0.1"},
		{`sortIpAddressList("10.2.3.9;bogus")`, "false"},
		{`sortIpAddressList("")`, "false"},
		{`typeof alert("hello")`, "undefined"},
		{`typeof require + typeof console + typeof setTimeout + typeof fetch`, "undefinedundefinedundefinedundefined"},
	}
	for _, tc := range tests {
		if got := evalExpr(t, tc.expr, Options{}, ""); got != tc.want {
			t.Errorf("%s = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

func TestMyIPAddress(t *testing.T) {
	tests := []struct {
		name, myIP, client, expr, want string
	}{
		{"client", "", "10.20.30.40", "myIpAddress()", "10.20.30.40"},
		{"configured wins", "172.16.0.9", "10.20.30.40", "myIpAddress()", "172.16.0.9"},
		{"v6 client", "", "2001:db8::1", "myIpAddress()", "127.0.0.1"},
		{"unknown", "", "", "myIpAddress()", "127.0.0.1"},
		{"ex both", "172.16.0.9", "2001:db8::1", "myIpAddressEx()", "172.16.0.9;2001:db8::1"},
		{"ex none", "", "", "myIpAddressEx()", "127.0.0.1"},
		{"branch", "", "10.20.30.40", `isInNet(myIpAddress(), "10.20.0.0", "255.255.0.0") ? "DIRECT" : "PROXY p:1"`, "DIRECT"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var opts Options
			if tc.myIP != "" {
				opts.MyIP = netip.MustParseAddr(tc.myIP)
			}
			if got := evalExpr(t, tc.expr, opts, tc.client); got != tc.want {
				t.Errorf("%s = %q, want %q", tc.expr, got, tc.want)
			}
		})
	}
}

func TestTimeHelpers(t *testing.T) {
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	// Wednesday 2026-03-04 10:30:15 in Tokyo is 01:30:15 UTC the same day.
	wed := time.Date(2026, 3, 4, 10, 30, 15, 0, tokyo)
	// Tuesday 2026-03-03 23:30 UTC is already Wednesday 08:30 in Tokyo.
	lateUTC := time.Date(2026, 3, 3, 23, 30, 0, 0, time.UTC)
	tests := []struct {
		now        time.Time
		expr, want string
	}{
		{wed, `weekdayRange("WED")`, "true"},
		{wed, `weekdayRange("MON", "FRI")`, "true"},
		{wed, `weekdayRange("THU", "FRI")`, "false"},
		{wed, `weekdayRange("FRI", "MON")`, "false"},
		{wed, `weekdayRange("TUE", "MON")`, "true"},
		{wed, `weekdayRange("wed")`, "false"},
		{lateUTC, `weekdayRange("WED")`, "true"},
		{lateUTC, `weekdayRange("TUE", "GMT")`, "true"},
		{wed, `timeRange(10)`, "true"},
		{wed, `timeRange(9, 10)`, "true"},
		{wed, `timeRange(11, 17)`, "false"},
		{wed, `timeRange(1, "GMT")`, "true"},
		{wed, `timeRange(10, 30, 10, 30)`, "true"},
		{wed, `timeRange(10, 31, 11, 0)`, "false"},
		{wed, `timeRange(10, 30, 15, 10, 30, 15)`, "true"},
		{wed, `timeRange(10, 30, 16, 10, 30, 20)`, "false"},
		{wed, `timeRange(22, 6)`, "false"},
		{wed, `(function(){ try { timeRange(1, 2, 3); return "no"; } catch (e) { return "threw"; } })()`, "threw"},
		{wed, `dateRange(4)`, "true"},
		{wed, `dateRange("MAR")`, "true"},
		{wed, `dateRange(2026)`, "true"},
		{wed, `dateRange(2025)`, "false"},
		{wed, `dateRange(1, 15)`, "true"},
		{wed, `dateRange(5, 15)`, "false"},
		{wed, `dateRange("JAN", "MAR")`, "true"},
		{wed, `dateRange("APR", "DEC")`, "false"},
		{wed, `dateRange(1, "MAR", 4, "MAR")`, "true"},
		{wed, `dateRange(5, "MAR", 30, "JUN")`, "false"},
		{wed, `dateRange("FEB", 2026, "APR", 2026)`, "true"},
		{wed, `dateRange(1, "JAN", 2025, 31, "DEC", 2025)`, "false"},
		{wed, `dateRange(1, "JAN", 2026, 4, "MAR", 2026)`, "true"},
		{lateUTC, `dateRange(4, "GMT")`, "false"},
		{lateUTC, `dateRange(4)`, "true"},
	}
	for _, tc := range tests {
		opts := Options{Location: tokyo, Now: func() time.Time { return tc.now }}
		if got := evalExpr(t, tc.expr, opts, ""); got != tc.want {
			t.Errorf("at %s: %s = %q, want %q", tc.now, tc.expr, got, tc.want)
		}
	}
}
