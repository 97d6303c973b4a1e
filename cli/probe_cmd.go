package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/m365tap/m365tap/config"
	"github.com/m365tap/m365tap/internal/ruleset"
	"github.com/m365tap/m365tap/logs"
	"github.com/m365tap/m365tap/messages"
	"github.com/m365tap/m365tap/proxy"
	"github.com/m365tap/m365tap/report"
	"github.com/m365tap/m365tap/rules"
)

// probeConcurrency bounds the checks in flight: enough to finish the
// hundred-odd endpoint checks in seconds, few enough not to look like a scan
// to the parent proxy or a firewall.
const probeConcurrency = 8

// NewProbeCommand returns `probe`, the active probe.
func NewProbeCommand(load func() (*config.Config, error)) *cobra.Command {
	var (
		format      = rulesFormat("table")
		caFile      string
		concurrency int
		hosts       []string
		fromLogs    []string
	)
	cmd := &cobra.Command{
		Use:   "probe",
		Short: "Check from here what Office and NCSI need: the NCSI probes and the required endpoints",
		Long: "probe does what Windows' NCSI does, and more, from where the tap runs: the NCSI web probes\n" +
			"(GET the probe URL, expect 200 and the probe text), the NCSI DNS probe (dns.msftncsi.com:\n" +
			"A 131.107.255.255, AAAA fd3e:4f5a:5b81::1, through dns.servers or the system resolver),\n" +
			"and a TCP and TLS handshake on port 443 with every host named (not by a wildcard) in the\n" +
			"required Common endpoint sets, and with the well-known hosts Office signs in and activates\n" +
			"with (rules/data/signin-hosts.txt, from Microsoft's \"Network requests in Office for Mac\"),\n" +
			"most of which the list names only by wildcard. Each check runs direct and, when parent.url is set, through\n" +
			"the parent proxy, with the tap's own dialer, timeouts and classification; each writes an\n" +
			"exchange event to log.file (standard output carries the table).\n\n" +
			"The exit status is 1 when a required check fails on the route the tap sends that traffic\n" +
			"on. Required: every endpoint check; the current NCSI web probe, where the IPv4 or the IPv6\n" +
			"probe passing is enough; the DNS probe (A or AAAA) only without a parent proxy.",
		Example: "  m365tap probe\n" +
			"  M365TAP_PARENT_URL=http://proxy.corp.example:3128 m365tap probe --format json",
		Args:         cobra.NoArgs,
		SilenceUsage: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			// --ca-file wins over probes.ca_file, which Load has checked.
			roots, err := cfg.ProbeRoots()
			if err != nil {
				return err
			}
			if caFile != "" {
				pem, err := os.ReadFile(caFile)
				if err != nil {
					return fmt.Errorf("probe: --ca-file: %w", err)
				}
				roots = x509.NewCertPool()
				if !roots.AppendCertsFromPEM(pem) {
					return fmt.Errorf("probe: --ca-file %s: no PEM certificate in it", caFile)
				}
			}
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runProbe(ctx, cfg, probeRun{roots: roots, concurrency: concurrency, json: format == "json", hosts: hosts, fromLogs: fromLogs},
				cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().Var(&format, "format", "output format: table or json")
	cmd.Flags().StringVar(&caFile, "ca-file", "", "PEM file of CA certificates to verify the TLS checks with instead of the system roots (probes.ca_file)")
	cmd.Flags().IntVar(&concurrency, "concurrency", probeConcurrency, "checks run at the same time")
	cmd.Flags().StringArrayVar(&fromLogs, "from-log", nil, "also check every required host a session's log (JSON lines, gzip allowed) saw, the wildcard sets' included (repeatable)")
	cmd.Flags().StringArrayVar(&hosts, "host", nil, "also check a TLS handshake with this host on port 443 (repeatable): a concrete name for a set the list names only by wildcard, such as a host seen in a session's log")
	return cmd
}

type probeRun struct {
	roots       *x509.CertPool
	concurrency int
	json        bool
	hosts       []string // --host: extra TLS targets
	fromLogs    []string // --from-log: sessions whose required hosts are checked too
}

// logHosts are the hosts of required endpoints that the sessions in files
// saw, excluding NCSI probes (checked on their own).
func logHosts(files []string) ([]string, error) {
	var a report.Aggregate
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, fmt.Errorf("probe: --from-log: %w", err)
		}
		_, err = a.Read(fh)
		fh.Close()
		if err != nil {
			return nil, fmt.Errorf("probe: --from-log %s: %w", f, err)
		}
	}
	var out []string
	for _, e := range a.Summary(rules.LangEN).Endpoints {
		if e.Host != "" && e.Required && !e.Probe {
			out = append(out, e.Host)
		}
	}
	return out, nil
}

func runProbe(ctx context.Context, cfg *config.Config, pr probeRun, stdout, stderr io.Writer) (err error) {
	set, _, err := ruleset.Load(cfg)
	if err != nil {
		return err
	}
	// Events go to log.file only: standard output carries the table.
	lg, err := logs.New(logs.Options{
		Level:      cfg.Log.Level,
		Format:     cfg.Log.Format,
		File:       cfg.Log.File,
		MaxSizeMB:  cfg.Log.MaxSizeMB,
		MaxBackups: cfg.Log.MaxBackups,
		MaxAgeDays: cfg.Log.MaxAgeDays,
		Compress:   cfg.Log.Compress,
	})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := lg.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	opts, err := tapOptions(cfg, set, lg.Events)
	if err != nil {
		return err
	}
	// With parent.pac, each check takes the way out the PAC names for its
	// host, as the PC's own traffic would.
	stopPAC, err := startPAC(ctx, cfg, &opts, lg.Events)
	if err != nil {
		return err
	}
	defer stopPAC()
	srv := proxy.New(opts)
	targets := srv.ProbeTargets()
	extra, err := logHosts(pr.fromLogs)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, t := range targets {
		if t.Kind == proxy.CheckTLS {
			seen[t.Host] = true
		}
	}
	// The well-known sign-in and activation hosts come before --host: the
	// list names most of them only by wildcard (*.officeapps.live.com).
	extra = append(extra, rules.SignInHosts()...)
	for _, h := range append(extra, pr.hosts...) {
		t := srv.HostTarget(h)
		if t.Host != "" && !seen[t.Host] {
			seen[t.Host] = true
			targets = append(targets, t)
		}
	}
	var checks []proxy.Check
	for _, t := range targets {
		for _, r := range t.Routes {
			checks = append(checks, t.Check(r, pr.roots))
		}
	}
	progress := newProgress(stderr, len(checks))
	results := srv.RunChecks(ctx, checks, pr.concurrency, progress.step)
	progress.done()
	if ctx.Err() != nil {
		return errors.New("probe: interrupted")
	}
	lang, _ := rules.ParseLanguage(cfg.Log.Language)
	pt := newProbeTable(targets, results, cfg.ParentURL() != nil, lang)
	if pr.json {
		err = rulesWriteJSON(stdout, pt)
	} else {
		err = pt.writeTable(stdout)
	}
	if err != nil {
		return err
	}
	if pt.RequiredFailed > 0 {
		return &exitError{code: 1, err: errors.New(messages.For(lang).N("probe.exit", pt.RequiredFailed, nil))}
	}
	return nil
}

// tapOptions are the tap's options that shape its way out: dialer,
// resolver, timeouts, rules and the tap's own parent credentials, shared by
// `run` and `probe`. It fails when parent.auth's keytab, credential cache
// or krb5.conf cannot be read.
func tapOptions(cfg *config.Config, set *rules.Set, events *zap.Logger) (proxy.Options, error) {
	auth, err := parentAuth(cfg)
	if err != nil {
		return proxy.Options{}, err
	}
	current := new(atomic.Pointer[rules.Set])
	current.Store(set)
	lang, _ := rules.ParseLanguage(cfg.Log.Language)
	return proxy.Options{
		Parent:                cfg.ParentURL(),
		Bypass:                cfg.Parent.Bypass,
		ProbesDirect:          cfg.Probes.Direct,
		DNSServers:            cfg.DNS.Servers,
		DNSTimeout:            cfg.DNS.Timeout,
		Hosts:                 cfg.HostOverrides(),
		ConnectTimeout:        cfg.Timeouts.Connect,
		ResponseHeaderTimeout: cfg.Timeouts.ResponseHeader,
		ExpressRoute:          cfg.Network.ExpressRoute,
		Language:              lang,
		RedactQuery:           cfg.Access.RedactQuery,
		Rules:                 current,
		Log:                   events,
		ParentAuth:            auth,
		ParentAuthClients:     cfg.Parent.Auth.Clients,
		ParentAuthNCSI:        cfg.Parent.Auth.NCSI,
		LogUsers:              cfg.Log.Users,
	}, nil
}

// startProbes runs the active probe through the running tap's server at
// once and then every interval, until stop is called; interval <= 0 runs
// nothing. Its TLS checks verify against roots (nil: the system's). Its
// events go to the tap's log like any exchange. stop waits for a run in
// progress to end, so every check is logged before shutdown.
func startProbes(ctx context.Context, srv *proxy.Server, interval time.Duration, roots *x509.CertPool) (stop func()) {
	if interval <= 0 {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			srv.RunChecks(ctx, srv.ProbeChecks(roots), probeConcurrency, nil)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// progress shows "probe: N/M checks" on a terminal's stderr while checks
// run, and nothing when stderr is a file or a pipe.
type progress struct {
	w     io.Writer
	total int
	n     int
	on    bool
}

func newProgress(w io.Writer, total int) *progress {
	return &progress{w: w, total: total, on: isTerminal(w)}
}

func (p *progress) step(proxy.Result) {
	p.n++
	if p.on {
		fmt.Fprintf(p.w, "\rprobe: %d/%d checks", p.n, p.total)
	}
}

func (p *progress) done() {
	if p.on {
		fmt.Fprint(p.w, "\r\x1b[K")
	}
}

// isTerminal reports whether w is a character device: a terminal (or, on
// Windows, a console), not a file or a pipe. NO_COLOR and TERM=dumb turn
// decoration off as well.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok || os.Getenv("TERM") == "dumb" || os.Getenv("NO_COLOR") != "" {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// probeTable is the probe's outcome: one row per target. Its JSON form is
// the output of --format json.
type probeTable struct {
	Parent         bool       `json:"parent"`
	Checks         int        `json:"checks"`
	RequiredFailed int        `json:"required_failed"`
	Passed         bool       `json:"passed"`
	Rows           []probeRow `json:"rows"`

	lang rules.Language
}

type probeRow struct {
	Check  string `json:"check"`
	Target string `json:"target"`
	RuleID string `json:"rule_id,omitempty"`
	// Required: "yes", "no", or "either" when a sibling passing is enough.
	Required string `json:"required"`
	Group    string `json:"group,omitempty"`
	// Route is the route the tap sends this traffic on.
	Route  string       `json:"route"`
	Direct *probeResult `json:"direct"`
	Parent *probeResult `json:"parent"`
	// Passed: the check passed on Route (for a grouped check: it or a sibling did).
	Passed       bool   `json:"passed"`
	CauseID      string `json:"cause_id,omitempty"`
	CauseTitle   string `json:"cause_title,omitempty"`
	requiredFail bool
}

type probeResult struct {
	Outcome        string  `json:"outcome"`
	Error          string  `json:"error,omitempty"`
	UpstreamStatus int     `json:"upstream_status,omitempty"`
	Answer         string  `json:"answer,omitempty"`
	DestIP         string  `json:"dest_ip,omitempty"`
	TLSVersion     string  `json:"tls_version,omitempty"`
	DurationMS     float64 `json:"duration_ms"`
	ok             bool
	cause          *rules.Cause
}

func toProbeResult(r proxy.Result) *probeResult {
	pr := &probeResult{Outcome: r.Outcome.String(), Error: r.Err, UpstreamStatus: r.UpstreamStatus, Answer: r.Answer,
		TLSVersion: r.TLSVersion, DurationMS: float64(r.Duration.Microseconds()) / 1000, ok: r.OK(), cause: r.Cause}
	if r.DestIP.IsValid() {
		pr.DestIP = r.DestIP.String()
	}
	return pr
}

func targetName(t proxy.ProbeTarget) string {
	switch t.Kind {
	case proxy.CheckWeb:
		host := t.Host
		if strings.Contains(host, ":") {
			host = "[" + host + "]"
		}
		if t.Port != 80 {
			host += fmt.Sprintf(":%d", t.Port)
		}
		return "http://" + host + t.Path
	case proxy.CheckDNSA:
		return t.Host + " A"
	case proxy.CheckDNSAAAA:
		return t.Host + " AAAA"
	}
	return fmt.Sprintf("%s:%d", t.Host, t.Port)
}

// newProbeTable pairs the results (in ProbeTargets × Routes order) with
// their targets and decides which required checks failed.
func newProbeTable(targets []proxy.ProbeTarget, results []proxy.Result, parent bool, lang rules.Language) *probeTable {
	pt := &probeTable{Parent: parent, Checks: len(results), lang: lang, Rows: []probeRow{}}
	i := 0
	for _, t := range targets {
		row := probeRow{Check: t.Kind.String(), Target: targetName(t), RuleID: t.RuleID, Group: t.Group, Route: t.Route.String()}
		switch {
		case !t.Required:
			row.Required = "no"
		case t.Group != "":
			row.Required = "either"
		default:
			row.Required = "yes"
		}
		var used, other *probeResult
		for _, r := range t.Routes {
			res := toProbeResult(results[i])
			i++
			if r == proxy.RouteParent {
				row.Parent = res
			} else {
				row.Direct = res
			}
			if r == t.Route {
				used = res
			} else {
				other = res
			}
		}
		row.Passed = used != nil && used.ok
		for _, r := range []*probeResult{used, other} {
			if r != nil && r.cause != nil {
				row.CauseID, row.CauseTitle = r.cause.ID.String(), messages.For(lang).CauseTitle(r.cause.ID.String())
				break
			}
		}
		pt.Rows = append(pt.Rows, row)
	}
	// A group passes when one member passed on its route.
	groupPassed := map[string]bool{}
	for _, r := range pt.Rows {
		if r.Group != "" && r.Passed {
			groupPassed[r.Group] = true
		}
	}
	for j := range pt.Rows {
		r := &pt.Rows[j]
		if r.Required == "no" || r.Passed {
			continue
		}
		if r.Group != "" {
			r.Passed = groupPassed[r.Group]
		}
		if !r.Passed {
			r.requiredFail = true
			pt.RequiredFailed++
		}
	}
	pt.Passed = pt.RequiredFailed == 0
	return pt
}

func (r *probeResult) cell(used, mark bool) string {
	if r == nil {
		return "-"
	}
	s := r.Outcome
	if used && mark {
		s += "*"
	}
	return s
}

func (pt *probeTable) writeTable(w io.Writer) error {
	p := messages.For(pt.lang)
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join([]string{p.T("col.check", nil), p.T("col.target", nil), p.T("col.set", nil), p.T("col.required", nil),
		p.T("col.direct", nil), p.T("col.via_parent", nil), p.T("col.cause", nil)}, "\t"))
	for _, r := range pt.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Check, r.Target, rulesDash(r.RuleID), p.T("probe.required."+r.Required, nil),
			r.Direct.cell(r.Route == "direct", pt.Parent), r.Parent.cell(r.Route == "parent", pt.Parent), rulesDash(r.CauseID))
	}
	tw.Flush()
	if pt.Parent {
		b.WriteString(p.T("probe.route_mark", nil) + "\n")
	}
	b.WriteString(p.T("probe.either_note", nil) + "\n")
	first := true
	for _, r := range pt.Rows {
		for _, res := range []struct {
			route string
			r     *probeResult
		}{{"direct", r.Direct}, {"parent", r.Parent}} {
			if res.r == nil || res.r.ok {
				continue
			}
			if first {
				b.WriteString("\n" + p.T("probe.failures", nil) + "\n")
				first = false
			}
			b.WriteString("  " + p.T("probe.failure", messages.Args{"Check": r.Check, "Target": r.Target,
				"Route": p.T("route."+res.route, nil), "Outcome": res.r.Outcome, "Error": res.r.Error}) + "\n")
		}
	}
	b.WriteString("\n")
	if pt.RequiredFailed == 0 {
		b.WriteString(p.T("probe.summary.passed", messages.Args{"Checks": pt.Checks}) + "\n")
	} else {
		b.WriteString(p.N("probe.summary.failed", pt.RequiredFailed, messages.Args{"Checks": pt.Checks}) + "\n")
		seen := map[string]bool{}
		for _, r := range pt.Rows {
			if !r.requiredFail || r.CauseID == "" || seen[r.CauseID] {
				continue
			}
			seen[r.CauseID] = true
			if causeByName(r.CauseID) == nil {
				continue
			}
			fmt.Fprintf(&b, "\n%s: %s\n  %s\n  %s\n", r.CauseID, p.CauseTitle(r.CauseID), p.CauseRemedy(r.CauseID),
				p.T("finding.reference", messages.Args{"Link": p.CauseLink(r.CauseID)}))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func causeByName(id string) *rules.Cause {
	c, err := rules.ParseCauseID(id)
	if err != nil {
		return nil
	}
	return rules.CauseByID(c)
}
