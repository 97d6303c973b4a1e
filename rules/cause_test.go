package rules

import (
	"slices"
	"strings"
	"testing"
)

func TestEnumRoundTrips(t *testing.T) {
	for s := range numSources {
		if got, err := ParseSource(s.String()); err != nil || got != s {
			t.Errorf("ParseSource(%q) = %v, %v", s, got, err)
		}
	}
	for c := range numCauses {
		if got, err := ParseCauseID(c.String()); err != nil || got != c {
			t.Errorf("ParseCauseID(%q) = %v, %v", c, got, err)
		}
	}
	for l := range numLanguages {
		if got, err := ParseLanguage(l.String()); err != nil || got != l {
			t.Errorf("ParseLanguage(%q) = %v, %v", l, got, err)
		}
	}
	for _, k := range Kinds() {
		if got, err := ParseKind(k.String()); err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v, %v", k, got, err)
		}
	}
	for _, o := range Outcomes() {
		if got, err := ParseOutcome(o.String()); err != nil || got != o {
			t.Errorf("ParseOutcome(%q) = %v, %v", o, got, err)
		}
	}
	// The wire names are a contract with log queries.
	names := []struct{ got, want string }{
		{SourceCatalogue.String(), "catalogue"}, {SourceNCSI.String(), "ncsi"}, {SourceUser.String(), "user"},
		{CauseNone.String(), ""},
		{CauseRequiredEndpointUnreachable.String(), "required-endpoint-unreachable"},
		{CauseExpressRoutePath.String(), "expressroute-path"},
		{CauseDeviceProxySettings.String(), "device-proxy-settings"},
		{CauseNCSINoInternet.String(), "ncsi-no-internet"},
		{LangEN.String(), "en"}, {LangJA.String(), "ja"},
		{numSources.String(), "source(3)"}, {numCauses.String(), "cause(7)"},
		{numLanguages.String(), "language(2)"}, {numKinds.String(), "kind(8)"},
	}
	for _, n := range names {
		if n.got != n.want {
			t.Errorf("String() = %q, want %q", n.got, n.want)
		}
	}
	for _, bad := range []string{"EN", "fr", "Catalogue", " ncsi", "required_endpoint_unreachable"} {
		if _, err := ParseLanguage(bad); err == nil {
			t.Errorf("ParseLanguage(%q) accepted", bad)
		}
		if _, err := ParseSource(bad); err == nil {
			t.Errorf("ParseSource(%q) accepted", bad)
		}
		if _, err := ParseCauseID(bad); err == nil {
			t.Errorf("ParseCauseID(%q) accepted", bad)
		}
		if _, err := ParseKind(bad); err == nil {
			t.Errorf("ParseKind(%q) accepted", bad)
		}
	}
}

func TestCausesData(t *testing.T) {
	cs := Causes()
	if len(cs) != 6 {
		t.Fatalf("%d causes", len(cs))
	}
	const learn = "https://learn.microsoft.com/microsoft-365/enterprise/urls-and-ip-address-ranges"
	const ncsiGuide = "https://jpwinsup.github.io/blog/2021/09/30/Networking/NCSI/network-connectivity-status-indicator-overview-and-troubleshooting-guide/"
	want := []struct {
		id        CauseID
		section   string
		reference string
	}{
		{CauseRequiredEndpointUnreachable, "1", learn},
		{CauseExpressRoutePath, "1", learn},
		{CauseDeviceProxySettings, "1", learn},
		{CauseNCSINoInternet, "2", ncsiGuide},
		{CauseProxyCredentialsRejected, "1", learn},
		{CauseTLSInspection, "1", "https://learn.microsoft.com/microsoft-365/enterprise/microsoft-365-network-connectivity-principles"},
	}
	for i, w := range want {
		c := cs[i]
		if c.ID != w.id || c.Section != w.section || c.Reference != w.reference || CauseByID(w.id) != c {
			t.Errorf("cause %d = %+v", i, c)
		}
		for l := range numLanguages {
			if c.Title(l) == "" || c.Remedy(l) == "" {
				t.Errorf("%s: no text in %s", c.ID, l)
			}
		}
		if c.Title(LangJA) == c.Title(LangEN) {
			t.Errorf("%s: Japanese title is the English one", c.ID)
		}
		if c.Title(Language(9)) != c.Title(LangEN) || c.Remedy(Language(9)) != c.Remedy(LangEN) {
			t.Errorf("%s: unknown language does not fall back to English", c.ID)
		}
	}
	if CauseByID(CauseNone) != nil || CauseByID(numCauses) != nil {
		t.Error("CauseByID of none/unknown must be nil")
	}
	// The §2 remedy must carry the article's checks (issue 3).
	ncsi := CauseByID(CauseNCSINoInternet)
	for l, words := range map[Language][]string{
		LangEN: {"wired LAN without VPN", "2020", "current cumulative update", "proxy authentication", "WinHTTP proxy"},
		LangJA: {"VPN を使わない有線 LAN", "2020 年", "最新の累積更新プログラム", "プロキシ認証", "WinHTTP プロキシ"},
	} {
		for _, w := range words {
			if !strings.Contains(ncsi.Remedy(l), w) {
				t.Errorf("ncsi-no-internet remedy (%s) lacks %q", l, w)
			}
		}
	}
}

func TestLoadCausesErrors(t *testing.T) {
	full := string(causesJSON)
	tests := []struct{ name, json, msg string }{
		{"unknown field", `{"causes": [], "extra": 1}`, `rules: causes.json: json: unknown field "extra"`},
		{"missing cause", `{"causes": []}`, `rules: causes.json: cause "required-endpoint-unreachable" missing`},
		{"unknown id", `{"causes": [{"id": "dns"}]}`, `rules: causes.json: unknown cause id "dns"`},
		{"bad section", strings.Replace(full, `"section": "2"`, `"section": "3"`, 1), `rules: causes.json: cause "ncsi-no-internet": section "3" is not 1 or 2`},
		{"no japanese", strings.Replace(full, `"ja": "NCSI のプローブ`, `"de": "NCSI のプローブ`, 1), `rules: causes.json: cause "ncsi-no-internet": title or remedy missing in "ja"`},
	}
	for _, tt := range tests {
		if _, err := loadCauses([]byte(tt.json)); err == nil || err.Error() != tt.msg {
			t.Errorf("%s: error %v, want %s", tt.name, err, tt.msg)
		}
	}
}

// TestOutcomeGroups checks that the table's outcome groups partition the
// outcomes and that the failure groups are exactly the failed class, so a
// new Outcome cannot slip past the cause table.
func TestOutcomeGroups(t *testing.T) {
	count := map[Outcome]int{}
	for _, g := range [][]Outcome{notPathFailures, pathFailures, parentFailures, probeFailures} {
		for _, o := range g {
			count[o]++
		}
	}
	for _, o := range Outcomes() {
		if count[o] != 1 {
			t.Errorf("outcome %s is in %d groups", o, count[o])
		}
		inFailureGroup := slices.Contains(pathFailures, o) || slices.Contains(parentFailures, o) || slices.Contains(probeFailures, o)
		if o.Failed() != inFailureGroup {
			t.Errorf("outcome %s: Failed %t but in a failure group %t", o, o.Failed(), inFailureGroup)
		}
	}
	if !slices.Equal(allKinds, Kinds()) {
		t.Errorf("allKinds %v, Kinds %v", allKinds, Kinds())
	}
	if got := append(slices.Clone(probeKinds), nonProbeKinds...); len(got) != len(allKinds) {
		t.Errorf("probe and non-probe kinds do not cover the kinds once: %v", got)
	}
}

// expected restates the mapping of issue 3 as plain code. The cause table
// is data; this is an independent reading of the same rules, and the walk
// below insists that both agree on every cell.
func expected(k Kind, o Outcome, erConfig, ruleER bool) CauseID {
	if !o.Failed() {
		return CauseNone // ok, denied, bad_request, client_aborted, shutdown
	}
	probe := k == KindNCSIProbe || k == KindUserProbe
	if probe {
		return CauseNCSINoInternet // NCSI says "no internet" whatever broke, including a 407
	}
	if o == ParentUnreachable || o == ParentAuthRequired {
		return CauseDeviceProxySettings // the route through the parent is broken, whatever the host
	}
	if o == ProbeContentMismatch || o == ProbeRedirect {
		return CauseNone // no expectation on a non-probe rule
	}
	if k == KindCommonRequired || k == KindUserRequired {
		if erConfig && !ruleER {
			return CauseExpressRoutePath
		}
		return CauseRequiredEndpointUnreachable
	}
	return CauseNone // other areas, optional sets, unknown hosts
}

// representative rules of each kind, with both ExpressRoute flags where the
// kind can carry them, taken from the real data where it has one.
func representatives(t *testing.T) map[Kind][]*Rule {
	s, err := Compile(mustCatalogue(t), []Spec{
		{ID: "user-probe", URLs: []string{"probe.corp.example"}, Probe: true, ProbePath: "/ok.txt", ProbeContent: "ok"},
		{ID: "user-req-er", URLs: []string{"sts.corp.example"}, Required: true, ExpressRoute: true},
		{ID: "user-req", URLs: []string{"adfs.corp.example"}, Required: true},
		{ID: "user-opt", URLs: []string{"intranet.corp.example"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]*Rule{}
	for _, r := range s.Rules() {
		byID[r.ID] = r
	}
	reps := map[Kind][]*Rule{
		KindNone:           {nil},
		KindCommonRequired: {byID["56"], byID["59"]}, // ER yes, ER no
		KindOtherRequired:  {byID["1"], byID["8"]},   // Exchange, ER yes / no
		KindOptional:       {byID["97"], byID["2"]},  // ER no / yes
		KindNCSIProbe:      {byID["ncsi-connecttest-v4"], byID["ncsi-msftncsi-v6"]},
		KindUserProbe:      {byID["user-probe"]},
		KindUserRequired:   {byID["user-req-er"], byID["user-req"]},
		KindUserOptional:   {byID["user-opt"]},
	}
	for k, rs := range reps {
		for _, r := range rs {
			if KindOf(r) != k {
				t.Fatalf("representative %v of %s is a %s", r, k, KindOf(r))
			}
		}
	}
	return reps
}

func TestCauseTableWalk(t *testing.T) {
	reps := representatives(t)
	for _, k := range Kinds() {
		if len(reps[k]) == 0 {
			t.Fatalf("no representative for kind %s", k)
		}
		for _, r := range reps[k] {
			ruleER := r != nil && r.ExpressRoute
			for _, o := range Outcomes() {
				for _, erConfig := range []bool{false, true} {
					want := expected(k, o, erConfig, ruleER)
					got := CauseFor(r, o, erConfig)
					var gotID CauseID
					if got != nil {
						gotID = got.ID
					}
					if gotID != want {
						t.Errorf("kind %s (ER %t), outcome %s, express_route %t: cause %q, want %q", k, ruleER, o, erConfig, gotID, want)
					}
				}
			}
		}
	}
	// The raw table too, including cells no real rule reaches (a rule-ER
	// flag on KindNone).
	for k := range numKinds {
		for o := range numOutcomes {
			for cfg := range 2 {
				for rule := range 2 {
					if got, want := causeCells[k][o][cfg][rule], expected(k, o, cfg == 1, rule == 1); got != want && !(k == KindNone && rule == 1) {
						t.Errorf("cell %s/%s/%d/%d = %q, want %q", k, o, cfg, rule, got, want)
					}
				}
			}
		}
	}
}

// TestEveryFailureHasAnAnswer: on the kinds the article is about, no failure
// outcome is left without a cause.
func TestEveryFailureHasAnAnswer(t *testing.T) {
	reps := representatives(t)
	for _, k := range []Kind{KindCommonRequired, KindUserRequired, KindNCSIProbe, KindUserProbe} {
		for _, r := range reps[k] {
			for _, o := range Outcomes() {
				probeOutcome := o == ProbeContentMismatch || o == ProbeRedirect
				if !o.Failed() || probeOutcome && r.Probe == nil {
					continue // only probe rules can fail a probe expectation
				}
				for _, er := range []bool{false, true} {
					if CauseFor(r, o, er) == nil {
						t.Errorf("kind %s, outcome %s, express_route %t: no cause", k, o, er)
					}
				}
			}
		}
	}
	if CauseFor(nil, Outcome(200), false) != nil {
		t.Error("unknown outcome must give no cause")
	}
}

func TestCauseTableBuilder(t *testing.T) {
	if _, err := buildCauseCells(causeRows[1:]); err == nil ||
		!strings.HasPrefix(err.Error(), "rules: cause table has no row for kind none, outcome ok") {
		t.Errorf("gap not reported: %v", err)
	}
	dup := append(slices.Clone(causeRows), causeRow{[]Kind{KindOptional}, []Outcome{HTTPError}, erMisrouted, CauseRequiredEndpointUnreachable})
	if _, err := buildCauseCells(dup); err == nil ||
		err.Error() != "rules: cause table rows 4 and 11 both cover kind optional, outcome http_error" {
		t.Errorf("overlap not reported: %v", err)
	}
}

func TestMatchCause(t *testing.T) {
	s := mustEmbeddedSet(t)
	tests := []struct {
		host     string
		port     int
		outcome  Outcome
		er       bool
		cause    CauseID
		ruleID   string
		winnerID string
	}{
		{"login.microsoftonline.com", 443, ConnectTimeout, false, CauseRequiredEndpointUnreachable, "56", "56"},
		// 56 is ExpressRoute yes, so ExpressRoute is not the suspect.
		{"login.microsoftonline.com", 443, ConnectTimeout, true, CauseRequiredEndpointUnreachable, "56", "56"},
		{"aadcdn.msftauth.net", 443, TLSFailure, true, CauseExpressRoutePath, "59", "59"},
		{"aadcdn.msftauth.net", 443, TLSFailure, false, CauseRequiredEndpointUnreachable, "59", "59"},
		// SharePoint 35 wins the match, Common 86 gives the cause.
		{"officeclient.microsoft.com", 443, DNSNXDomain, false, CauseRequiredEndpointUnreachable, "86", "35"},
		{"login.live.com", 443, ConnectRefused, false, CauseNone, "", "97"},
		{"login.live.com", 443, ParentAuthRequired, false, CauseDeviceProxySettings, "97", "97"},
		{"outlook.office365.com", 443, ConnectRefused, false, CauseRequiredEndpointUnreachable, "71", "1"},
		{"example.org", 443, ParentUnreachable, false, CauseDeviceProxySettings, "", ""},
		{"example.org", 443, ConnectRefused, false, CauseNone, "", ""},
		{"www.msftconnecttest.com", 80, ProbeContentMismatch, false, CauseNCSINoInternet, "ncsi-connecttest-v4", "ncsi-connecttest-v4"},
		{"www.msftconnecttest.com", 80, ParentAuthRequired, true, CauseNCSINoInternet, "ncsi-connecttest-v4", "ncsi-connecttest-v4"},
		{"www.msftconnecttest.com", 80, OK, false, CauseNone, "", "ncsi-connecttest-v4"},
		{"config.office.com", 443, ClientAborted, false, CauseNone, "", "147"},
	}
	for _, tt := range tests {
		m := s.Match(tt.host, tt.port)
		c, r := m.Cause(tt.outcome, tt.er)
		var gotID CauseID
		if c != nil {
			gotID = c.ID
		}
		var ruleID, winnerID string
		if r != nil {
			ruleID = r.ID
		}
		if m.Rule != nil {
			winnerID = m.Rule.ID
		}
		if gotID != tt.cause || ruleID != tt.ruleID || winnerID != tt.winnerID {
			t.Errorf("%s:%d %s er=%t: cause %q from %q (winner %q), want %q from %q (winner %q)",
				tt.host, tt.port, tt.outcome, tt.er, gotID, ruleID, winnerID, tt.cause, tt.ruleID, tt.winnerID)
		}
	}
}

// TestReportRule: a host listed by several sets is filed under the Common
// set, then the narrower port list, then the lower id; a user or NCSI
// winner stays.
func TestReportRule(t *testing.T) {
	s := mustEmbeddedSet(t)
	user, err := Compile(mustCatalogue(t), []Spec{{ID: "corp-login", URLs: []string{"login.microsoftonline.com"}, Required: true}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		set  *Set
		host string
		port int
		want string
	}{
		// SharePoint 35 wins the match; the report files it under Common 86.
		{s, "officeclient.microsoft.com", 443, "86"},
		{s, "login.microsoftonline.com", 443, "56"},
		// Exchange 1 wins the match; Common 71 gives the cause and the row.
		{s, "outlook.office365.com", 443, "71"},
		{s, "www.msftconnecttest.com", 80, "ncsi-connecttest-v4"},
		{user, "login.microsoftonline.com", 443, "corp-login"},
		{s, "example.org", 443, ""},
	}
	for _, tt := range tests {
		m := tt.set.Match(tt.host, tt.port)
		got := ""
		if r := ReportRule(m.All()); r != nil {
			got = r.ID
		}
		if got != tt.want {
			t.Errorf("%s:%d filed under %q, want %q (matched %s)", tt.host, tt.port, got, tt.want, m.IDs(nil))
		}
	}
	// Between two required Common sets: the narrower port list, then the
	// match order.
	a := &Rule{ID: "9", ServiceArea: CommonArea, Required: true, TCPPorts: []uint16{80, 443}, order: 9}
	b := &Rule{ID: "12", ServiceArea: CommonArea, Required: true, TCPPorts: []uint16{443}, order: 12}
	c := &Rule{ID: "3", ServiceArea: CommonArea, Required: true, TCPPorts: []uint16{443}, order: 3}
	if got := ReportRule([]*Rule{a, b}); got != b {
		t.Errorf("narrower port list lost: %s", got.ID)
	}
	if got := ReportRule([]*Rule{a, c, b}); got != c {
		t.Errorf("match order lost: %s", got.ID)
	}
}

// TestCauseLinks: Japanese readers get the ja-jp pages.
func TestCauseLinks(t *testing.T) {
	for _, c := range Causes() {
		if c.Link(LangEN) != c.Reference {
			t.Errorf("%s: English link %q, reference %q", c.ID, c.Link(LangEN), c.Reference)
		}
		ja := c.Link(LangJA)
		if strings.HasPrefix(ja, "https://learn.microsoft.com/") && !strings.Contains(ja, "/ja-jp/") {
			t.Errorf("%s: Japanese link %q is not the ja-jp page", c.ID, ja)
		}
		if c.Link(Language(9)) != c.Reference {
			t.Errorf("%s: unknown language does not fall back to English", c.ID)
		}
	}
}

func TestCertificateRejected(t *testing.T) {
	for _, a := range []string{"bad_certificate", "unknown_ca", "certificate_unknown", "certificate_expired", "encrypted"} {
		if !CertificateRejected(a) {
			t.Errorf("%s: not a rejected certificate", a)
		}
	}
	for _, a := range []string{"", "handshake_failure", "protocol_version", "close_notify", "internal_error"} {
		if CertificateRejected(a) {
			t.Errorf("%s: taken for a rejected certificate", a)
		}
	}
}
