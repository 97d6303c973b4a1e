package report

import (
	"embed"
	"html/template"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/m365tap/m365tap/messages"
)

// The HTML report is one file a support engineer attaches to a ticket: the
// styles are inlined from the embedded assets, there is no script and no
// external resource, so it opens offline and prints to PDF as it looks.
//
//go:embed assets/report.html.tmpl assets/report.css
var assets embed.FS

var htmlTemplate = template.Must(template.New("report.html.tmpl").Funcs(template.FuncMap{
	"stamp": func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return stamp(*t)
	},
	"clock": clock,
	"dash":  dash,
}).ParseFS(assets, "assets/report.html.tmpl"))

var reportCSS = func() template.CSS {
	b, err := assets.ReadFile("assets/report.css")
	if err != nil {
		panic(err) // embedded at build time
	}
	return template.CSS(b)
}()

// htmlView is what the template reads: the summary with every text
// already in the reader's language.
type htmlView struct {
	S        *Summary
	P        *messages.Printer
	Lang     string
	CSS      template.CSS
	Headline string
	Settings []htmlPair
	Verdict  []htmlFinding
	Clients  []htmlClient
	// MoreClients are the PCs past maxClientRows, behind a <details>.
	MoreClients []htmlClient
	Endpoints   []htmlEndpoint
	Timeline    *svgTimeline
	Checks      []htmlEndpoint
	Facts       []Fact
	T           map[string]string
}

type htmlPair struct{ Key, Value string }

type htmlFinding struct {
	Finding
	Head, Where, Seen, Section string
	PCsShort                   string
	PCsAll                     []string
}

type htmlClient struct {
	ClientSummary
	FailedHosts string
	Causes      string
}

type htmlEndpoint struct {
	EndpointSummary
	Name, Set, Required, Outcomes, PCs, Last string
}

// svgTimeline is the timeline chart: one row per host, a line from its
// first to its last exchange, a dot at each first/last failure and at the
// last success.
type svgTimeline struct {
	Width, Height, LabelWidth int
	Rows                      []svgRow
	Ticks                     []svgTick
}

type svgRow struct {
	Y, TextY            int
	Label               string
	X1, X2              float64
	Fails               []float64
	OK                  []float64
	FirstFail, LastFail string
	LastOK              string
}

type svgTick struct {
	X     float64
	Label string
}

func (s *Summary) writeHTML(w io.Writer) error {
	p := s.printer()
	names := s.names()
	v := &htmlView{S: s, P: p, Lang: p.T("html.lang", nil), CSS: reportCSS, Headline: s.headline(p), Facts: s.Facts, T: map[string]string{}}
	for _, id := range []string{"report.title", "verdict.title", "verdict.none", "settings.heading", "pcs.title", "endpoints.title",
		"timeline.title", "probes.title", "probes.none", "facts.title", "finding.reference.md", "endpoints.set_note", "pcs.ncsi_note",
		"col.pc", "col.name", "col.exchanges", "col.failed", "col.ok", "col.ncsi", "col.failed_hosts", "col.causes", "col.host",
		"col.set", "col.area", "col.required", "col.other_outcomes", "col.pcs_failed", "col.cause", "col.first_seen",
		"col.first_failure", "col.last_failure", "col.last_success", "col.last_failure_detail", "col.check", "col.outcome",
		"timeline.legend.ok", "timeline.legend.failed", "article.note", "html.print_note"} {
		v.T[id] = p.T(id, nil)
	}
	v.T["pcs.show_all"] = p.T("pcs.show_all", messages.Args{"Count": len(s.Clients)})
	v.T["article.line"] = p.T("article.line", messages.Args{"Title": s.Article.Title, "Source": s.Article.Source})

	st := s.Settings
	er := p.T("settings.er.unknown", nil)
	if st.ExpressRoute != nil {
		er = p.T("settings.er."+strconv.FormatBool(*st.ExpressRoute), nil)
	}
	span := "-"
	if s.From != nil {
		span = stamp(*s.From) + " – " + stamp(*s.To)
	}
	v.Settings = []htmlPair{
		{p.T("settings.listen", nil), dash(st.Listen)},
		{p.T("settings.parent", nil), parentText(p, st.Parent)},
		{p.T("settings.expressroute", nil), er},
		{p.T("settings.rules_version", nil), dash(st.RulesVersion)},
		{p.T("settings.tap_version", nil), dash(st.TapVersion)},
		{p.T("settings.span", nil), span},
	}
	if line := s.pacLine(p); line != "" {
		v.Settings = append(v.Settings, htmlPair{p.T("settings.pac", nil), line})
	}
	for i, f := range s.Verdict {
		hf := htmlFinding{Finding: f, Where: f.Where, Seen: f.seen(p),
			Head:    p.T("finding.head", messages.Args{"N": i + 1, "Cause": f.CauseID, "Section": f.Section, "Title": f.Title}),
			Section: p.T("finding.section", messages.Args{"Section": f.Section})}
		if len(f.PCs) > 0 {
			hf.PCsShort = p.T("finding.pcs", messages.Args{"PCs": s.pcList(p, f.PCs)})
			if len(f.PCs) > maxListed {
				for _, a := range f.PCs {
					hf.PCsAll = append(hf.PCsAll, pcLabel(a, names[a]))
				}
			}
		}
		v.Verdict = append(v.Verdict, hf)
	}
	for i, c := range s.Clients {
		hc := htmlClient{ClientSummary: c, FailedHosts: dash(p.List(c.FailedHosts, 3)), Causes: dash(strings.Join(c.Causes, ", "))}
		if i < maxClientRows {
			v.Clients = append(v.Clients, hc)
		} else {
			v.MoreClients = append(v.MoreClients, hc)
		}
	}
	for _, e := range s.Endpoints {
		he := htmlEndpoint{EndpointSummary: e, Name: e.name(p), Set: e.set(), Required: e.required(p), Outcomes: e.outcomes(),
			PCs: e.pcs(), Last: "-"}
		if e.LastFailure != nil {
			he.Last = e.LastFailure.describe(p, names)
		}
		v.Endpoints = append(v.Endpoints, he)
		if e.ActiveChecks > 0 {
			v.Checks = append(v.Checks, he)
		}
	}
	v.Timeline = s.timeline()
	return htmlTemplate.Execute(w, v)
}

func (s *Summary) timeline() *svgTimeline {
	if s.From == nil {
		return nil
	}
	const width, label, rowH = 960, 300, 22
	t := &svgTimeline{Width: width, LabelWidth: label}
	from, to := *s.From, *s.To
	span := to.Sub(from)
	if span <= 0 {
		span = time.Second
	}
	plot := float64(width - label - 20)
	x := func(tp *time.Time) float64 {
		if tp == nil {
			return -1
		}
		return float64(label) + plot*float64(tp.Sub(from))/float64(span)
	}
	for _, e := range s.Endpoints {
		if !e.important() {
			continue
		}
		tl := e.Timeline
		y := 30 + len(t.Rows)*rowH
		r := svgRow{Y: y, TextY: y + 4, Label: e.Host, X1: x(tl.FirstSeen), X2: x(tl.FirstSeen),
			FirstFail: clock(tl.FirstFailure), LastFail: clock(tl.LastFailure), LastOK: clock(tl.LastSuccess)}
		for _, tp := range []*time.Time{tl.FirstFailure, tl.LastFailure, tl.LastSuccess} {
			if tp != nil && x(tp) > r.X2 {
				r.X2 = x(tp)
			}
		}
		if tl.FirstFailure != nil {
			r.Fails = append(r.Fails, x(tl.FirstFailure))
		}
		if tl.LastFailure != nil && !tl.LastFailure.Equal(*tl.FirstFailure) {
			r.Fails = append(r.Fails, x(tl.LastFailure))
		}
		if tl.LastSuccess != nil {
			r.OK = append(r.OK, x(tl.LastSuccess))
		}
		t.Rows = append(t.Rows, r)
	}
	if len(t.Rows) == 0 {
		return nil
	}
	t.Height = 30 + len(t.Rows)*rowH + 10
	// A repro of seconds needs milliseconds on the axis to tell ticks apart.
	layout := "15:04:05"
	if span < time.Minute {
		layout = "15:04:05.000"
	}
	for i := range 5 {
		at := from.Add(span * time.Duration(i) / 4)
		t.Ticks = append(t.Ticks, svgTick{X: x(&at), Label: at.UTC().Format(layout)})
	}
	return t
}
