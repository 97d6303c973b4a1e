package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/m365tap/m365tap/rules"
)

// RulesEnv is what the rules commands need from the rest of the program.
// Every field may be nil; each says what nil means.
type RulesEnv struct {
	// Load returns the rules in force and the catalogue they were built
	// from. nil: the embedded catalogue and the NCSI probes, no user rules.
	Load func() (*rules.Set, *rules.Catalogue, error)
	// ExpressRoute reports network.express_route. nil: false.
	ExpressRoute func() bool
	// Language selects the language of cause titles. nil: English.
	Language func() rules.Language
	// CataloguePath is the file `rules update` writes and the tap loads
	// instead of the embedded snapshot. nil or "": update refuses to run.
	CataloguePath func() string
}

func (env RulesEnv) load() (*rules.Set, *rules.Catalogue, error) {
	if env.Load != nil {
		return env.Load()
	}
	cat, err := rules.EmbeddedCatalogue()
	if err != nil {
		return nil, nil, err
	}
	set, err := rules.Compile(cat, nil)
	return set, cat, err
}

func (env RulesEnv) expressRoute() bool { return env.ExpressRoute != nil && env.ExpressRoute() }

func (env RulesEnv) language() rules.Language {
	if env.Language == nil {
		return rules.LangEN
	}
	return env.Language()
}

// NewRulesCommand returns `rules` with its list, match and update subcommands.
func NewRulesCommand(env RulesEnv) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rules",
		Short: "Inspect and update the endpoint catalogue and rules",
		Long: "The rules are Microsoft's endpoint list (embedded, or a newer copy stored by\n" +
			"'rules update'), the built-in Windows NCSI probes, and user rules from the\n" +
			"configuration. Every exchange is matched against them.",
	}
	cmd.AddCommand(newRulesListCmd(env), newRulesMatchCmd(env), newRulesUpdateCmd(env))
	return cmd
}

// rulesFormat is a --format value restricted to table and json, so a typo is
// an error at flag parsing rather than a silent fallback.
type rulesFormat string

func (f *rulesFormat) String() string { return string(*f) }
func (f *rulesFormat) Type() string   { return "table|json" }
func (f *rulesFormat) Set(s string) error {
	if s != "table" && s != "json" {
		return fmt.Errorf("%q is not one of table, json", s)
	}
	*f = rulesFormat(s)
	return nil
}

func rulesYesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func rulesDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// rulePorts renders a rule's TCP ports for a table.
func rulePorts(r *rules.Rule) string {
	switch {
	case len(r.TCPPorts) > 0:
		return rules.FormatPorts(r.TCPPorts)
	case len(r.UDPPorts) > 0:
		// Teams media (set 11): the tap never sees it.
		return "none (udp " + rules.FormatPorts(r.UDPPorts) + ")"
	}
	return "any"
}

// ruleJSON is the JSON shape of a rule in command output: snake_case like
// the event fields.
type ruleJSON struct {
	ID                     string         `json:"id"`
	Source                 string         `json:"source"`
	Kind                   string         `json:"kind"`
	ServiceArea            string         `json:"service_area"`
	ServiceAreaDisplayName string         `json:"service_area_display_name,omitempty"`
	Required               bool           `json:"required"`
	ExpressRoute           bool           `json:"express_route"`
	Category               string         `json:"category,omitempty"`
	Notes                  string         `json:"notes,omitempty"`
	URLs                   []string       `json:"urls"`
	TCPPorts               []uint16       `json:"tcp_ports"`
	UDPPorts               []uint16       `json:"udp_ports,omitempty"`
	Probe                  *ruleProbeJSON `json:"probe,omitempty"`
}

type ruleProbeJSON struct {
	Path    string `json:"path"`
	Content string `json:"content"`
}

func toRuleJSON(r *rules.Rule) ruleJSON {
	j := ruleJSON{
		ID:                     r.ID,
		Source:                 r.Source.String(),
		Kind:                   rules.KindOf(r).String(),
		ServiceArea:            r.ServiceArea,
		ServiceAreaDisplayName: r.ServiceAreaDisplayName,
		Required:               r.Required,
		ExpressRoute:           r.ExpressRoute,
		Category:               r.Category,
		Notes:                  r.Notes,
		URLs:                   r.URLs,
		TCPPorts:               r.TCPPorts,
		UDPPorts:               r.UDPPorts,
	}
	if j.URLs == nil {
		j.URLs = []string{}
	}
	if j.TCPPorts == nil {
		j.TCPPorts = []uint16{}
	}
	if r.Probe != nil {
		j.Probe = &ruleProbeJSON{Path: r.Probe.Path, Content: r.Probe.Content}
	}
	return j
}

func rulesWriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false) // URLs and "->" stay readable
	return enc.Encode(v)
}

func newRulesListCmd(env RulesEnv) *cobra.Command {
	var (
		required bool
		area     string
		format   = rulesFormat("table")
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the rules in force",
		Example: "  m365tap rules list --required --service-area Common\n" +
			"  m365tap rules list --format json",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			set, _, err := env.load()
			if err != nil {
				return fmt.Errorf("loading rules: %w", err)
			}
			var shown []*rules.Rule
			for _, r := range set.Rules() {
				if required && !r.Required || area != "" && !strings.EqualFold(r.ServiceArea, area) {
					continue
				}
				shown = append(shown, r)
			}
			out := cmd.OutOrStdout()
			if format == "json" {
				doc := struct {
					Version string     `json:"version"`
					Rules   []ruleJSON `json:"rules"`
				}{Version: set.Version(), Rules: []ruleJSON{}}
				for _, r := range shown {
					doc.Rules = append(doc.Rules, toRuleJSON(r))
				}
				return rulesWriteJSON(out, doc)
			}
			fmt.Fprintf(out, "rules %s: %d of %d shown\n", set.Version(), len(shown), len(set.Rules()))
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tSOURCE\tAREA\tREQUIRED\tER\tCATEGORY\tTCP\tURLS")
			for _, r := range shown {
				// One URL per line: set 56 alone has 25.
				first := "-"
				if len(r.URLs) > 0 {
					first = r.URLs[0]
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Source, rulesDash(r.ServiceArea),
					rulesYesNo(r.Required), rulesYesNo(r.ExpressRoute), rulesDash(r.Category), rulePorts(r), first)
				for _, u := range r.URLs[min(1, len(r.URLs)):] {
					fmt.Fprintf(tw, "\t\t\t\t\t\t\t%s\n", u)
				}
				if r.Probe != nil {
					fmt.Fprintf(tw, "\t\t\t\t\t\t\tprobe: GET %s expects %q\n", r.Probe.Path, r.Probe.Content)
				}
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&required, "required", false, "only rules marked required")
	cmd.Flags().StringVar(&area, "service-area", "", "only this service area (Common, Exchange, SharePoint, Skype, NCSI, …)")
	cmd.Flags().Var(&format, "format", "output format: table or json")
	return cmd
}

// parseMatchTarget accepts HOST, HOST:PORT, [IPv6]:PORT or a URL, so that a line
// pasted from a browser or a log works as is. Port 0 means "any port".
func parseMatchTarget(arg string) (host string, port int, err error) {
	if strings.Contains(arg, "://") {
		u, err := url.Parse(arg)
		if err != nil {
			return "", 0, fmt.Errorf("%q is not a URL: %w", arg, err)
		}
		host = u.Hostname()
		p := u.Port()
		switch {
		case p != "":
		case u.Scheme == "http":
			p = "80"
		case u.Scheme == "https":
			p = "443"
		default:
			return "", 0, fmt.Errorf("%q: no port, and scheme %q has no default", arg, u.Scheme)
		}
		port, _ = strconv.Atoi(p)
	} else if h, p, splitErr := net.SplitHostPort(arg); splitErr == nil {
		host = h
		port, err = strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return "", 0, fmt.Errorf("%q: port %q is not 1-65535", arg, p)
		}
	} else {
		host = strings.TrimSuffix(strings.TrimPrefix(arg, "["), "]")
	}
	if host == "" {
		return "", 0, fmt.Errorf("%q has no host", arg)
	}
	return host, port, nil
}

func newRulesMatchCmd(env RulesEnv) *cobra.Command {
	format := rulesFormat("table")
	cmd := &cobra.Command{
		Use:   "match HOST[:PORT]",
		Short: "Show which rules a host matches and the cause each failure would get",
		Long: "match shows the winning rule, every rule that matched, and for every failure\n" +
			"outcome the article cause the event would carry, under the configured\n" +
			"network.express_route and log.language. Without a port, port checks are skipped.",
		Example:      "  m365tap rules match login.microsoftonline.com:443\n  m365tap rules match http://www.msftconnecttest.com/connecttest.txt",
		Args:         cobra.ExactArgs(1),
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			host, port, err := parseMatchTarget(args[0])
			if err != nil {
				return err
			}
			set, _, err := env.load()
			if err != nil {
				return fmt.Errorf("loading rules: %w", err)
			}
			er, lang := env.expressRoute(), env.language()
			m := set.Match(host, port)

			type matchJSON struct {
				ruleJSON
				Pattern string `json:"pattern"`
			}
			type outcomeJSON struct {
				Outcome    string `json:"outcome"`
				CauseID    string `json:"cause_id,omitempty"`
				CauseRule  string `json:"cause_rule,omitempty"`
				CauseTitle string `json:"cause_title,omitempty"`
			}
			doc := struct {
				Host         string        `json:"host"`
				Port         int           `json:"port,omitempty"`
				Version      string        `json:"version"`
				ExpressRoute bool          `json:"express_route"`
				Winner       *string       `json:"winner"`
				Matches      []matchJSON   `json:"matches"`
				Truncated    bool          `json:"truncated,omitempty"`
				Outcomes     []outcomeJSON `json:"outcomes"`
			}{Host: host, Port: port, Version: set.Version(), ExpressRoute: er, Truncated: m.Truncated(), Matches: []matchJSON{}}
			if m.Rule != nil {
				doc.Winner = &m.Rule.ID
			}
			for i, r := range m.All() {
				doc.Matches = append(doc.Matches, matchJSON{toRuleJSON(r), m.Patterns()[i]})
			}
			for _, o := range rules.Outcomes() {
				if !o.Failed() {
					continue
				}
				oj := outcomeJSON{Outcome: o.String()}
				if c, r := m.Cause(o, er); c != nil {
					oj.CauseID, oj.CauseTitle = c.ID.String(), c.Title(lang)
					if r != nil {
						oj.CauseRule = r.ID
					}
				}
				doc.Outcomes = append(doc.Outcomes, oj)
			}
			out := cmd.OutOrStdout()
			if format == "json" {
				return rulesWriteJSON(out, doc)
			}

			portText := "any (not checked)"
			if port != 0 {
				portText = strconv.Itoa(port)
			}
			fmt.Fprintf(out, "host:    %s\nport:    %s\nrules:   %s\n", host, portText, set.Version())
			if m.Rule == nil {
				fmt.Fprintln(out, "winner:  none (no rule matches)")
			} else {
				r := m.Rule
				fmt.Fprintf(out, "winner:  %s (%s, %s, required %s, ExpressRoute %s) by %s\n",
					r.ID, r.Source, rulesDash(r.ServiceArea), rulesYesNo(r.Required), rulesYesNo(r.ExpressRoute), m.Pattern)
				fmt.Fprintln(out)
				tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
				fmt.Fprintln(tw, "MATCHED\tSOURCE\tAREA\tREQUIRED\tER\tKIND\tTCP\tPATTERN")
				for i, r := range m.All() {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Source, rulesDash(r.ServiceArea),
						rulesYesNo(r.Required), rulesYesNo(r.ExpressRoute), rules.KindOf(r), rulePorts(r), m.Patterns()[i])
				}
				if err := tw.Flush(); err != nil {
					return err
				}
				if m.Truncated() {
					fmt.Fprintf(out, "(more than %d rules matched; the least specific are not shown)\n", rules.MaxMatches)
				}
				if r.Probe != nil {
					fmt.Fprintf(out, "probe:   GET %s must answer 200 with a body containing %q\n", r.Probe.Path, r.Probe.Content)
				}
			}
			fmt.Fprintf(out, "\nif the exchange failed (network.express_route: %t):\n", er)
			tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "OUTCOME\tCAUSE\tBY RULE\tTITLE")
			for _, oj := range doc.Outcomes {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", oj.Outcome, rulesDash(oj.CauseID), rulesDash(oj.CauseRule), rulesDash(oj.CauseTitle))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().Var(&format, "format", "output format: table or json")
	return cmd
}

const (
	// catalogueFetchTimeout bounds the whole download; the official answer is about
	// 30 KB, so a minute is generous even on a slow link.
	catalogueFetchTimeout = time.Minute
	// maxCatalogueBytes refuses answers far larger than any real catalogue
	// (the largest seen is under 60 KB) before they are parsed.
	maxCatalogueBytes = 8 << 20
)

// fetchCatalogue reads from a file, "-" (standard input) or an http(s) URL.
// The HTTP client honours HTTPS_PROXY and friends, as a command run on a
// corporate network needs to.
func fetchCatalogue(ctx context.Context, from string, stdin io.Reader) ([]byte, error) {
	var r io.Reader
	switch {
	case from == "-":
		r = stdin
	case strings.HasPrefix(from, "http://") || strings.HasPrefix(from, "https://"):
		ctx, cancel := context.WithTimeout(ctx, catalogueFetchTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, from, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %s", from, resp.Status)
		}
		r = resp.Body
	default:
		f, err := os.Open(from)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxCatalogueBytes+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxCatalogueBytes {
		return nil, fmt.Errorf("%s is larger than %d bytes; not an endpoint list", from, maxCatalogueBytes)
	}
	return data, nil
}

// writeCatalogueFile replaces path with data so that a reader (the tap
// reloading) sees the old file or the new one, never a partial write:
// write a temporary file in the same directory, sync it, then rename.
func writeCatalogueFile(path string, data []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	// CreateTemp makes the file 0600; the catalogue is public data that the
	// tap may read as another user.
	if err = os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	if err = os.Rename(tmp, path); err != nil {
		return err
	}
	// Persist the rename itself; not every platform can sync a directory,
	// and the file is already complete either way.
	if d, derr := os.Open(dir); derr == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}

func newRulesUpdateCmd(env RulesEnv) *cobra.Command {
	var from string
	cmd := &cobra.Command{
		Use:   "update --from FILE|URL",
		Short: "Validate a newer copy of Microsoft's endpoint list and store it",
		Long: "update reads the web service's JSON (endpoints method) from a file, '-' for\n" +
			"standard input, or an http(s) URL, validates it, and stores it at the\n" +
			"configured catalogue path, which the tap then loads instead of the embedded\n" +
			"snapshot. It prints the new version and what changed. A file that does not\n" +
			"validate is never stored: the previous catalogue stays in place.",
		Example:      "  m365tap rules update --from 'https://endpoints.office.com/endpoints/worldwide?clientrequestid=b10c5ed1-bad1-445f-b386-b919946339a7'",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path := ""
			if env.CataloguePath != nil {
				path = env.CataloguePath()
			}
			if path == "" {
				return errors.New("no catalogue path is configured; set rules.catalogue")
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			data, err := fetchCatalogue(ctx, from, cmd.InOrStdin())
			if err != nil {
				return fmt.Errorf("reading the new catalogue: %w", err)
			}
			next, err := rules.ParseCatalogue(data)
			if err != nil {
				return fmt.Errorf("refusing the new catalogue, %s is unchanged: %w", path, err)
			}
			// The matcher must accept it too, before it replaces anything.
			if _, err := rules.Compile(next, nil); err != nil {
				return fmt.Errorf("refusing the new catalogue, %s is unchanged: %w", path, err)
			}

			out := cmd.OutOrStdout()
			prev, stored := currentCatalogue(path, out)
			if stored && prev.SHA256 == next.SHA256 {
				fmt.Fprintf(out, "catalogue unchanged: %s (%d endpoint sets) at %s; nothing written\n", next.Version, len(next.Endpoints), path)
				return nil
			}
			if err := writeCatalogueFile(path, data); err != nil {
				return fmt.Errorf("writing %s: %w", path, err)
			}
			fmt.Fprintf(out, "catalogue updated: %s -> %s (%d endpoint sets), stored at %s\n",
				prev.Version, next.Version, len(next.Endpoints), path)
			if stored {
				fmt.Fprintf(out, "changes against the stored catalogue:\n")
			} else {
				fmt.Fprintf(out, "changes against the embedded snapshot:\n")
			}
			printCatalogueDiff(out, rules.Diff(prev, next))
			return nil
		},
	}
	cmd.Flags().StringVar(&from, "from", "", "file, '-' or http(s) URL of the new endpoint list (required)")
	_ = cmd.MarkFlagRequired("from")
	return cmd
}

// currentCatalogue is what an update replaces: the stored file if it is
// valid (stored is true), otherwise the embedded snapshot the tap falls
// back to.
func currentCatalogue(path string, out io.Writer) (c *rules.Catalogue, stored bool) {
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		c, err := rules.ParseCatalogue(data)
		if err == nil {
			return c, true
		}
		fmt.Fprintf(out, "note: the stored catalogue %s is not valid and will be replaced (%v)\n", path, err)
	case !errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(out, "note: cannot read the stored catalogue: %v\n", err)
	}
	c, err = rules.EmbeddedCatalogue()
	if err != nil {
		panic(err) // the embedded snapshot is checked by the rules tests
	}
	return c, false
}

func printCatalogueDiff(out io.Writer, d rules.CatalogueDiff) {
	if d.Empty() {
		fmt.Fprintln(out, "  no endpoint set changed (only formatting or IP ranges)")
		return
	}
	ints := func(ids []int) string {
		var b bytes.Buffer
		for i, id := range ids {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(strconv.Itoa(id))
		}
		return b.String()
	}
	if len(d.Added) > 0 {
		fmt.Fprintf(out, "  ids added: %s\n", ints(d.Added))
	}
	if len(d.Removed) > 0 {
		fmt.Fprintf(out, "  ids removed: %s\n", ints(d.Removed))
	}
	for _, c := range d.Changed {
		if len(c.URLsAdded) > 0 {
			fmt.Fprintf(out, "  id %d: urls added: %s\n", c.ID, strings.Join(c.URLsAdded, ", "))
		}
		if len(c.URLsRemoved) > 0 {
			fmt.Fprintf(out, "  id %d: urls removed: %s\n", c.ID, strings.Join(c.URLsRemoved, ", "))
		}
		for _, f := range c.Fields {
			fmt.Fprintf(out, "  id %d: %s %s -> %s\n", c.ID, f.Field, rulesDash(f.Old), rulesDash(f.New))
		}
	}
}
