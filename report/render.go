package report

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/m365tap/m365tap/rules"
)

// Format selects a rendering of a Summary.
type Format string

const (
	FormatText     Format = "text"
	FormatJSON     Format = "json"
	FormatMarkdown Format = "markdown"
)

// ParseFormat accepts text (also "table"), json and markdown.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "text", "table":
		return FormatText, nil
	case "json":
		return FormatJSON, nil
	case "markdown", "md":
		return FormatMarkdown, nil
	}
	return "", fmt.Errorf("%q is not one of text, json, markdown", s)
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
	}
	return s.writeText(w)
}

func (s *Summary) headline() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%d by the active probe)", count(s.Exchanges, "exchange"), s.ProbeChecks)
	if s.From != nil {
		fmt.Fprintf(&b, " from %s to %s", stamp(*s.From), stamp(*s.To))
	}
	fmt.Fprintf(&b, ", %d failed; NCSI probe requests from clients: %d", s.Failed, s.NCSIProbes)
	return b.String()
}

// count is "1 exchange", "2 exchanges".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

func stamp(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func (r RuleSummary) name() string {
	switch {
	case r.RuleID != "":
		return r.RuleID
	case r.Host != "":
		return r.Host
	}
	return "(no rule)"
}

func (r RuleSummary) outcomes() string {
	type kv struct {
		k string
		n int
	}
	var list []kv
	for k, n := range r.Outcomes {
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

func (r RuleSummary) area() string {
	if r.ServiceArea == "" {
		return "-"
	}
	return r.ServiceArea
}

func (r RuleSummary) required() string {
	switch {
	case r.RuleID == "":
		return "-"
	case r.Required:
		return "yes"
	}
	return "no"
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// describe is one failure on one line.
func (f *Failure) describe() string {
	var b strings.Builder
	b.WriteString(stamp(f.Time))
	b.WriteByte(' ')
	switch {
	case f.ProbeCheck != "":
		b.WriteString("probe " + f.ProbeCheck + " ")
	case f.Method != "":
		b.WriteString(f.Method + " ")
	}
	b.WriteString(f.Host)
	if f.Port != 0 {
		b.WriteString(":" + strconv.Itoa(f.Port))
	}
	if f.Route != "" {
		b.WriteString(" via " + f.Route)
	}
	b.WriteString(": " + f.Outcome)
	if f.Error != "" {
		b.WriteString(": " + f.Error)
	}
	return b.String()
}

func (f Finding) seen(lang rules.Language) string {
	var b strings.Builder
	b.WriteString(count(f.Exchanges, "exchange"))
	if len(f.Routes) > 0 {
		var rs []string
		for r, n := range f.Routes {
			rs = append(rs, fmt.Sprintf("%s %d", r, n))
		}
		slices.Sort(rs)
		b.WriteString(" (" + strings.Join(rs, ", "))
		if f.ProbeChecks > 0 {
			fmt.Fprintf(&b, "; %d by the active probe", f.ProbeChecks)
		}
		b.WriteString(")")
	}
	if len(f.Hosts) > 0 {
		b.WriteString("; hosts: " + hostList(f.Hosts, 8, lang))
	}
	if len(f.RuleIDs) > 0 {
		b.WriteString("; rules: " + strings.Join(f.RuleIDs, ", "))
	}
	return b.String()
}

func (s *Summary) lang() rules.Language {
	l, _ := rules.ParseLanguage(s.Language)
	return l
}

func (s *Summary) writeText(w io.Writer) error {
	var b strings.Builder
	b.WriteString("m365tap session report: " + s.headline() + "\n")
	if len(s.Rules) > 0 {
		b.WriteString("\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "RULE\tAREA\tREQUIRED\tOK\tFAILED\tOTHER OUTCOMES\tCAUSE")
		for _, r := range s.Rules {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\t%s\n", r.name(), r.area(), r.required(), r.OK, r.Failed, r.outcomes(), dash(r.CauseID))
		}
		tw.Flush()
		first := true
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		for _, r := range s.Rules {
			if r.LastFailure == nil {
				continue
			}
			if first {
				b.WriteString("\nLast failure per rule:\n")
				first = false
			}
			fmt.Fprintf(tw, "  %s\t%s\n", r.name(), r.LastFailure.describe())
		}
		tw.Flush()
	}
	b.WriteString("\n")
	if len(s.Verdict) == 0 {
		b.WriteString("Verdict: no failure seen that the article explains.\n")
	} else {
		b.WriteString("Verdict, most important first:\n")
		for i, f := range s.Verdict {
			fmt.Fprintf(&b, "%d. %s (article section %s): %s\n", i+1, f.CauseID, f.Section, f.Title)
			b.WriteString("   Seen: " + f.seen(s.lang()) + "\n")
			b.WriteString("   Remedy: " + f.Remedy + "\n")
			b.WriteString("   Reference: " + f.Reference + "\n")
		}
	}
	if len(s.Facts) > 0 {
		b.WriteString("\nAlso:\n")
		for _, f := range s.Facts {
			b.WriteString("- " + f.Text + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// mdEscaper keeps free text literal in Markdown: <local> in a netsh
// command is not an HTML tag, *.office.com starts no emphasis.
var mdEscaper = strings.NewReplacer("\\", "\\\\", "`", "\\`", "*", "\\*", "_", "\\_", "<", "\\<", "[", "\\[", "]", "\\]", "|", "\\|", "\n", " ")

func mdText(s string) string { return mdEscaper.Replace(s) }

// mdCell keeps a value inside its Markdown table cell.
func mdCell(s string) string { return mdEscaper.Replace(s) }

// mdCode shows an identifier (rule id, outcome, cause id) as code; "-" and
// "(no rule)" stay text.
func mdCode(s string) string {
	if s == "-" || strings.HasPrefix(s, "(") {
		return s
	}
	return "`" + strings.ReplaceAll(s, "|", "\\|") + "`"
}

func (s *Summary) writeMarkdown(w io.Writer) error {
	var b strings.Builder
	b.WriteString("# m365tap session report\n\n" + s.headline() + ".\n")
	if len(s.Rules) > 0 {
		b.WriteString("\n## Rules\n\n")
		b.WriteString("| Rule | Area | Required | OK | Failed | Other outcomes | Cause | Last failure |\n")
		b.WriteString("| --- | --- | --- | ---: | ---: | --- | --- | --- |\n")
		for _, r := range s.Rules {
			last := "-"
			if r.LastFailure != nil {
				last = r.LastFailure.describe()
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %d | %d | %s | %s | %s |\n", mdCode(r.name()), mdCell(r.area()), r.required(),
				r.OK, r.Failed, mdCode(r.outcomes()), mdCode(dash(r.CauseID)), mdCell(last))
		}
	}
	b.WriteString("\n## Verdict\n\n")
	if len(s.Verdict) == 0 {
		b.WriteString("No failure seen that the article explains.\n")
	}
	for i, f := range s.Verdict {
		fmt.Fprintf(&b, "%d. **`%s`** (article section %s): %s\n", i+1, f.CauseID, f.Section, mdText(f.Title))
		b.WriteString("   - Seen: " + mdText(f.seen(s.lang())) + "\n")
		b.WriteString("   - Remedy: " + mdText(f.Remedy) + "\n")
		b.WriteString("   - Reference: <" + f.Reference + ">\n")
	}
	if len(s.Facts) > 0 {
		b.WriteString("\n## Also\n\n")
		for _, f := range s.Facts {
			b.WriteString("- " + mdText(f.Text) + "\n")
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
