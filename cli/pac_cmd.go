package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/m365tap/m365tap/config"
	"github.com/m365tap/m365tap/internal/ruleset"
	"github.com/m365tap/m365tap/messages"
	"github.com/m365tap/m365tap/pac"
	"github.com/m365tap/m365tap/rules"
)

// NewPACCommand is `m365tap pac`: what the PC's PAC file decides.
func NewPACCommand(load func() (*config.Config, error)) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "pac",
		Short: "Evaluate the PC's proxy auto-config (PAC) file",
	}
	var o pacTestOptions
	test := &cobra.Command{
		Use:   "test [URL...]",
		Short: "Print the PAC's decision for each URL (--required: every required Microsoft 365 endpoint and the NCSI probes, with findings)",
		Long: "Evaluates the PAC named by parent.pac (or --pac) as Windows does: a CONNECT target as https://host/,\n" +
			"a plain request with its full URL, myIpAddress() as the client PC's address (--client or pac.my_ip),\n" +
			"DNS through the tap's resolver (hosts, dns.servers), dates and times in pac.timezone.\n" +
			"A bare host name is taken as https://host/.",
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := load()
			if err != nil {
				return err
			}
			return runPACTest(cmd.Context(), cfg, o, args, cmd.OutOrStdout())
		},
	}
	test.Flags().StringVar(&o.location, "pac", "", "PAC file path or http(s) URL (default parent.pac)")
	test.Flags().StringVar(&o.client, "client", "", "the client PC's address, what myIpAddress() answers (default pac.my_ip, else 127.0.0.1)")
	test.Flags().BoolVar(&o.required, "required", false, "also evaluate every required Microsoft 365 endpoint and the NCSI probe URLs, and report findings")
	test.Flags().StringVar(&o.format, "format", "text", "output: text or json")
	cmd.AddCommand(test)
	return cmd
}

type pacTestOptions struct {
	location string
	client   string
	required bool
	format   string
}

// pacTestReport is the outcome of `pac test`; its JSON form is the output
// of --format json.
type pacTestReport struct {
	PAC      string       `json:"pac"`
	SHA256   string       `json:"sha256"`
	Size     int          `json:"size"`
	Func     string       `json:"function"`
	MyIP     string       `json:"my_ip"`
	Timezone string       `json:"timezone"`
	Rows     []pacRow     `json:"rows"`
	Findings []pacFinding `json:"findings"`
}

type pacRow struct {
	URL string `json:"url"`
	// What is a URL given on the command line ("url"), a required endpoint
	// ("required", with its set) or an NCSI probe ("ncsi").
	What         string  `json:"what"`
	RuleID       string  `json:"rule_id,omitempty"`
	ExpressRoute *bool   `json:"express_route,omitempty"`
	Answer       string  `json:"answer,omitempty"`
	Route        string  `json:"route"`
	Proxy        string  `json:"proxy,omitempty"`
	Error        string  `json:"error,omitempty"`
	AnswerError  string  `json:"answer_error,omitempty"`
	MS           float64 `json:"ms"`
	hop          pac.Hop
	failed       bool
}

// The route column's values; also the JSON's.
const (
	pacRouteDirect      = "direct"
	pacRouteProxy       = "proxy"
	pacRouteUnsupported = "unsupported"
	pacRouteFailed      = "failed"
)

type pacFinding struct {
	ID    string `json:"id"`
	Cause string `json:"cause"`
	Text  string `json:"text"`
}

func runPACTest(ctx context.Context, cfg *config.Config, o pacTestOptions, args []string, stdout io.Writer) error {
	lang, _ := rules.ParseLanguage(cfg.Log.Language)
	p := messages.For(lang)
	if o.format != "text" && o.format != "json" {
		return fmt.Errorf("pac test: --format %q: want text or json", o.format)
	}
	location := o.location
	if location == "" {
		location = cfg.Parent.PAC
	}
	if location == "" {
		return errors.New(p.T("pac.error.no_pac", nil))
	}
	if len(args) == 0 && !o.required {
		return errors.New(p.T("pac.error.no_urls", nil))
	}
	var client netip.Addr
	if o.client != "" {
		a, err := netip.ParseAddr(o.client)
		if err != nil {
			return fmt.Errorf("pac test: --client %q: want an IP address such as 192.0.2.15", o.client)
		}
		client = a.Unmap()
	}

	l, err := pac.NewLoader(location, nil)
	if err != nil {
		return err
	}
	script, err := l.Load(ctx)
	if err != nil {
		return err
	}
	opts := pac.Options{
		Resolver:    newTapResolver(cfg),
		Location:    cfg.PACLocation(),
		MyIP:        cfg.PACMyIP(),
		EvalTimeout: cfg.PAC.EvalTimeout,
		CallTimeout: min(cfg.DNS.Timeout, cfg.PAC.EvalTimeout),
		CacheTTL:    -1,
	}
	e, err := pac.New(script, opts)
	if err != nil {
		return err
	}

	rep := &pacTestReport{PAC: l.Location(), SHA256: script.SHA256, Size: script.Size, Func: e.Func(),
		Timezone: cfg.PAC.Timezone, Rows: []pacRow{}, Findings: []pacFinding{}}
	switch {
	case opts.MyIP.IsValid():
		rep.MyIP = opts.MyIP.String()
	case client.Is4():
		rep.MyIP = client.String()
	default:
		rep.MyIP = "127.0.0.1"
	}
	for _, raw := range args {
		tg, err := pacTarget(raw)
		if err != nil {
			return fmt.Errorf("pac test: %q: %w", raw, err)
		}
		rep.Rows = append(rep.Rows, evalRow(ctx, e, tg, client, pacRow{What: "url"}))
	}
	if o.required {
		set, _, err := ruleset.Load(cfg)
		if err != nil {
			return err
		}
		for _, r := range requiredTargets(set) {
			rep.Rows = append(rep.Rows, evalRow(ctx, e, r.target, client, r.row))
		}
		rep.Findings = pacFindings(rep.Rows, cfg.Network.ExpressRoute, p)
	}
	if o.format == "json" {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return rep.writeText(stdout, p)
}

// pacTarget reads a URL as Windows would hand it to the PAC: https is a
// CONNECT (https://host[:port]/), http a plain request with its full URL.
func pacTarget(raw string) (pac.Target, error) {
	if !strings.Contains(raw, "://") {
		raw = "https://" + raw + "/"
	}
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return pac.Target{}, errors.New("want a URL such as https://login.microsoftonline.com/ or a host name")
	}
	tg := pac.Target{Scheme: u.Scheme, Host: u.Hostname()}
	if u.Scheme != "http" && u.Scheme != "https" {
		return pac.Target{}, errors.New("want an http or https URL")
	}
	if p := u.Port(); p != "" {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return pac.Target{}, errors.New("want a port 1..65535")
		}
		tg.Port = uint16(n)
	}
	if u.Scheme == "http" {
		tg.URL = u
	}
	return tg, nil
}

func evalRow(ctx context.Context, e *pac.Engine, tg pac.Target, client netip.Addr, row pacRow) pacRow {
	tg.Client = client
	d, err := e.Evaluate(ctx, tg)
	row.URL = d.URL
	if row.URL == "" {
		row.URL = pac.URLFor(tg)
	}
	row.MS = float64(d.Elapsed.Microseconds()) / 1000
	row.Answer = d.Answer
	switch {
	case err != nil:
		row.Route, row.Error, row.failed = pacRouteFailed, err.Error(), true
	case len(d.Hops) == 0:
		row.Route, row.failed = pacRouteFailed, true
		row.Error = d.AnswerErr.Error()
	default:
		row.hop = d.Hops[0]
		switch {
		case row.hop.Kind == pac.Direct:
			row.Route = pacRouteDirect
		case row.hop.Kind.Supported():
			row.Route, row.Proxy = pacRouteProxy, row.hop.Addr()
		default:
			row.Route, row.Proxy = pacRouteUnsupported, row.hop.String()
		}
		if d.AnswerErr != nil {
			row.AnswerError = d.AnswerErr.Error()
		}
	}
	return row
}

type requiredTarget struct {
	target pac.Target
	row    pacRow
}

// requiredTargets are the NCSI probe URLs and every concrete host of the
// required rules (wildcards name no host to ask about), on port 443 when
// the rule allows it, else on its first port.
func requiredTargets(set *rules.Set) []requiredTarget {
	var probes, endpoints []requiredTarget
	seen := map[string]bool{}
	for _, r := range set.Rules() {
		if r.Probe != nil {
			for _, h := range r.URLs {
				if strings.Contains(h, "*") {
					continue
				}
				u := &url.URL{Scheme: "http", Host: h, Path: r.Probe.Path}
				if seen[u.String()] {
					continue
				}
				seen[u.String()] = true
				probes = append(probes, requiredTarget{pac.Target{Scheme: "http", Host: h, URL: u}, pacRow{What: "ncsi", RuleID: r.ID}})
			}
			continue
		}
		if !r.Required {
			continue
		}
		scheme, port := "https", uint16(443)
		if len(r.TCPPorts) > 0 && !slices.Contains(r.TCPPorts, 443) {
			port = r.TCPPorts[0]
			if port == 80 {
				scheme = "http"
			}
		}
		for _, h := range r.URLs {
			if strings.Contains(h, "*") || seen[h] {
				continue
			}
			seen[h] = true
			tg := pac.Target{Scheme: scheme, Host: h, Port: port}
			if scheme == "http" {
				tg.URL = &url.URL{Scheme: "http", Host: net.JoinHostPort(h, strconv.Itoa(int(port))), Path: "/"}
				if port == 80 {
					tg.URL.Host = h
				}
			}
			er := r.ExpressRoute
			endpoints = append(endpoints, requiredTarget{tg, pacRow{What: "required", RuleID: r.ID, ExpressRoute: &er}})
		}
	}
	slices.SortStableFunc(endpoints, func(a, b requiredTarget) int { return strings.Compare(a.target.Host, b.target.Host) })
	return append(probes, endpoints...)
}

// pacFindings are the PAC's own problems that the article's causes
// explain: the NCSI probe sent to a proxy while Office goes direct,
// ExpressRoute "No" sets sent to a proxy, evaluation failures, and hops
// the tap cannot take.
func pacFindings(rows []pacRow, expressRoute bool, p *messages.Printer) []pacFinding {
	var out []pacFinding
	directRequired := 0
	var failed, unsupported, badAnswer []string
	erProxy := map[string]bool{}
	for _, r := range rows {
		switch {
		case r.failed:
			failed = append(failed, hostOf(r.URL))
			continue
		case r.Route == pacRouteUnsupported:
			unsupported = append(unsupported, hostOf(r.URL)+" ("+r.Proxy+")")
		}
		if r.AnswerError != "" {
			badAnswer = append(badAnswer, hostOf(r.URL))
		}
		if r.What == "required" && r.Route == pacRouteDirect {
			directRequired++
		}
		if r.What == "required" && r.ExpressRoute != nil && !*r.ExpressRoute && r.Route != pacRouteDirect {
			erProxy[r.RuleID] = true
		}
	}
	// One finding per proxy the probes go to, naming its probe URLs.
	var proxies []string
	probes := map[string][]string{}
	for _, r := range rows {
		if r.What == "ncsi" && r.Route == pacRouteProxy && directRequired > 0 {
			if probes[r.Proxy] == nil {
				proxies = append(proxies, r.Proxy)
			}
			probes[r.Proxy] = append(probes[r.Proxy], r.URL)
		}
	}
	for _, proxy := range proxies {
		out = append(out, pacFinding{ID: "ncsi-proxy-office-direct", Cause: "ncsi-no-internet",
			Text: p.N("pac.finding.ncsi_proxy", len(probes[proxy]), messages.Args{"URLs": p.List(probes[proxy], 4), "Proxy": proxy, "Direct": directRequired})})
	}
	if len(erProxy) > 0 {
		ids := make([]string, 0, len(erProxy))
		for id := range erProxy {
			ids = append(ids, id)
		}
		slices.SortFunc(ids, func(a, b string) int {
			x, _ := strconv.Atoi(a)
			y, _ := strconv.Atoi(b)
			if x != y {
				return x - y
			}
			return strings.Compare(a, b)
		})
		id := "pac.finding.er_proxy"
		if expressRoute {
			id = "pac.finding.er_proxy_er"
		}
		out = append(out, pacFinding{ID: "expressroute-no-to-proxy", Cause: "expressroute-path",
			Text: p.N(id, len(ids), messages.Args{"Sets": p.List(ids, 20)})})
	}
	if len(failed) > 0 {
		out = append(out, pacFinding{ID: "evaluation-failed", Cause: "device-proxy-settings",
			Text: p.N("pac.finding.failed", len(failed), messages.Args{"Hosts": p.List(failed, 10)})})
	}
	if len(unsupported) > 0 {
		out = append(out, pacFinding{ID: "unsupported-hop", Cause: "device-proxy-settings",
			Text: p.N("pac.finding.unsupported", len(unsupported), messages.Args{"Hosts": p.List(unsupported, 10)})})
	}
	if len(badAnswer) > 0 {
		out = append(out, pacFinding{ID: "answer-unreadable", Cause: "device-proxy-settings",
			Text: p.N("pac.finding.bad_answer", len(badAnswer), messages.Args{"Hosts": p.List(badAnswer, 10)})})
	}
	return out
}

func hostOf(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		return u.Host
	}
	return raw
}

func (rep *pacTestReport) writeText(w io.Writer, p *messages.Printer) error {
	fmt.Fprintln(w, p.T("pac.header", messages.Args{"PAC": rep.PAC, "SHA": rep.SHA256[:12], "Size": rep.Size,
		"Func": rep.Func, "MyIP": rep.MyIP, "Zone": rep.Timezone}))
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.T("pac.col.url", nil), p.T("pac.col.what", nil),
		p.T("pac.col.route", nil), p.T("pac.col.answer", nil), p.T("pac.col.ms", nil))
	failed := 0
	for _, r := range rep.Rows {
		var route string
		switch r.Route {
		case pacRouteDirect:
			route = p.T("pac.route.direct", nil)
		case pacRouteProxy:
			route = p.T("pac.route.proxy", messages.Args{"Proxy": r.Proxy})
		case pacRouteUnsupported:
			route = p.T("pac.route.unsupported", messages.Args{"Hop": r.Proxy})
		default:
			failed++
			route = p.T("pac.route.failed", nil)
		}
		what := p.T("pac.what."+r.What, messages.Args{"Rule": r.RuleID})
		answer := r.Answer
		if r.Error != "" {
			answer = r.Error
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%.1f\n", r.URL, what, route, clip(answer, 100), r.MS)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, p.N("pac.summary", len(rep.Rows), messages.Args{"Failed": failed}))
	if len(rep.Findings) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, p.T("pac.findings", nil))
		for _, f := range rep.Findings {
			fmt.Fprintf(w, "- %s: %s\n", f.Cause, f.Text)
		}
	}
	_, err := fmt.Fprint(w)
	return err
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// tapResolver is the tap's resolver for the PAC's DNS helpers: hosts
// overrides first, then dns.servers (or the system's resolver).
type tapResolver struct {
	hosts map[string]netip.Addr
	r     *net.Resolver
}

func newTapResolver(cfg *config.Config) *tapResolver {
	t := &tapResolver{hosts: cfg.HostOverrides(), r: net.DefaultResolver}
	if servers := cfg.DNS.Servers; len(servers) > 0 {
		t.r = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			var d net.Dialer
			var err error
			for _, s := range servers {
				var c net.Conn
				if c, err = d.DialContext(ctx, network, s); err == nil {
					return c, nil
				}
			}
			return nil, err
		}}
	}
	return t
}

func (t *tapResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if a, ok := t.hosts[strings.ToLower(strings.TrimSuffix(host, "."))]; ok {
		if network == "ip4" && !a.Is4() || network == "ip6" && !a.Is6() {
			return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
		}
		return []netip.Addr{a}, nil
	}
	return t.r.LookupNetIP(ctx, network, host)
}
