package report

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"

	"github.com/m365tap/m365tap/rules"
)

// Summary is the session's diagnosis. Its JSON form is the output of
// `m365tap report --format json` and the fields of the "report" record.
type Summary struct {
	Language string `json:"language"`
	// From and To bound the exchanges seen; absent when there were none.
	From *time.Time `json:"from,omitempty"`
	To   *time.Time `json:"to,omitempty"`
	// Exchanges counts every exchange; Failed those of class failed.
	Exchanges int `json:"exchanges"`
	Failed    int `json:"failed"`
	// ProbeChecks counts the exchanges the active probe made.
	ProbeChecks int `json:"probe_checks"`
	// NCSIProbes counts clients' requests for an NCSI probe path.
	NCSIProbes int           `json:"ncsi_probes"`
	Rules      []RuleSummary `json:"rules"`
	// Verdict lists the article causes that apply, most important first.
	Verdict []Finding `json:"verdict"`
	// Facts are what the events say only taken together.
	Facts []Fact `json:"facts"`
}

// RuleSummary is one matched rule's line.
type RuleSummary struct {
	// RuleID is "" for exchanges no rule matched.
	RuleID string `json:"rule_id"`
	// Host is set for the active probe's rule-less checks (the DNS probe),
	// which get a line of their own.
	Host        string `json:"host,omitempty"`
	RuleSource  string `json:"rule_source,omitempty"`
	ServiceArea string `json:"service_area,omitempty"`
	Required    bool   `json:"required"`
	Exchanges   int    `json:"exchanges"`
	OK          int    `json:"ok"`
	Failed      int    `json:"failed"`
	// Outcomes counts every outcome other than ok.
	Outcomes map[string]int `json:"outcomes"`
	// CauseID is the cause of the latest exchange that had one.
	CauseID     string   `json:"cause_id,omitempty"`
	LastFailure *Failure `json:"last_failure,omitempty"`
}

// Finding is one article cause that applies.
type Finding struct {
	CauseID   string `json:"cause_id"`
	Section   string `json:"section"`
	Title     string `json:"title"`
	Remedy    string `json:"remedy"`
	Reference string `json:"reference"`
	// Exchanges counts the exchanges that had this cause, ProbeChecks
	// those of them the active probe made.
	Exchanges   int            `json:"exchanges"`
	ProbeChecks int            `json:"probe_checks"`
	Hosts       []string       `json:"hosts"`
	RuleIDs     []string       `json:"rule_ids"`
	Routes      map[string]int `json:"routes,omitempty"`
}

// Fact is a finding of the report itself.
type Fact struct {
	// ID is stable: no_traffic, no_ncsi_probe, parent_only, all_required_failed.
	ID   string `json:"id"`
	Text string `json:"text"`
}

// causePriority orders the verdict. A failing NCSI probe comes first: while
// Windows reports no internet, Office does not try any endpoint. A broken
// parent proxy comes next, since every exchange through it fails whatever
// the endpoint. Then the endpoints themselves, and the ExpressRoute
// refinement of the same finding.
var causePriority = []rules.CauseID{
	rules.CauseNCSINoInternet,
	rules.CauseDeviceProxySettings,
	rules.CauseRequiredEndpointUnreachable,
	rules.CauseExpressRoutePath,
}

// Summary builds the diagnosis of what was added so far, with cause and
// fact texts in lang.
func (a *Aggregate) Summary(lang rules.Language) *Summary {
	s := &Summary{
		Language:    lang.String(),
		Exchanges:   a.exchanges,
		Failed:      a.failed,
		ProbeChecks: a.active,
		NCSIProbes:  a.ncsiPassive,
		Rules:       []RuleSummary{},
		Verdict:     []Finding{},
		Facts:       []Fact{},
	}
	if a.exchanges > 0 {
		from, to := a.first.UTC(), a.last.UTC()
		s.From, s.To = &from, &to
	}
	for _, rw := range a.rows {
		rs := RuleSummary{RuleID: rw.key.rule, Host: rw.key.host, RuleSource: rw.source, ServiceArea: rw.area,
			Required: rw.required, Exchanges: rw.exchanges, OK: rw.ok, Outcomes: map[string]int{},
			CauseID: rw.cause}
		for o, n := range rw.outcomes {
			rs.Outcomes[o] = n
			if oc, err := rules.ParseOutcome(o); err == nil && oc.Failed() {
				rs.Failed += n
			}
		}
		if rw.hasLast {
			l := rw.last
			l.Time = l.Time.UTC()
			rs.LastFailure = &l
		}
		s.Rules = append(s.Rules, rs)
	}
	slices.SortFunc(s.Rules, func(x, y RuleSummary) int {
		return cmp.Or(
			cmp.Compare(y.Failed, x.Failed),
			cmp.Compare(y.Exchanges, x.Exchanges),
			// The no-rule line last among equals.
			cmp.Compare(b2i(x.RuleID == "" && x.Host == ""), b2i(y.RuleID == "" && y.Host == "")),
			strings.Compare(x.RuleID, y.RuleID),
			strings.Compare(x.Host, y.Host))
	})

	for _, id := range causePriority {
		c := a.causes[id.String()]
		cause := rules.CauseByID(id)
		if c == nil || cause == nil {
			continue
		}
		f := Finding{CauseID: id.String(), Section: cause.Section, Title: cause.Title(lang), Remedy: cause.Remedy(lang),
			Reference: cause.Reference, Exchanges: c.exchanges, ProbeChecks: c.active, Hosts: sortedKeys(c.hosts), RuleIDs: sortedKeys(c.rules),
			Routes: map[string]int{}}
		for r, n := range c.routes {
			f.Routes[r] = n
		}
		slices.SortFunc(f.RuleIDs, compareRuleIDs)
		s.Verdict = append(s.Verdict, f)
	}
	s.Facts = a.facts(lang)
	return s
}

// compareRuleIDs puts catalogue ids in numeric order before the others.
func compareRuleIDs(x, y string) int {
	nx, ny := numeric(x), numeric(y)
	switch {
	case nx && ny:
		return cmp.Or(cmp.Compare(len(x), len(y)), strings.Compare(x, y))
	case nx:
		return -1
	case ny:
		return 1
	}
	return strings.Compare(x, y)
}

func numeric(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// factTexts are the report's own sentences, by fact and language. %[1]s is
// the tap's address for netsh, %[2]d and %[3]d counts, %[4]s host names.
var factTexts = map[string][2]string{
	"no_traffic": {
		"No client exchange passed through the tap during this session: the PC's proxy settings do not point at it. " +
			"Set the per-user proxy (Settings > Network & Internet > Proxy) and, in an elevated prompt, the WinHTTP proxy " +
			"(netsh winhttp set proxy proxy-server=\"%[1]s\" bypass-list=\"<local>\") to the tap, then sign in again.",
		"このセッションでは、クライアントの通信がタップを一度も通過しませんでした。端末のプロキシ設定がタップを指していません。" +
			"ユーザーのプロキシ ([設定] > [ネットワークとインターネット] > [プロキシ]) と、管理者として実行したコマンド プロンプトで WinHTTP プロキシ " +
			"(netsh winhttp set proxy proxy-server=\"%[1]s\" bypass-list=\"<local>\") をタップに設定してから、もう一度サインインしてください。",
	},
	"no_ncsi_probe": {
		"No NCSI probe passed through the tap during this session: Windows may be probing around it (direct, or through " +
			"another proxy), and its verdict is invisible here. In an elevated prompt, note the current value " +
			"(netsh winhttp show proxy), set the WinHTTP proxy to the tap " +
			"(netsh winhttp set proxy proxy-server=\"%[1]s\" bypass-list=\"<local>\"), then disable and re-enable the " +
			"network adapter and wait about 60 seconds.",
		"このセッションでは NCSI のプローブがタップを一度も通過しませんでした。Windows はタップを経由せずに (直接、または別のプロキシ経由で) " +
			"プローブしている可能性があり、その判定はここからは見えません。管理者として実行したコマンド プロンプトで現在の値を控えてから " +
			"(netsh winhttp show proxy)、WinHTTP プロキシをタップに設定し (netsh winhttp set proxy proxy-server=\"%[1]s\" bypass-list=\"<local>\")、" +
			"ネットワーク アダプターを無効にしてから再度有効にして、60 秒ほど待ってください。",
	},
	"parent_only": {
		"%[2]d required endpoints failed only through the parent proxy, while direct connections to them worked " +
			"(%[4]s): the parent proxy, or how it treats Microsoft 365, blocks sign-in. " +
			"Let these hosts through the parent without authentication or TLS inspection, or send Microsoft 365 traffic around it.",
		"%[2]d 個の必須エンドポイントへの通信が上位プロキシ経由でのみ失敗し、直接接続では成功しました (%[4]s)。" +
			"サインインを妨げているのは上位プロキシ、またはその Microsoft 365 の通信の扱いです。" +
			"上位プロキシでこれらのホストを認証や TLS 検査なしで通すか、Microsoft 365 の通信が上位プロキシを経由しないようにしてください。",
	},
	"all_required_failed": {
		"Every exchange with a required endpoint failed (hosts: %[3]d, exchanges: %[2]d, none succeeded): the tap " +
			"itself may have no route to the internet. Check the network, DNS (dns.servers, hosts) and parent proxy " +
			"settings of the machine the tap runs on before looking at the PC.",
		"必須エンドポイントとの通信がすべて失敗しました (ホスト %[3]d 件、通信 %[2]d 件、成功 0 件)。タップ自体がインターネットへの経路を持っていない" +
			"可能性があります。端末を調べる前に、タップを動かしているマシンのネットワーク、DNS (dns.servers、hosts)、上位プロキシの設定を確認してください。",
	},
}

func factText(id string, lang rules.Language, a ...any) Fact {
	t := factTexts[id]
	i := 0
	if lang == rules.LangJA {
		i = 1
	}
	return Fact{ID: id, Text: fmt.Sprintf(t[i], a...)}
}

func (a *Aggregate) facts(lang rules.Language) []Fact {
	out := []Fact{}
	tap := a.netshAddress()
	switch {
	case a.passive == 0:
		out = append(out, factText("no_traffic", lang, tap, 0, 0, ""))
	case a.ncsiPassive == 0:
		out = append(out, factText("no_ncsi_probe", lang, tap, 0, 0, ""))
	}
	var (
		parentOnly                 []string
		reqHosts, reqFail, noRoute int
		anyOK                      bool
	)
	for host, hs := range a.hosts {
		if !hs.required {
			continue
		}
		reqHosts++
		noRoute += hs.noRoute
		for _, c := range hs.routes {
			anyOK = anyOK || c.ok > 0
			reqFail += c.failed
		}
		rs := &hs.routes
		if rs[routeParent].failed > 0 && rs[routeDirect].ok > 0 && rs[routeDirect].failed == 0 {
			parentOnly = append(parentOnly, host)
		}
	}
	slices.Sort(parentOnly)
	switch {
	case len(parentOnly) > 0:
		out = append(out, factText("parent_only", lang, tap, len(parentOnly), 0, hostList(parentOnly, 5, lang)))
	case reqFail > 0 && !anyOK && noRoute > 0:
		out = append(out, factText("all_required_failed", lang, tap, reqFail, reqHosts, ""))
	}
	return out
}

// netshAddress is the proxy-server value for netsh: the tap's listen
// address when the log says it, with a placeholder for a wildcard host.
func (a *Aggregate) netshAddress() string {
	ap, err := netip.ParseAddrPort(a.listen)
	switch {
	case err != nil:
		return "TAP-ADDRESS:PORT"
	case ap.Addr().IsUnspecified():
		return fmt.Sprintf("TAP-ADDRESS:%d", ap.Port())
	}
	return a.listen
}

func hostList(hosts []string, max int, lang rules.Language) string {
	if len(hosts) <= max {
		return strings.Join(hosts, ", ")
	}
	more := fmt.Sprintf(" and %d more", len(hosts)-max)
	if lang == rules.LangJA {
		more = fmt.Sprintf(" ほか %d 件", len(hosts)-max)
	}
	return strings.Join(hosts[:max], ", ") + more
}

// MarshalLogObject writes the summary as the fields of a "report" record,
// with the same keys as its JSON form.
func (s *Summary) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("language", s.Language)
	if s.From != nil {
		enc.AddString("from", s.From.Format(time.RFC3339Nano))
		enc.AddString("to", s.To.Format(time.RFC3339Nano))
	}
	enc.AddInt("exchanges", s.Exchanges)
	enc.AddInt("failed", s.Failed)
	enc.AddInt("probe_checks", s.ProbeChecks)
	enc.AddInt("ncsi_probes", s.NCSIProbes)
	if err := enc.AddReflected("rules", s.Rules); err != nil {
		return err
	}
	if err := enc.AddReflected("verdict", s.Verdict); err != nil {
		return err
	}
	return enc.AddReflected("facts", s.Facts)
}
