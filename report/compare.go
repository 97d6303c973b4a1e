package report

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/m365tap/m365tap/messages"
	"github.com/m365tap/m365tap/rules"
)

// Comparison is two sessions side by side: before and after a fix, Wi-Fi
// or VPN against a wired LAN without VPN (the article's own test), through
// the parent against direct. Its JSON form is the output of
// `m365tap report --compare A B --format json`.
type Comparison struct {
	Language string `json:"language"`
	A        Side   `json:"a"`
	B        Side   `json:"b"`
	// Hosts lists every required endpoint, probe or failing host of either
	// session, those whose state changed first.
	Hosts []HostChange `json:"hosts"`
	// CausesOnlyA and CausesOnlyB are the verdict's causes seen in one
	// session only; CausesBoth those in both.
	CausesOnlyA []string `json:"causes_only_a"`
	CausesOnlyB []string `json:"causes_only_b"`
	CausesBoth  []string `json:"causes_both"`
	// Conclusion is the comparison in one sentence.
	Conclusion   string `json:"conclusion"`
	ConclusionID string `json:"conclusion_id"`
}

// Side is one session of a comparison.
type Side struct {
	Label     string `json:"label"`
	Exchanges int    `json:"exchanges"`
	Failed    int    `json:"failed"`
	PCs       int    `json:"pcs"`
}

// HostState is what a session says about one host.
type HostState string

const (
	StateWorks        HostState = "works"        // ok, no failure
	StateFails        HostState = "fails"        // failures, no success
	StateIntermittent HostState = "intermittent" // both
	StateUnseen       HostState = "unseen"       // no exchange with the host
)

// HostChange is one host in both sessions.
type HostChange struct {
	Host   string    `json:"host"`
	A      HostState `json:"a"`
	B      HostState `json:"b"`
	CauseA string    `json:"cause_a,omitempty"`
	CauseB string    `json:"cause_b,omitempty"`
	// Change: fixed (fails in A, works in B), broken (the reverse),
	// still_failing, same, or other.
	Change string `json:"change"`
}

func stateOf(e *EndpointSummary) HostState {
	switch {
	case e == nil || e.OK == 0 && e.Failed == 0:
		return StateUnseen
	case e.Failed == 0:
		return StateWorks
	case e.OK == 0:
		return StateFails
	}
	return StateIntermittent
}

func failing(s HostState) bool { return s == StateFails || s == StateIntermittent }

// Compare sets two summaries, in the same language, side by side.
func Compare(a, b *Summary, labelA, labelB string) *Comparison {
	l, _ := rules.ParseLanguage(a.Language)
	p := messages.For(l)
	c := &Comparison{Language: a.Language,
		A:     Side{Label: labelA, Exchanges: a.Exchanges, Failed: a.Failed, PCs: a.PCs},
		B:     Side{Label: labelB, Exchanges: b.Exchanges, Failed: b.Failed, PCs: b.PCs},
		Hosts: []HostChange{}, CausesOnlyA: []string{}, CausesOnlyB: []string{}, CausesBoth: []string{}}
	byHost := func(s *Summary) map[string]*EndpointSummary {
		m := map[string]*EndpointSummary{}
		for i := range s.Endpoints {
			if e := &s.Endpoints[i]; e.Important() {
				m[e.Host] = e
			}
		}
		return m
	}
	ha, hb := byHost(a), byHost(b)
	var hosts []string
	for h := range ha {
		hosts = append(hosts, h)
	}
	for h := range hb {
		if ha[h] == nil {
			hosts = append(hosts, h)
		}
	}
	slices.Sort(hosts)
	var fixed, broken, still int
	for _, h := range hosts {
		ch := HostChange{Host: h, A: stateOf(ha[h]), B: stateOf(hb[h])}
		if e := ha[h]; e != nil {
			ch.CauseA = e.CauseID
		}
		if e := hb[h]; e != nil {
			ch.CauseB = e.CauseID
		}
		switch {
		case failing(ch.A) && ch.B == StateWorks:
			ch.Change = "fixed"
			fixed++
		case ch.A == StateWorks && failing(ch.B):
			ch.Change = "broken"
			broken++
		case failing(ch.A) && failing(ch.B):
			ch.Change = "still_failing"
			still++
		case ch.A == ch.B:
			ch.Change = "same"
		default:
			ch.Change = "other"
		}
		c.Hosts = append(c.Hosts, ch)
	}
	rank := map[string]int{"fixed": 0, "broken": 1, "still_failing": 2, "other": 3, "same": 4}
	slices.SortStableFunc(c.Hosts, func(x, y HostChange) int { return rank[x.Change] - rank[y.Change] })
	causes := func(s *Summary) []string {
		var out []string
		for _, f := range s.Verdict {
			if !slices.Contains(out, f.CauseID) {
				out = append(out, f.CauseID)
			}
		}
		return out
	}
	ca, cb := causes(a), causes(b)
	for _, id := range ca {
		if slices.Contains(cb, id) {
			c.CausesBoth = append(c.CausesBoth, id)
		} else {
			c.CausesOnlyA = append(c.CausesOnlyA, id)
		}
	}
	for _, id := range cb {
		if !slices.Contains(ca, id) {
			c.CausesOnlyB = append(c.CausesOnlyB, id)
		}
	}
	switch {
	case fixed == 0 && broken == 0 && still == 0:
		c.ConclusionID = "compare.none_fail"
	case fixed > 0 && broken == 0 && still == 0:
		c.ConclusionID = "compare.a_only"
	case broken > 0 && fixed == 0 && still == 0:
		c.ConclusionID = "compare.b_only"
	case still > 0 && fixed == 0 && broken == 0:
		c.ConclusionID = "compare.both"
	default:
		c.ConclusionID = "compare.mixed"
	}
	c.Conclusion = p.T(c.ConclusionID, messages.Args{"A": labelA, "B": labelB, "Fixed": fixed, "Broken": broken, "Still": still})
	return c
}

// Write renders the comparison as text, JSON, Markdown or one
// self-contained HTML file.
func (c *Comparison) Write(w io.Writer, f Format) error {
	if f == FormatJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(c)
	}
	l, _ := rules.ParseLanguage(c.Language)
	p := messages.For(l)
	if f == FormatHTML {
		return c.writeHTML(w, p)
	}
	md := f == FormatMarkdown
	var b strings.Builder
	title := p.T("compare.title", messages.Args{"A": c.A.Label, "B": c.B.Label})
	if md {
		b.WriteString("# " + mdText(title) + "\n\n**" + mdText(c.Conclusion) + "**\n\n")
	} else {
		b.WriteString(title + "\n" + c.Conclusion + "\n\n")
	}
	for _, s := range []Side{c.A, c.B} {
		line := p.T("compare.side", messages.Args{"Label": s.Label, "Exchanges": s.Exchanges, "Failed": s.Failed, "PCs": s.PCs})
		if md {
			line = "- " + mdText(line)
		}
		b.WriteString(line + "\n")
	}
	state := func(s HostState) string { return p.T("compare.state."+string(s), nil) }
	cause := func(s string) string { return dash(s) }
	b.WriteString("\n")
	if md {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n| --- | --- | --- | --- |\n", p.T("col.host", nil), mdText(c.A.Label), mdText(c.B.Label), p.T("compare.col.change", nil))
		for _, h := range c.Hosts {
			fmt.Fprintf(&b, "| %s | %s (%s) | %s (%s) | %s |\n", mdCode(h.Host), state(h.A), mdCode(cause(h.CauseA)), state(h.B),
				mdCode(cause(h.CauseB)), mdText(p.T("compare.change."+h.Change, nil)))
		}
	} else {
		var t table
		t.add(p.T("col.host", nil), c.A.Label, c.B.Label, p.T("compare.col.change", nil))
		for _, h := range c.Hosts {
			t.add(h.Host, state(h.A)+" ("+cause(h.CauseA)+")", state(h.B)+" ("+cause(h.CauseB)+")", p.T("compare.change."+h.Change, nil))
		}
		t.writeTo(&b)
	}
	b.WriteString("\n")
	for _, row := range []struct {
		id, label string
		ids       []string
	}{{"compare.causes_only", c.A.Label, c.CausesOnlyA}, {"compare.causes_only", c.B.Label, c.CausesOnlyB},
		{"compare.causes_both", "", c.CausesBoth}} {
		if len(row.ids) == 0 {
			continue
		}
		line := p.T(row.id, messages.Args{"Label": row.label, "Causes": strings.Join(row.ids, ", ")})
		if md {
			line = "- " + mdText(line)
		}
		b.WriteString(line + "\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}
