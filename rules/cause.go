package rules

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"fmt"
)

// The article the causes come from: Microsoft Japan's Office support blog
// post about the "no network connection" message at Office sign-in
// (2019-12-19, updated 2020-10-28 and 2023-02-22). Cause.Section numbers
// refer to its headings: 1 = configuration of the URLs Office must reach,
// 2 = Windows' internet-access verdict (NCSI).
const ArticleTitle = "Office のサインインでネットワーク接続がない旨のメッセージが表示される事象について"

// CauseID names a cause from the article. String is the text the log
// carries; the zero value CauseNone means "no article cause applies".
type CauseID uint8

const (
	CauseNone                        CauseID = iota
	CauseRequiredEndpointUnreachable         // §1, many PCs: a required Common endpoint is blocked
	CauseExpressRoutePath                    // §1, ExpressRoute users: an ER "No" set failed
	CauseDeviceProxySettings                 // §1, specific PCs: the proxy settings are wrong
	CauseNCSINoInternet                      // §2: the NCSI probe failed
	// §1, specific PCs: the parent proxy refused the credentials the client
	// sent. Not a wrong proxy address: the account or the password is. The
	// proxy chooses it from how the exchange ended, not from the table.
	CauseProxyCredentialsRejected
	// §1: the client refused the certificate it was shown (a device on the
	// path inspects TLS). Chosen from how the handshake ended
	// (CertificateRejected), not from the table, before the ExpressRoute
	// variant: the host was reached, so no route is to blame.
	CauseTLSInspection

	numCauses
)

var causeNames = [numCauses]string{
	CauseNone:                        "",
	CauseRequiredEndpointUnreachable: "required-endpoint-unreachable",
	CauseExpressRoutePath:            "expressroute-path",
	CauseDeviceProxySettings:         "device-proxy-settings",
	CauseNCSINoInternet:              "ncsi-no-internet",
	CauseProxyCredentialsRejected:    "proxy-credentials-rejected",
	CauseTLSInspection:               "tls-inspection",
}

// CertificateRejected reports whether a TLS alert the client sent during
// the handshake means it refused the server's certificate: the alerts of
// RFC 8446 §6.2 and RFC 5246 §7.2.2 about certificates, and "encrypted",
// the tap's name for the alert-sized record a TLS 1.3 client sends right
// after the server's first flight (the alert itself is encrypted there).
// An exchange that failed so on a required endpoint has the cause
// CauseTLSInspection rather than the table's.
func CertificateRejected(alert string) bool {
	switch alert {
	case "bad_certificate", "unsupported_certificate", "certificate_revoked", "certificate_expired",
		"certificate_unknown", "unknown_ca", "encrypted":
		return true
	}
	return false
}

func (c CauseID) String() string {
	if c < numCauses {
		return causeNames[c]
	}
	return fmt.Sprintf("cause(%d)", uint8(c))
}

// ParseCauseID is the inverse of CauseID.String; "" gives CauseNone.
func ParseCauseID(s string) (CauseID, error) {
	for i, name := range causeNames {
		if name == s {
			return CauseID(i), nil
		}
	}
	return 0, fmt.Errorf("rules: unknown cause %q", s)
}

// Language selects the language of cause titles and remedies. The article's
// readers are Japanese support engineers, hence Japanese next to English.
type Language uint8

const (
	LangEN Language = iota
	LangJA

	numLanguages
)

var languageNames = [numLanguages]string{LangEN: "en", LangJA: "ja"}

func (l Language) String() string {
	if l < numLanguages {
		return languageNames[l]
	}
	return fmt.Sprintf("language(%d)", uint8(l))
}

// ParseLanguage is the inverse of Language.String.
func ParseLanguage(s string) (Language, error) {
	for i, name := range languageNames {
		if name == s {
			return Language(i), nil
		}
	}
	return 0, fmt.Errorf("rules: unknown language %q (want en or ja)", s)
}

// Cause is one entry of the article's list. Causes are shared: treat them
// as read-only.
type Cause struct {
	ID CauseID
	// Section is the article's section number, "1" or "2".
	Section string
	// Reference is the page to read for the full procedure, in English;
	// Link gives it in the reader's language.
	Reference string

	titles   [numLanguages]string
	remedies [numLanguages]string
	links    [numLanguages]string
}

// Link is the page to read for the full procedure in language l: the ja-jp
// edition of Microsoft's pages for Japanese readers. An unknown language
// gives English.
func (c *Cause) Link(l Language) string {
	if l >= numLanguages {
		l = LangEN
	}
	return c.links[l]
}

// Title is a one-line statement of the cause. An unknown language gives English.
func (c *Cause) Title(l Language) string {
	if l >= numLanguages {
		l = LangEN
	}
	return c.titles[l]
}

// Remedy says what to check and change. An unknown language gives English.
func (c *Cause) Remedy(l Language) string {
	if l >= numLanguages {
		l = LangEN
	}
	return c.remedies[l]
}

// The wording lives in data so that it can be reviewed and translated
// without touching code.
//
//go:embed data/causes.json
var causesJSON []byte

// causeByID is indexed by CauseID; the CauseNone slot stays nil.
var causeByID = mustLoadCauses(causesJSON)

func mustLoadCauses(data []byte) [numCauses]*Cause {
	c, err := loadCauses(data)
	if err != nil {
		// The file is embedded at build time and checked by the tests, so
		// this can only be a broken build.
		panic(err)
	}
	return c
}

func loadCauses(data []byte) ([numCauses]*Cause, error) {
	var out [numCauses]*Cause
	var doc struct {
		Causes []struct {
			ID        string            `json:"id"`
			Section   string            `json:"section"`
			Reference map[string]string `json:"reference"`
			Title     map[string]string `json:"title"`
			Remedy    map[string]string `json:"remedy"`
		} `json:"causes"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return out, fmt.Errorf("rules: causes.json: %w", err)
	}
	for _, d := range doc.Causes {
		id, err := ParseCauseID(d.ID)
		if err != nil || id == CauseNone {
			return out, fmt.Errorf("rules: causes.json: unknown cause id %q", d.ID)
		}
		if out[id] != nil {
			return out, fmt.Errorf("rules: causes.json: cause %q listed twice", d.ID)
		}
		if d.Section != "1" && d.Section != "2" {
			return out, fmt.Errorf("rules: causes.json: cause %q: section %q is not 1 or 2", d.ID, d.Section)
		}
		c := &Cause{ID: id, Section: d.Section, Reference: d.Reference[LangEN.String()]}
		for l := range numLanguages {
			c.titles[l], c.remedies[l] = d.Title[l.String()], d.Remedy[l.String()]
			if c.titles[l] == "" || c.remedies[l] == "" {
				return out, fmt.Errorf("rules: causes.json: cause %q: title or remedy missing in %q", d.ID, l)
			}
			if c.links[l] = d.Reference[l.String()]; c.links[l] == "" {
				return out, fmt.Errorf("rules: causes.json: cause %q: reference missing in %q", d.ID, l)
			}
		}
		if len(d.Title) != int(numLanguages) || len(d.Remedy) != int(numLanguages) || len(d.Reference) != int(numLanguages) {
			return out, fmt.Errorf("rules: causes.json: cause %q: text in an unknown language", d.ID)
		}
		out[id] = c
	}
	for id := CauseID(1); id < numCauses; id++ {
		if out[id] == nil {
			return out, fmt.Errorf("rules: causes.json: cause %q missing", id)
		}
	}
	return out, nil
}

// Causes lists every cause in CauseID order, without CauseNone.
func Causes() []*Cause {
	return append([]*Cause(nil), causeByID[1:]...)
}

// CauseByID returns the cause with that id, or nil for CauseNone and
// unknown ids.
func CauseByID(id CauseID) *Cause {
	if id >= numCauses {
		return nil
	}
	return causeByID[id]
}

// CauseFor says which article cause explains outcome o on rule r (nil: no
// rule matched) when the network does or does not use ExpressRoute. nil
// means that, deliberately, no cause applies. It is a lookup in causeCells
// and does not allocate.
func CauseFor(r *Rule, o Outcome, expressRoute bool) *Cause {
	if o >= numOutcomes {
		return nil
	}
	ruleER := r != nil && r.ExpressRoute
	return causeByID[causeCells[KindOf(r)][o][b2i(expressRoute)][b2i(ruleER)]]
}

// Cause is CauseFor over every matching rule, best first: the first rule that
// has a cause gives it, and is returned with it. The winner alone is not
// enough, because a host can be listed by several sets of equal precedence:
// officeclient.microsoft.com is an exact entry both of SharePoint set 35,
// which wins on its lower id, and of Common set 86, which makes it a §1
// endpoint. With no rule at all, the no-rule row of the table applies and
// the returned rule is nil. Cause does not allocate.
func (m *Match) Cause(o Outcome, expressRoute bool) (*Cause, *Rule) {
	for _, r := range m.rules[:m.n] {
		if c := CauseFor(r, o, expressRoute); c != nil {
			return c, r
		}
	}
	if m.n == 0 {
		return CauseFor(nil, o, expressRoute), nil
	}
	return nil, nil
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// erColumn selects on the ExpressRoute configuration and the rule's
// ExpressRoute flag together, because only their combination matters.
type erColumn uint8

const (
	erAny          erColumn = iota // the cause does not depend on ExpressRoute
	erMisrouted                    // network.express_route is on and the rule's flag is No
	erNotMisrouted                 // every other combination
)

func (c erColumn) covers(config, rule bool) bool {
	misrouted := config && !rule
	switch c {
	case erMisrouted:
		return misrouted
	case erNotMisrouted:
		return !misrouted
	}
	return true
}

// causeRow is one line of the cause table: for these kinds and outcomes,
// under this ExpressRoute condition, this cause (CauseNone: deliberately
// none).
type causeRow struct {
	kinds    []Kind
	outcomes []Outcome
	er       erColumn
	cause    CauseID
}

// Outcome groups used by the table. A test checks that they partition the
// outcomes and that the three failure groups are exactly the failed class.
var (
	// Not a failure of the path: success, the client or the tap ending the
	// exchange, or the tap's own refusal.
	notPathFailures = []Outcome{OK, ClientAborted, BadRequest, Denied, Shutdown}
	// The destination could not be resolved, reached or talked to.
	pathFailures = []Outcome{DNSNXDomain, DNSFailure, DNSTimeout, ConnectRefused, ConnectTimeout,
		ConnectUnreachable, ConnectionReset, TLSFailure, HTTPError, ResponseTimeout}
	// The parent proxy itself failed; the destination was never tried.
	parentFailures = []Outcome{ParentAuthRequired, ParentUnreachable}
	// A probe answered, but not as NCSI expects. Only probe rules have an
	// expectation, so the proxy reports these on probe rules only.
	probeFailures = []Outcome{ProbeContentMismatch, ProbeRedirect}

	allKinds      = []Kind{KindNone, KindCommonRequired, KindOtherRequired, KindOptional, KindNCSIProbe, KindUserProbe, KindUserRequired, KindUserOptional}
	probeKinds    = []Kind{KindNCSIProbe, KindUserProbe}
	nonProbeKinds = []Kind{KindNone, KindCommonRequired, KindOtherRequired, KindOptional, KindUserRequired, KindUserOptional}
)

// causeRows is the whole mapping. Every (kind, outcome, ExpressRoute config,
// rule ExpressRoute flag) cell is covered by exactly one row; init refuses
// anything else, and the tests walk every cell.
var causeRows = []causeRow{
	// Nothing failed on the path, or the tap itself ended or refused the
	// exchange: the article explains none of these.
	{allKinds, notPathFailures, erAny, CauseNone},

	// §1, many PCs: a required Common endpoint could not be reached. User
	// rules marked required are the operator saying the host belongs to
	// sign-in (a federation server, say), so they count as the list's
	// required entries.
	{[]Kind{KindCommonRequired, KindUserRequired}, pathFailures, erNotMisrouted, CauseRequiredEndpointUnreachable},
	// §1, ExpressRoute: the network uses ExpressRoute and this set is marked
	// ER "No"; sending it over ExpressRoute is the article's explanation to
	// check first.
	{[]Kind{KindCommonRequired, KindUserRequired}, pathFailures, erMisrouted, CauseExpressRoutePath},
	// The article's §1 is about the "Microsoft 365 Common and Office Online"
	// area only; a required Exchange, SharePoint or Teams set failing does
	// not explain the sign-in message, so it is logged with its rule only.
	{[]Kind{KindOtherRequired}, pathFailures, erAny, CauseNone},
	// Not required: Office sign-in does not depend on it. Logged with its
	// rule, no cause.
	{[]Kind{KindOptional, KindUserOptional}, pathFailures, erAny, CauseNone},
	// No rule: the host is not one the article is about.
	{[]Kind{KindNone}, pathFailures, erAny, CauseNone},

	// §1, specific PCs: the parent proxy was unreachable or demanded
	// credentials. That is a fault of the proxy route, not of the
	// destination, so it applies whatever non-probe rule matched (or none):
	// every exchange through this route fails the same way.
	{nonProbeKinds, parentFailures, erAny, CauseDeviceProxySettings},

	// §2: any failure of a probe, including a 407 (NCSI cannot authenticate)
	// and an unreachable parent, makes Windows report no internet, and
	// Office then refuses to sign in. ExpressRoute does not apply: probe
	// hosts are not Microsoft 365 endpoints.
	{probeKinds, pathFailures, erAny, CauseNCSINoInternet},
	{probeKinds, parentFailures, erAny, CauseNCSINoInternet},
	{probeKinds, probeFailures, erAny, CauseNCSINoInternet},
	// Probe outcomes on a rule without an expectation cannot happen; should
	// a caller report one anyway, no article cause fits.
	{nonProbeKinds, probeFailures, erAny, CauseNone},
}

// causeCells is causeRows expanded for constant-time lookup:
// [kind][outcome][ExpressRoute config][rule ExpressRoute flag].
type causeCellTable [numKinds][numOutcomes][2][2]CauseID

var causeCells = mustBuildCauseCells(causeRows)

func mustBuildCauseCells(rows []causeRow) *causeCellTable {
	t, err := buildCauseCells(rows)
	if err != nil {
		panic(err) // the rows are a literal in this file; the tests catch this first
	}
	return t
}

// buildCauseCells expands rows and insists that every cell is covered
// exactly once, so a gap or a contradiction cannot hide in the table.
func buildCauseCells(rows []causeRow) (*causeCellTable, error) {
	var t causeCellTable
	var set [numKinds][numOutcomes][2][2]int
	for i, row := range rows {
		for _, k := range row.kinds {
			for _, o := range row.outcomes {
				for cfg := range 2 {
					for rule := range 2 {
						if !row.er.covers(cfg == 1, rule == 1) {
							continue
						}
						if set[k][o][cfg][rule] != 0 {
							return nil, fmt.Errorf("rules: cause table rows %d and %d both cover kind %s, outcome %s",
								set[k][o][cfg][rule]-1, i, k, o)
						}
						set[k][o][cfg][rule] = i + 1
						t[k][o][cfg][rule] = row.cause
					}
				}
			}
		}
	}
	for k := range numKinds {
		for o := range numOutcomes {
			for cfg := range 2 {
				for rule := range 2 {
					if set[k][o][cfg][rule] == 0 {
						return nil, fmt.Errorf("rules: cause table has no row for kind %s, outcome %s, express_route %t, rule ExpressRoute %t",
							k, o, cfg == 1, rule == 1)
					}
				}
			}
		}
	}
	return &t, nil
}

// ReportRule chooses, among the rules that match one host (best first, as
// Match.All gives them), the one a report files the host under. The tap's
// precedence picks the most specific pattern, then the lower id, which
// files officeclient.microsoft.com under SharePoint set 35 although its
// §1 cause comes from Common set 86. A report is read against the article,
// so among catalogue sets it prefers the "Microsoft 365 Common and Office
// Online" area, then a set marked required (the article's list), then the
// narrower port list (fewer ports; no list is every port), then the match
// order itself: the more specific pattern, then the lower id. A user or
// NCSI rule that won stays the winner: the operator wrote it for this host.
// nil when rs is empty.
func ReportRule(rs []*Rule) *Rule {
	if len(rs) == 0 {
		return nil
	}
	if rs[0].Source != SourceCatalogue {
		return rs[0]
	}
	best := rs[0]
	for _, r := range rs[1:] {
		if r.Source == SourceCatalogue && reportsBefore(r, best) {
			best = r
		}
	}
	return best
}

// reportsBefore: a is filed before b. Equal on every count, the earlier in
// the match order (b) stays.
func reportsBefore(a, b *Rule) bool {
	if ac, bc := a.ServiceArea == CommonArea, b.ServiceArea == CommonArea; ac != bc {
		return ac
	}
	if a.Required != b.Required {
		return a.Required
	}
	return portWidth(a) < portWidth(b)
}

// portWidth is the number of TCP ports a rule allows; no list allows all.
func portWidth(r *Rule) int {
	if len(r.TCPPorts) == 0 {
		return 1 << 16
	}
	return len(r.TCPPorts)
}
