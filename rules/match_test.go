package rules

import (
	"cmp"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
)

// embeddedSet compiles the embedded catalogue once for all tests.
var embeddedSet = sync.OnceValues(func() (*Set, error) {
	c, err := EmbeddedCatalogue()
	if err != nil {
		return nil, err
	}
	return Compile(c, nil)
})

func mustEmbeddedSet(t testing.TB) *Set {
	t.Helper()
	s, err := embeddedSet()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ids(m Match) []string {
	var out []string
	for _, r := range m.All() {
		out = append(out, r.ID)
	}
	return out
}

func TestMatchEmbedded(t *testing.T) {
	s := mustEmbeddedSet(t)
	tests := []struct {
		host    string
		port    int
		all     []string // winner first; nil: no match
		pattern string   // the winner's pattern
		kind    Kind     // of the winner
	}{
		{"ocws.officeapps.live.com", 443, []string{"46"}, "*.officeapps.live.com", KindCommonRequired},
		{"config.office.com", 443, []string{"147"}, "*.office.com", KindCommonRequired},
		{"www.office.com", 443, []string{"147"}, "*.office.com", KindCommonRequired},
		{"crl.microsoft.com", 80, []string{"84", "78"}, "crl.microsoft.com", KindCommonRequired},
		// 50 and 78 both list *.microsoft.com: the lower id comes first.
		{"crl.microsoft.com", 443, []string{"84", "50", "78"}, "crl.microsoft.com", KindCommonRequired},
		{"login.microsoftonline.com", 443, []string{"56", "59"}, "login.microsoftonline.com", KindCommonRequired},
		{"aadcdn.msftauth.net", 443, []string{"59"}, "*.msftauth.net", KindCommonRequired},
		{"login.live.com", 443, []string{"97", "116"}, "login.live.com", KindOptional},
		{"www.msftconnecttest.com", 80, []string{"ncsi-connecttest-v4"}, "www.msftconnecttest.com", KindNCSIProbe},
		{"ipv6.msftconnecttest.com", 80, []string{"ncsi-connecttest-v6"}, "ipv6.msftconnecttest.com", KindNCSIProbe},
		{"www.msftncsi.com", 0, []string{"ncsi-msftncsi-v4"}, "www.msftncsi.com", KindNCSIProbe},
		{"ipv6.msftncsi.com", 80, []string{"ncsi-msftncsi-v6"}, "ipv6.msftncsi.com", KindNCSIProbe},
		// The probe is plain HTTP: a tunnel to the same host is not a probe.
		{"www.msftconnecttest.com", 443, nil, "", KindNone},
		{"dns.msftncsi.com", 80, nil, "", KindNone},
		{"example.org", 443, nil, "", KindNone},
		// *.office.com does not cover office.com itself.
		{"office.com", 443, nil, "", KindNone},
		{"officeapps.live.com", 443, []string{"53"}, "officeapps.live.com", KindCommonRequired},
		// Exact entries in 91 and 160 beat 46's wildcard.
		{"cdn.odc.officeapps.live.com", 443, []string{"91", "160", "46"}, "cdn.odc.officeapps.live.com", KindCommonRequired},
		// Equal exact entries: SharePoint 35 wins on its lower id; Common 86 is listed too.
		{"officeclient.microsoft.com", 443, []string{"35", "86", "50", "78"}, "officeclient.microsoft.com", KindOtherRequired},
		// Middle wildcard: exactly one label for the tenant.
		{"autodiscover.contoso.onmicrosoft.com", 443, []string{"8", "78"}, "autodiscover.*.onmicrosoft.com", KindOtherRequired},
		{"autodiscover.a.b.onmicrosoft.com", 443, []string{"78"}, "*.onmicrosoft.com", KindOptional},
		{"autodiscover.onmicrosoft.com", 443, []string{"78"}, "*.onmicrosoft.com", KindOptional},
		// Glued wildcard: at least one character before "cdn.onenote.net".
		{"xyzcdn.onenote.net", 443, []string{"51"}, "*cdn.onenote.net", KindCommonRequired},
		{"a.cdn.onenote.net", 443, []string{"51"}, "*cdn.onenote.net", KindCommonRequired},
		{"cdn.onenote.net", 443, nil, "", KindNone},
		// Any depth below the domain.
		{"a.b.c.config.office.com", 443, []string{"147"}, "*.office.com", KindCommonRequired},
		{"teams.cloud.microsoft", 443, []string{"12", "184"}, "teams.cloud.microsoft", KindOtherRequired},
		{"x.teams.cloud.microsoft", 443, []string{"12", "184"}, "*.teams.cloud.microsoft", KindOtherRequired},
		// Ports: 25 is not in 56/59's "80,443"; 10 is the port 25 set.
		{"login.microsoftonline.com", 25, nil, "", KindNone},
		{"smtp.office365.com", 587, []string{"2"}, "smtp.office365.com", KindOptional},
		{"smtp.office365.com", 25, nil, "", KindNone},
		{"x.mail.protection.outlook.com", 25, []string{"10"}, "*.mail.protection.outlook.com", KindOtherRequired},
		{"x.mail.protection.outlook.com", 443, []string{"9", "8"}, "*.protection.outlook.com", KindOtherRequired},
		{"x.mail.protection.outlook.com", 0, []string{"10", "9", "8"}, "*.mail.protection.outlook.com", KindOtherRequired},
		// Case and one trailing dot do not matter.
		{"LOGIN.MicrosoftOnline.COM.", 443, []string{"56", "59"}, "login.microsoftonline.com", KindCommonRequired},
		{"Config.Office.Com.", 443, []string{"147"}, "*.office.com", KindCommonRequired},
		// Not host names.
		{"login.microsoftonline.com..", 443, nil, "", KindNone},
		{".login.microsoftonline.com", 443, nil, "", KindNone},
		{"login..microsoftonline.com", 443, nil, "", KindNone},
		{"", 443, nil, "", KindNone},
		{".", 443, nil, "", KindNone},
		{"13.107.6.152", 443, nil, "", KindNone},
		{strings.Repeat("a.", 130) + "office.com", 443, nil, "", KindNone},
	}
	for _, tt := range tests {
		m := s.Match(tt.host, tt.port)
		got := ids(m)
		if !slices.Equal(got, tt.all) {
			t.Errorf("Match(%q, %d) = %v, want %v", tt.host, tt.port, got, tt.all)
			continue
		}
		if m.Pattern != tt.pattern || KindOf(m.Rule) != tt.kind {
			t.Errorf("Match(%q, %d): pattern %q kind %s, want %q %s", tt.host, tt.port, m.Pattern, KindOf(m.Rule), tt.pattern, tt.kind)
		}
		if len(tt.all) > 0 && m.Rule != m.All()[0] {
			t.Errorf("Match(%q): Rule is not All()[0]", tt.host)
		}
	}
}

func TestMatchRuleFields(t *testing.T) {
	s := mustEmbeddedSet(t)
	m := s.Match("login.microsoftonline.com", 443)
	r := m.Rule
	if r.Source != SourceCatalogue || r.ServiceArea != "Common" || !r.Required || !r.ExpressRoute || r.Category != "Allow" ||
		!slices.Equal(r.TCPPorts, []uint16{80, 443}) || r.Probe != nil {
		t.Errorf("56 = %+v", r)
	}
	if second := m.All()[1]; second.ExpressRoute {
		t.Errorf("59 must be ExpressRoute no: %+v", second)
	}
	if got := string(m.IDs([]byte("ids="))); got != "ids=56,59" {
		t.Errorf("IDs = %q", got)
	}
	p := s.Match("www.msftconnecttest.com", 80).Rule
	if p.Source != SourceNCSI || p.ServiceArea != "NCSI" || p.Probe == nil ||
		*p.Probe != (Probe{Path: "/connecttest.txt", Content: "Microsoft Connect Test"}) {
		t.Errorf("NCSI rule = %+v", p)
	}
	p = s.Match("www.msftncsi.com", 80).Rule
	if *p.Probe != (Probe{Path: "/ncsi.txt", Content: "Microsoft NCSI"}) {
		t.Errorf("legacy NCSI probe = %+v", p.Probe)
	}
	// Set 11 (UDP only, no URLs) is listed but can never match.
	var found bool
	for _, r := range s.Rules() {
		if r.ID == "11" {
			found = len(r.URLs) == 0 && len(r.TCPPorts) == 0 && len(r.UDPPorts) == 4
		}
	}
	if !found {
		t.Error("set 11 missing from Rules or wrongly parsed")
	}
	var empty Match
	if empty.Rule != nil || len(empty.All()) != 0 || string(empty.IDs(nil)) != "" {
		t.Error("zero Match is not empty")
	}
	var nilSet *Set
	if m := nilSet.Match("login.microsoftonline.com", 443); m.Rule != nil || nilSet.Rules() != nil || nilSet.Version() != "" {
		t.Error("nil Set must match nothing")
	}
}

func TestRulesOrder(t *testing.T) {
	s, err := Compile(mustCatalogue(t), []Spec{{ID: "corp", URLs: []string{"a.example"}}})
	if err != nil {
		t.Fatal(err)
	}
	rs := s.Rules()
	if len(rs) != 63+4+1 || rs[0].ID != "1" || rs[62].ID != "184" || rs[63].ID != "ncsi-connecttest-v4" || rs[67].ID != "corp" {
		t.Errorf("rules order: first %s, 63rd %s, 64th %s, last %s", rs[0].ID, rs[62].ID, rs[63].ID, rs[len(rs)-1].ID)
	}
}

func mustCatalogue(t testing.TB) *Catalogue {
	t.Helper()
	c, err := EmbeddedCatalogue()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPrecedence pins every step of the order documented on Set.
func TestPrecedence(t *testing.T) {
	user := []Spec{
		{ID: "corp-wide", URLs: []string{"*.microsoftonline.com"}},
		{ID: "corp-exact", URLs: []string{"exact.example.com"}},
		{ID: "corp-long", URLs: []string{"*.deep.example.com"}},
		{ID: "corp-short", URLs: []string{"*.example.com"}},
		{ID: "corp-tie-b", URLs: []string{"*.tie.example"}},
		{ID: "corp-tie-a", URLs: []string{"*.tie.example"}},
		{ID: "corp-glued", URLs: []string{"*p.deep.example.com"}},
		{ID: "corp-two", URLs: []string{"*.example.com", "two.example.com"}},
		{ID: "corp-probe", URLs: []string{"www.msftconnecttest.com"}, Probe: true, ProbePath: "/p", ProbeContent: "ok"},
	}
	s, err := Compile(mustCatalogue(t), user)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		host string
		want []string
	}{
		{"user wildcard before catalogue exact", "login.microsoftonline.com", []string{"corp-wide", "56", "59"}},
		{"exact before wildcard", "exact.example.com", []string{"corp-exact", "corp-short", "corp-two"}},
		{"longer literal before shorter", "x.deep.example.com", []string{"corp-long", "corp-short", "corp-two"}},
		// "*.deep.example.com" has 17 literal characters, "*p.deep.example.com" 18.
		{"glued with more literal characters", "xp.deep.example.com", []string{"corp-glued", "corp-long", "corp-short", "corp-two"}},
		{"tie goes to the rule given first", "a.tie.example", []string{"corp-tie-b", "corp-tie-a"}},
		{"a rule counts once, with its best pattern", "two.example.com", []string{"corp-two", "corp-short"}},
		{"user before ncsi", "www.msftconnecttest.com", []string{"corp-probe", "ncsi-connecttest-v4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := s.Match(tt.host, 80)
			if got := ids(m); !slices.Equal(got, tt.want) {
				t.Errorf("Match(%q) = %v, want %v", tt.host, got, tt.want)
			}
		})
	}
	if m := s.Match("two.example.com", 0); m.Patterns()[0] != "two.example.com" || m.Pattern != "two.example.com" {
		t.Errorf("best pattern of corp-two = %q", m.Patterns()[0])
	}
}

func TestMatchTruncated(t *testing.T) {
	var user []Spec
	for i := range MaxMatches + 2 {
		user = append(user, Spec{ID: "filler" + string(rune('a'+i)), URLs: []string{"*.example.com"}})
	}
	// "late" loses the tie on its first pattern and is dropped, then comes
	// back through its more specific second pattern, which the matcher
	// meets later in the same index bucket.
	user = append(user, Spec{ID: "late", URLs: []string{"*.example.com", "*b.example.com"}})
	s, err := Compile(nil, user)
	if err != nil {
		t.Fatal(err)
	}
	m := s.Match("ab.example.com", 443)
	if !m.Truncated() || len(m.All()) != MaxMatches {
		t.Fatalf("truncated %t, %d rules", m.Truncated(), len(m.All()))
	}
	want := []string{"late", "fillera", "fillerb", "fillerc", "fillerd", "fillere", "fillerf", "fillerg"}
	if got := ids(m); !slices.Equal(got, want) {
		t.Errorf("All = %v, want %v", got, want)
	}
	if m.Pattern != "*b.example.com" {
		t.Errorf("winning pattern %q", m.Pattern)
	}
	if miss := s.Match("a.other.example", 443); miss.Truncated() {
		t.Error("a miss is not truncated")
	}
}

func TestPatterns(t *testing.T) {
	tests := []struct {
		pattern string
		match   []string
		miss    []string
	}{
		{"host.example", []string{"host.example", "HOST.example."}, []string{"a.host.example", "example", "host.example.com"}},
		{"*.example.com", []string{"a.example.com", "a.b.c.example.com"}, []string{"example.com", "aexample.com", "example.com.au"}},
		{"*cdn.example.net", []string{"xcdn.example.net", "a.cdn.example.net", "a.bcdn.example.net"}, []string{"cdn.example.net", "cdn.example.net.x", "xcdn.example.nett"}},
		{"*-files.example.com", []string{"contoso-files.example.com"}, []string{"-files.example.com", "contoso.example.com"}},
		{"autodiscover.*.example.com", []string{"autodiscover.contoso.example.com"}, []string{"autodiscover.example.com", "autodiscover.a.b.example.com", "x.autodiscover.c.example.com", "autodiscoverx.c.example.com"}},
		{"a.b.*.example.com", []string{"a.b.c.example.com"}, []string{"b.c.example.com", "x.a.b.c.example.com", "a.b.example.com"}},
		{"*.COM.", []string{"x.com"}, []string{"com"}},
	}
	for _, tt := range tests {
		s, err := Compile(nil, []Spec{{ID: "p", URLs: []string{tt.pattern}}})
		if err != nil {
			t.Fatalf("%q: %v", tt.pattern, err)
		}
		for _, h := range tt.match {
			if m := s.Match(h, 0); m.Rule == nil || m.Rule.ID != "p" {
				t.Errorf("%q does not match %q", tt.pattern, h)
			}
		}
		for _, h := range tt.miss {
			if m := s.Match(h, 0); m.Rule != nil && m.Rule.ID == "p" {
				t.Errorf("%q matches %q", tt.pattern, h)
			}
		}
	}
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		msg  string
	}{
		{"no id", Spec{URLs: []string{"a.example"}},
			"rules: user rule #1: id: invalid rule: missing"},
		{"numeric id", Spec{ID: "56", URLs: []string{"a.example"}},
			`rules: user rule #1: id: invalid rule: "56" is all digits, which are reserved for catalogue ids`},
		{"ncsi id", Spec{ID: "ncsi-mine", URLs: []string{"a.example"}},
			`rules: user rule #1: id: invalid rule: "ncsi-mine" starts with "ncsi-", which is reserved for the built-in probes`},
		{"comma id", Spec{ID: "a,b", URLs: []string{"a.example"}},
			`rules: user rule #1: id: invalid rule: "a,b" contains a comma or white space`},
		{"no urls", Spec{ID: "x"},
			"rules: user rule x: urls: invalid rule: at least one host pattern is needed"},
		{"scheme", Spec{ID: "x", URLs: []string{"https://a.example"}},
			`rules: user rule x: urls[0]: invalid rule: invalid host pattern "https://a.example": only letters, digits, '-', '_', '.' and one '*' are allowed (no scheme, port or path)`},
		{"port in pattern", Spec{ID: "x", URLs: []string{"a.example:443"}},
			`rules: user rule x: urls[0]: invalid rule: invalid host pattern "a.example:443": only letters, digits, '-', '_', '.' and one '*' are allowed (no scheme, port or path)`},
		{"two stars", Spec{ID: "x", URLs: []string{"*.*.example"}},
			`rules: user rule x: urls[0]: invalid rule: invalid host pattern "*.*.example": more than one '*'`},
		{"star alone", Spec{ID: "x", URLs: []string{"*"}},
			`rules: user rule x: urls[0]: invalid rule: invalid host pattern "*": a glued wildcard needs a domain after it, as in *cdn.example.com`},
		{"star last", Spec{ID: "x", URLs: []string{"example.*"}},
			`rules: user rule x: urls[0]: invalid rule: invalid host pattern "example.*": '*' must be a whole leading label (*.x), lead the first label (*x.y) or be one whole inner label (a.*.b)`},
		{"star inside label", Spec{ID: "x", URLs: []string{"a*b.example"}},
			`rules: user rule x: urls[0]: invalid rule: invalid host pattern "a*b.example": '*' must be a whole leading label (*.x), lead the first label (*x.y) or be one whole inner label (a.*.b)`},
		{"empty label", Spec{ID: "x", URLs: []string{"a..example"}},
			`rules: user rule x: urls[0]: invalid rule: invalid host pattern "a..example": empty label`},
		{"empty pattern", Spec{ID: "x", URLs: []string{""}},
			`rules: user rule x: urls[0]: invalid rule: invalid host pattern "": empty`},
		{"bad ports", Spec{ID: "x", URLs: []string{"a.example"}, TCPPorts: "https"},
			`rules: user rule x: tcp_ports: invalid rule: invalid port list "https": "https" is not a port (1-65535)`},
		{"bad category", Spec{ID: "x", URLs: []string{"a.example"}, Category: "optimize"},
			`rules: user rule x: category: invalid rule: "optimize" is not one of Optimize, Allow, Default`},
		{"probe without path", Spec{ID: "x", URLs: []string{"a.example"}, Probe: true, ProbeContent: "ok"},
			`rules: user rule x: probe_path: invalid rule: "" must start with '/'`},
		{"probe without content", Spec{ID: "x", URLs: []string{"a.example"}, Probe: true, ProbePath: "/p"},
			"rules: user rule x: probe_content: invalid rule: the text the probe answer must contain is required"},
		{"probe fields without probe", Spec{ID: "x", URLs: []string{"a.example"}, ProbePath: "/p"},
			"rules: user rule x: probe: invalid rule: probe_path and probe_content need probe: true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(nil, []Spec{tt.spec})
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, ErrSpec) {
				t.Errorf("%v is not ErrSpec", err)
			}
			if err.Error() != tt.msg {
				t.Errorf("message\n got: %s\nwant: %s", err, tt.msg)
			}
		})
	}
	_, err := Compile(nil, []Spec{{ID: "x", URLs: []string{"a.example"}}, {ID: "x", URLs: []string{"b.example"}}})
	if err == nil || err.Error() != `rules: user rule #2: id: invalid rule: "x" is used twice` {
		t.Errorf("duplicate id: %v", err)
	}
}

func TestNCSIProbesCompile(t *testing.T) {
	specs := NCSIProbes()
	if len(specs) != 4 {
		t.Fatalf("%d NCSI probes", len(specs))
	}
	for _, sp := range specs {
		if _, err := specRule(sp, SourceNCSI); err != nil {
			t.Error(err)
		}
	}
	// Callers get their own copy.
	specs[0].URLs[0] = "changed.example"
	if NCSIProbes()[0].URLs[0] != "www.msftconnecttest.com" {
		t.Error("NCSIProbes shares its slices")
	}
}

func TestVersion(t *testing.T) {
	cat := mustCatalogue(t)
	s := mustEmbeddedSet(t)
	if s.Version() != "2026052900" {
		t.Errorf("Version = %q", s.Version())
	}
	user := []Spec{{ID: "corp", URLs: []string{"a.example"}}}
	a, _ := Compile(cat, user)
	user[0].TCPPorts = "443"
	b, _ := Compile(cat, user)
	if !strings.HasPrefix(a.Version(), "2026052900+user.") || a.Version() == b.Version() {
		t.Errorf("versions %q and %q", a.Version(), b.Version())
	}
	if n, _ := Compile(nil, nil); n.Version() != "none" {
		t.Errorf("no catalogue: %q", n.Version())
	}
}

func TestMatchAllocs(t *testing.T) {
	s := mustEmbeddedSet(t)
	hosts := []string{
		"login.microsoftonline.com", "LOGIN.MICROSOFTONLINE.COM.", "ocws.officeapps.live.com",
		"autodiscover.contoso.onmicrosoft.com", "xyzcdn.onenote.net", "example.org", "a.b.c.d.e.f.example.org",
	}
	buf := make([]byte, 0, 64)
	for _, h := range hosts {
		allocs := testing.AllocsPerRun(100, func() {
			m := s.Match(h, 443)
			buf = m.IDs(buf[:0])
			c, _ := m.Cause(ConnectTimeout, true)
			_ = c
		})
		if allocs != 0 {
			t.Errorf("Match(%q) allocates %.0f times per call", h, allocs)
		}
	}
}

// benchHosts mixes exact hits, wildcard hits at several depths, misses and
// hosts that need normalising, roughly like a sign-in's traffic.
var benchHosts = []string{
	"login.microsoftonline.com",
	"ocws.officeapps.live.com",
	"config.office.com",
	"aadcdn.msftauth.net",
	"www.msftconnecttest.com",
	"contoso.sharepoint.com",
	"autodiscover.contoso.onmicrosoft.com",
	"LOGIN.MICROSOFTONLINE.COM.",
	"www.example.org",
	"a.very.deep.name.below.some.unrelated.example.net",
}

func BenchmarkMatch(b *testing.B) {
	s := mustEmbeddedSet(b)
	b.ReportAllocs()
	var hits int
	i := 0
	for b.Loop() {
		m := s.Match(benchHosts[i%len(benchHosts)], 443)
		if m.Rule != nil {
			hits++
		}
		i++
	}
	b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "lookups/s")
	if hits == 0 {
		b.Fatal("no hits")
	}
}

// refMatch is an independent, label-by-label reading of the pattern
// semantics, used as the fuzz oracle. It expects normalised input.
func refMatch(pat, host string) bool {
	pat = asciiLower(strings.TrimSuffix(pat, "."))
	if !strings.Contains(pat, "*") {
		return pat == host
	}
	pl, hl := strings.Split(pat, "."), strings.Split(host, ".")
	switch {
	case pl[0] == "*":
		rest := pl[1:]
		return len(hl) > len(rest) && slices.Equal(hl[len(hl)-len(rest):], rest)
	case strings.HasPrefix(pl[0], "*"):
		lit := pat[1:]
		return len(host) > len(lit) && strings.HasSuffix(host, lit)
	default:
		i := slices.Index(pl, "*")
		return len(hl) == len(pl) && hl[i] != "" && slices.Equal(hl[:i], pl[:i]) && slices.Equal(hl[i+1:], pl[i+1:])
	}
}

// asciiLower folds byte by byte: hosts are bytes here, and strings.Map
// would replace invalid UTF-8, changing the length.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
	return string(b)
}

func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - ('a' - 'A')
		}
	}
	return string(b)
}

// refAll computes the expected matches the slow way.
func refAll(s *Set, host string, port int) []string {
	host = asciiLower(strings.TrimSuffix(host, "."))
	if host == "" || len(host) > maxHostLen || slices.Contains(strings.Split(host, "."), "") {
		return nil
	}
	type cand struct {
		r   *Rule
		key uint64
	}
	var cands []cand
	for _, r := range s.Rules() {
		if len(r.TCPPorts) == 0 && len(r.UDPPorts) > 0 {
			continue
		}
		if port != 0 && len(r.TCPPorts) > 0 && (port < 0 || port > 0xFFFF || !slices.Contains(r.TCPPorts, uint16(port))) {
			continue
		}
		best, ok := uint64(0), false
		for _, u := range r.URLs {
			if !refMatch(u, host) {
				continue
			}
			p, _ := parsePattern(u)
			best, ok = max(best, precedence(r, p)), true
		}
		if ok {
			cands = append(cands, cand{r, best})
		}
	}
	slices.SortFunc(cands, func(a, b cand) int { return cmp.Compare(b.key, a.key) })
	var out []string
	for _, c := range cands {
		out = append(out, c.r.ID)
	}
	return out
}

func FuzzMatch(f *testing.F) {
	cat, err := EmbeddedCatalogue()
	if err != nil {
		f.Fatal(err)
	}
	// Extra user rules so that every pattern shape and overlapping
	// sources are exercised, not just the catalogue's.
	s, err := Compile(cat, []Spec{
		{ID: "u-below", URLs: []string{"*.b.example"}},
		{ID: "u-glued", URLs: []string{"*x.b.example", "*cdn.onenote.net"}},
		{ID: "u-middle", URLs: []string{"a.*.b.example", "autodiscover.*.onmicrosoft.com"}, TCPPorts: "443"},
		{ID: "u-exact", URLs: []string{"login.microsoftonline.com", "b.example"}, TCPPorts: "80,443,8000-8002"},
	})
	if err != nil {
		f.Fatal(err)
	}
	for _, h := range benchHosts {
		f.Add(h, 443)
	}
	f.Add("crl.microsoft.com", 80)
	f.Add("xyzcdn.onenote.net", 0)
	f.Add("a.q.b.example", 443)
	f.Add("ax.b.example.", 8001)
	f.Add("x.mail.protection.outlook.com", 25)
	f.Add("..", -1)
	f.Fuzz(func(t *testing.T, host string, port int) {
		m := s.Match(host, port)
		all := m.All()
		if (m.Rule == nil) != (len(all) == 0) {
			t.Fatalf("Rule %v but %d matches", m.Rule, len(all))
		}
		if m.Rule != nil && (all[0] != m.Rule || m.Patterns()[0] != m.Pattern) {
			t.Fatal("winner is not first in All")
		}
		seen := map[*Rule]bool{}
		for i, r := range all {
			if seen[r] {
				t.Fatalf("%s listed twice", r.ID)
			}
			seen[r] = true
			if !slices.Contains(r.URLs, m.Patterns()[i]) {
				t.Fatalf("pattern %q is not one of %s's", m.Patterns()[i], r.ID)
			}
		}
		got := ids(m)
		if up := ids(s.Match(asciiUpper(host), port)); !slices.Equal(up, got) {
			t.Fatalf("upper case changes the result: %v vs %v", up, got)
		}
		if !strings.HasSuffix(host, ".") {
			if dot := ids(s.Match(host+".", port)); !slices.Equal(dot, got) {
				t.Fatalf("a trailing dot changes the result: %v vs %v", dot, got)
			}
		}
		want := refAll(s, host, port)
		if len(want) > MaxMatches {
			want = want[:MaxMatches]
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Match(%q, %d) = %v, reference %v", host, port, got, want)
		}
	})
}
