package report

import (
	"embed"
	"html/template"
	"io"

	"github.com/m365tap/m365tap/messages"
)

// The comparison is attached to a ticket as the single report is: one
// file, the same inlined styles, no script, no external resource.
//
//go:embed assets/compare.html.tmpl
var compareAssets embed.FS

var compareTemplate = template.Must(template.New("compare.html.tmpl").Funcs(template.FuncMap{"dash": dash}).
	ParseFS(compareAssets, "assets/compare.html.tmpl"))

// compareView is what the comparison's template reads, every text in the
// reader's language.
type compareView struct {
	C       *Comparison
	Lang    string
	Title   string
	CSS     template.CSS
	Sides   []Side
	Hosts   []compareRow
	Causes  []compareCauses
	Article string
	T       map[string]string
}

type compareRow struct {
	HostChange
	StateA, StateB, ChangeText string
}

type compareCauses struct {
	Heading string
	Items   []compareCause
}

type compareCause struct{ ID, Title string }

func (c *Comparison) writeHTML(w io.Writer, p *messages.Printer) error {
	v := &compareView{C: c, Lang: p.T("html.lang", nil), CSS: reportCSS, Sides: []Side{c.A, c.B},
		Title:   p.T("compare.title", messages.Args{"A": c.A.Label, "B": c.B.Label}),
		Article: p.T("article.line", messages.Args{"Title": p.T("article.title", nil), "Source": p.T("article.source", nil)}),
		T:       map[string]string{}}
	for _, id := range []string{"compare.sessions.title", "compare.hosts.title", "compare.hosts.none", "compare.causes.title",
		"compare.col.change", "col.session", "col.exchanges", "col.failed", "col.pc", "col.host", "article.note", "html.print_note"} {
		v.T[id] = p.T(id, nil)
	}
	for _, h := range c.Hosts {
		v.Hosts = append(v.Hosts, compareRow{HostChange: h, StateA: p.T("compare.state."+string(h.A), nil),
			StateB: p.T("compare.state."+string(h.B), nil), ChangeText: p.T("compare.change."+h.Change, nil)})
	}
	for _, g := range []struct {
		heading string
		ids     []string
	}{
		{p.T("compare.causes_only.heading", messages.Args{"Label": c.A.Label}), c.CausesOnlyA},
		{p.T("compare.causes_only.heading", messages.Args{"Label": c.B.Label}), c.CausesOnlyB},
		{p.T("compare.causes_both.heading", nil), c.CausesBoth},
	} {
		if len(g.ids) == 0 {
			continue
		}
		cc := compareCauses{Heading: g.heading}
		for _, id := range g.ids {
			cc.Items = append(cc.Items, compareCause{ID: id, Title: p.CauseTitle(id)})
		}
		v.Causes = append(v.Causes, cc)
	}
	return compareTemplate.Execute(w, v)
}
