package report

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/m365tap/m365tap/messages"
	"github.com/m365tap/m365tap/rules"
)

// Format selects a rendering of a Summary.
type Format string

const (
	FormatText     Format = "text"
	FormatJSON     Format = "json"
	FormatMarkdown Format = "markdown"
	FormatHTML     Format = "html"
)

// ParseFormat accepts text (also "table"), json, markdown (also "md") and
// html.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "text", "table":
		return FormatText, nil
	case "json":
		return FormatJSON, nil
	case "markdown", "md":
		return FormatMarkdown, nil
	case "html":
		return FormatHTML, nil
	}
	return "", fmt.Errorf("%q is not one of text, json, markdown, html", s)
}

// Write renders s in format f.
func (s *Summary) Write(w io.Writer, f Format) error {
	switch f {
	case FormatJSON:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(s)
	case FormatMarkdown:
		return s.writeMarkdown(w)
	case FormatHTML:
		return s.writeHTML(w)
	}
	return s.writeText(w)
}

// Lists longer than these are cut in text and Markdown, with "and N more":
// the JSON and HTML forms carry them whole. A central tap for an office
// sees hundreds of PCs; the first screen must still be the verdict.
const (
	maxListed     = 5
	maxClientRows = 20
)

func (s *Summary) printer() *messages.Printer {
	l, _ := rules.ParseLanguage(s.Language)
	return messages.For(l)
}

func (s *Summary) headline(p *messages.Printer) string {
	args := messages.Args{"Exchanges": s.Exchanges, "Probe": s.ProbeChecks, "Failed": s.Failed, "PCs": s.PCs,
		"NCSI": s.NCSIProbes}
	if s.From == nil {
		return p.T("report.headline.empty", args)
	}
	args["From"], args["To"] = stamp(*s.From), stamp(*s.To)
	return p.T("report.headline", args)
}

func (s *Summary) settingsLine(p *messages.Printer) string {
	st := s.Settings
	if st.Listen == "" && st.TapVersion == "" {
		return ""
	}
	er := p.T("settings.er.unknown", nil)
	if st.ExpressRoute != nil {
		er = p.T("settings.er."+strconv.FormatBool(*st.ExpressRoute), nil)
	}
	return p.T("report.settings", messages.Args{"Listen": dash(st.Listen), "Parent": parentText(p, st.Parent),
		"ExpressRoute": er, "Rules": dash(st.RulesVersion), "Version": dash(st.TapVersion)})
}

func parentText(p *messages.Printer, parent string) string {
	if parent == "" {
		return p.T("settings.no_parent", nil)
	}
	return parent
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// clock is a time of day for the timeline table; the date is in the
// headline.
func clock(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format("15:04:05.000")
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (e EndpointSummary) name(p *messages.Printer) string {
	if e.Host == "" {
		return p.T("endpoint.no_rule", nil)
	}
	return e.Host
}

func (e EndpointSummary) set() string {
	if e.RuleID == "" {
		return "-"
	}
	if e.TapRuleID != "" {
		return e.RuleID + " (" + e.TapRuleID + ")"
	}
	return e.RuleID
}

func (e EndpointSummary) required(p *messages.Printer) string {
	switch {
	case e.Host == "" || e.RuleID == "" && !e.Probe:
		return "-"
	case e.Required:
		return p.T("answer.yes", nil)
	}
	return p.T("answer.no", nil)
}

func (e EndpointSummary) outcomes() string {
	type kv struct {
		k string
		n int
	}
	var list []kv
	for k, n := range e.Outcomes {
		list = append(list, kv{k, n})
	}
	if len(list) == 0 {
		return "-"
	}
	slices.SortFunc(list, func(x, y kv) int { return cmp.Or(cmp.Compare(y.n, x.n), strings.Compare(x.k, y.k)) })
	parts := make([]string, len(list))
	for i, e := range list {
		parts[i] = e.k + "=" + strconv.Itoa(e.n)
	}
	return strings.Join(parts, " ")
}

func (e EndpointSummary) pcs() string {
	if e.PCsTried == 0 {
		return "-"
	}
	return strconv.Itoa(e.PCsFailed) + "/" + strconv.Itoa(e.PCsTried)
}

// important: the rows the timeline shows: required endpoints and probes,
// and any host with a failure.
func (e EndpointSummary) important() bool { return e.Important() }

// Important is for the HTML template.
func (e EndpointSummary) Important() bool {
	return e.Host != "" && (e.Required || e.Probe || e.Failed > 0)
}

// describe is one failure on one line.
func (f *Failure) describe(p *messages.Printer, names map[string]string) string {
	req := f.Host
	if f.Port != 0 {
		req += ":" + strconv.Itoa(f.Port)
	}
	switch {
	case f.ProbeCheck != "":
		req = "probe " + f.ProbeCheck + " " + req
	case f.Method != "":
		req = f.Method + " " + req
	}
	who := p.T("pc.active_probe", nil)
	if f.Client != "" {
		who = pcLabel(f.Client, names[f.Client])
	}
	route := p.T("route.none", nil)
	if f.Route != "" {
		route = p.T("route."+f.Route, nil)
	}
	line := p.T("failure.line", messages.Args{"Time": stamp(f.Time), "Request": req, "PC": who, "Route": route,
		"Outcome": f.Outcome, "Error": f.Error, "DestIP": f.DestIP})
	if f.PACResult != "" {
		line += " " + p.T("failure.pac", messages.Args{"Result": f.PACResult})
	}
	return line
}

// pacLine names the PC's PAC the session ran with, or "".
func (s *Summary) pacLine(p *messages.Printer) string {
	st := s.Settings
	switch {
	case st.PAC == "":
		return ""
	case st.PACSHA256 == "":
		return p.T("report.pac.failed", messages.Args{"PAC": st.PAC, "Failed": st.PACFailed})
	}
	sha := st.PACSHA256
	if len(sha) > 12 {
		sha = sha[:12]
	}
	if st.PACFailed > 0 {
		return p.T("report.pac.some_failed", messages.Args{"PAC": st.PAC, "SHA": sha, "Failed": st.PACFailed})
	}
	return p.T("report.pac", messages.Args{"PAC": st.PAC, "SHA": sha})
}

func pcLabel(addr, name string) string {
	if name == "" {
		return addr
	}
	return name + " (" + addr + ")"
}

func (s *Summary) names() map[string]string {
	m := map[string]string{}
	for _, c := range s.Clients {
		if c.Name != "" {
			m[c.Address] = c.Name
		}
	}
	return m
}

func (s *Summary) pcList(p *messages.Printer, addrs []string) string {
	names := s.names()
	labels := make([]string, len(addrs))
	for i, a := range addrs {
		labels[i] = pcLabel(a, names[a])
	}
	return p.List(labels, maxListed)
}

func (f Finding) seen(p *messages.Printer) string {
	var routes []string
	for r, n := range f.Routes {
		routes = append(routes, p.T("seen.route", messages.Args{"Route": p.T("route."+r, nil), "Count": n}))
	}
	slices.Sort(routes)
	args := messages.Args{"Exchanges": f.Exchanges, "Probe": f.ProbeChecks, "Routes": strings.Join(routes, p.T("list.separator", nil)),
		"Hosts": p.List(f.Hosts, 8), "HostCount": len(f.Hosts), "Sets": strings.Join(f.RuleIDs, ", ")}
	return p.T("finding.seen", args)
}

func (s *Summary) writeText(w io.Writer) error {
	p := s.printer()
	names := s.names()
	var b strings.Builder
	b.WriteString(p.T("report.title", nil) + "\n")
	b.WriteString(s.headline(p) + "\n")
	if line := s.settingsLine(p); line != "" {
		b.WriteString(line + "\n")
	}
	if line := s.pacLine(p); line != "" {
		b.WriteString(line + "\n")
	}
	for _, n := range s.Notices {
		b.WriteString("\n" + p.T("notice.heading", nil) + " " + n.Text + "\n")
	}
	b.WriteString("\n")
	if len(s.Verdict) == 0 {
		b.WriteString(p.T("verdict.none", nil) + "\n")
	} else {
		b.WriteString(p.T("verdict.heading", nil) + "\n")
		for i, f := range s.Verdict {
			b.WriteString(p.T("finding.head", messages.Args{"N": i + 1, "Cause": f.CauseID, "Section": f.Section, "Title": f.Title}) + "\n")
			b.WriteString("   " + p.T("finding.where", messages.Args{"Where": f.Where}) + "\n")
			if len(f.PCs) > 0 {
				b.WriteString("   " + p.T("finding.pcs", messages.Args{"PCs": s.pcList(p, f.PCs)}) + "\n")
			}
			b.WriteString("   " + f.seen(p) + "\n")
			b.WriteString("   " + p.T("finding.remedy", messages.Args{"Remedy": f.Remedy}) + "\n")
			b.WriteString("   " + p.T("finding.reference", messages.Args{"Link": f.Reference}) + "\n")
		}
	}
	if len(s.Clients) > 0 {
		b.WriteString("\n" + p.T("pcs.heading", nil) + "\n")
		var tw table
		tw.add(p.T("col.pc", nil), p.T("col.name", nil), p.T("col.exchanges", nil),
			p.T("col.failed", nil), p.T("col.ncsi", nil), p.T("col.failed_hosts", nil), p.T("col.causes", nil))
		for i, c := range s.Clients {
			if i == maxClientRows {
				break
			}
			tw.add(c.Address, dash(c.Name), strconv.Itoa(c.Exchanges), strconv.Itoa(c.Failed),
				strconv.Itoa(c.NCSIFailed)+"/"+strconv.Itoa(c.NCSIProbes), dash(p.List(c.FailedHosts, 3)), dash(strings.Join(c.Causes, ", ")))
		}
		tw.writeTo(&b)
		if n := len(s.Clients) - maxClientRows; n > 0 {
			b.WriteString(p.T("pcs.more", messages.Args{"More": n}) + "\n")
		}
		b.WriteString(p.T("pcs.ncsi_note", nil) + "\n")
	}
	if len(s.Endpoints) > 0 {
		b.WriteString("\n" + p.T("endpoints.heading", nil) + "\n")
		var tw table
		tw.add(p.T("col.host", nil), p.T("col.set", nil), p.T("col.area", nil),
			p.T("col.required", nil), p.T("col.ok", nil), p.T("col.failed", nil), p.T("col.other_outcomes", nil),
			p.T("col.pcs_failed", nil), p.T("col.cause", nil))
		for _, e := range s.Endpoints {
			tw.add(e.name(p), e.set(), dash(e.ServiceArea), e.required(p),
				strconv.Itoa(e.OK), strconv.Itoa(e.Failed), e.outcomes(), e.pcs(), dash(e.CauseID))
		}
		tw.writeTo(&b)
		b.WriteString(p.T("endpoints.set_note", nil) + "\n")

		b.WriteString("\n" + p.T("timeline.heading", nil) + "\n")
		tl := table{}
		tl.add(p.T("col.host", nil), p.T("col.first_seen", nil), p.T("col.first_failure", nil),
			p.T("col.last_failure", nil), p.T("col.last_success", nil))
		for _, e := range s.Endpoints {
			if e.important() {
				t := e.Timeline
				tl.add(e.Host, clock(t.FirstSeen), clock(t.FirstFailure), clock(t.LastFailure), clock(t.LastSuccess))
			}
		}
		tl.writeTo(&b)

		lf := table{indent: "  "}
		for _, e := range s.Endpoints {
			if e.LastFailure != nil {
				lf.add(e.name(p), e.LastFailure.describe(p, names))
			}
		}
		if len(lf.rows) > 0 {
			b.WriteString("\n" + p.T("last_failure.heading", nil) + "\n")
			lf.writeTo(&b)
		}
	}
	if len(s.Facts) > 0 {
		b.WriteString("\n" + p.T("facts.heading", nil) + "\n")
		for _, f := range s.Facts {
			b.WriteString("- " + f.Text + "\n")
		}
	}
	b.WriteString("\n" + p.T("article.line", messages.Args{"Title": s.Article.Title, "Source": s.Article.Source}) + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// mdEscaper keeps free text literal in Markdown: <local> in a netsh
// command is not an HTML tag, *.office.com starts no emphasis.
var mdEscaper = strings.NewReplacer("\\", "\\\\", "`", "\\`", "*", "\\*", "_", "\\_", "<", "\\<", "[", "\\[", "]", "\\]", "|", "\\|", "\n", " ")

func mdText(s string) string { return mdEscaper.Replace(s) }

// mdCode shows an identifier (set id, outcome, cause id) as code; "-" and
// words stay text.
func mdCode(s string) string {
	if s == "-" || strings.HasPrefix(s, "(") {
		return s
	}
	return "`" + strings.ReplaceAll(s, "|", "\\|") + "`"
}

func (s *Summary) writeMarkdown(w io.Writer) error {
	p := s.printer()
	names := s.names()
	var b strings.Builder
	b.WriteString("# " + mdText(p.T("report.title", nil)) + "\n\n" + mdText(s.headline(p)) + "\n")
	if line := s.settingsLine(p); line != "" {
		b.WriteString("\n" + mdText(line) + "\n")
	}
	if line := s.pacLine(p); line != "" {
		b.WriteString("\n" + mdText(line) + "\n")
	}
	for _, n := range s.Notices {
		b.WriteString("\n**" + mdText(p.T("notice.heading", nil)) + "** " + mdText(n.Text) + "\n")
	}
	b.WriteString("\n## " + mdText(p.T("verdict.title", nil)) + "\n\n")
	if len(s.Verdict) == 0 {
		b.WriteString(mdText(p.T("verdict.none", nil)) + "\n")
	}
	for i, f := range s.Verdict {
		b.WriteString(fmt.Sprintf("%d. **`%s`** ", i+1, f.CauseID) +
			mdText(p.T("finding.head.md", messages.Args{"Section": f.Section, "Title": f.Title})) + "\n")
		b.WriteString("   - " + mdText(p.T("finding.where", messages.Args{"Where": f.Where})) + "\n")
		if len(f.PCs) > 0 {
			b.WriteString("   - " + mdText(p.T("finding.pcs", messages.Args{"PCs": s.pcList(p, f.PCs)})) + "\n")
		}
		b.WriteString("   - " + mdText(f.seen(p)) + "\n")
		b.WriteString("   - " + mdText(p.T("finding.remedy", messages.Args{"Remedy": f.Remedy})) + "\n")
		b.WriteString("   - " + mdText(p.T("finding.reference.md", nil)) + " <" + f.Reference + ">\n")
	}
	if len(s.Clients) > 0 {
		b.WriteString("\n## " + mdText(p.T("pcs.title", nil)) + "\n\n")
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s |\n", p.T("col.pc", nil), p.T("col.name", nil), p.T("col.exchanges", nil),
			p.T("col.failed", nil), p.T("col.ncsi", nil), p.T("col.failed_hosts", nil), p.T("col.causes", nil))
		b.WriteString("| --- | --- | ---: | ---: | ---: | --- | --- |\n")
		for i, c := range s.Clients {
			if i == maxClientRows {
				break
			}
			fmt.Fprintf(&b, "| %s | %s | %d | %d | %d/%d | %s | %s |\n", mdCode(c.Address), mdText(dash(c.Name)), c.Exchanges, c.Failed,
				c.NCSIFailed, c.NCSIProbes, mdText(dash(p.List(c.FailedHosts, 3))), mdText(dash(strings.Join(c.Causes, ", "))))
		}
		if n := len(s.Clients) - maxClientRows; n > 0 {
			b.WriteString("\n" + mdText(p.T("pcs.more", messages.Args{"More": n})) + "\n")
		}
		b.WriteString("\n" + mdText(p.T("pcs.ncsi_note", nil)) + "\n")
	}
	if len(s.Endpoints) > 0 {
		b.WriteString("\n## " + mdText(p.T("endpoints.title", nil)) + "\n\n")
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", p.T("col.host", nil), p.T("col.set", nil),
			p.T("col.area", nil), p.T("col.required", nil), p.T("col.ok", nil), p.T("col.failed", nil), p.T("col.other_outcomes", nil),
			p.T("col.pcs_failed", nil), p.T("col.cause", nil), p.T("col.first_failure", nil), p.T("col.last_success", nil),
			p.T("col.last_failure_detail", nil))
		b.WriteString("| --- | --- | --- | --- | ---: | ---: | --- | ---: | --- | --- | --- | --- |\n")
		for _, e := range s.Endpoints {
			last := "-"
			if e.LastFailure != nil {
				last = e.LastFailure.describe(p, names)
			}
			name := mdCode(e.Host)
			if e.Host == "" {
				name = mdText(e.name(p))
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %d | %d | %s | %s | %s | %s | %s | %s |\n", name, mdText(e.set()),
				mdText(dash(e.ServiceArea)), e.required(p), e.OK, e.Failed, mdCode(e.outcomes()), e.pcs(), mdCode(dash(e.CauseID)),
				clock(e.Timeline.FirstFailure), clock(e.Timeline.LastSuccess), mdText(last))
		}
		b.WriteString("\n" + mdText(p.T("endpoints.set_note", nil)) + "\n")
	}
	if len(s.Facts) > 0 {
		b.WriteString("\n## " + mdText(p.T("facts.title", nil)) + "\n\n")
		for _, f := range s.Facts {
			b.WriteString("- " + mdText(f.Text) + "\n")
		}
	}
	b.WriteString("\n---\n\n" + mdText(p.T("article.line", messages.Args{"Title": s.Article.Title, "Source": s.Article.Source})) + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}
