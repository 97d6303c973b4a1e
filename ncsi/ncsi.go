// Package ncsi reads what Windows' Network Connectivity Status Indicator
// will do on this PC: its active probe settings (NlaSvc's registry values),
// the policies that change them (active probing off, passive polling,
// global DNS, the corporate probes), and the WinHTTP proxy it tries first.
// The registry sits behind Source, so the logic is tested on every system;
// the Windows reader is in ncsi_windows.go.
//
// A probe the PC's administrators customised (another host, path or text)
// becomes a probe rule (rules.Spec), so the tap's events and report
// recognise the PC's real probe; rules itself knows nothing of Windows.
package ncsi

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/m365tap/m365tap/rules"
)

// Registry keys under HKLM.
const (
	ParametersKey = `SYSTEM\CurrentControlSet\Services\NlaSvc\Parameters\Internet`
	PolicyKey     = `SOFTWARE\Policies\Microsoft\Windows\NetworkConnectivityStatusIndicator`
	CorporateKey  = PolicyKey + `\CorporateConnectivity`
)

// Source reads HKLM values; ok is false when the value is absent.
type Source interface {
	String(key, name string) (v string, ok bool, err error)
	DWORD(key, name string) (v uint32, ok bool, err error)
}

// WebProbe is one active web probe: GET http://Host/Path, expecting
// Content in a 200 answer.
type WebProbe struct {
	Family  string // "IPv4" or "IPv6"
	Host    string
	Path    string // without the leading "/", as the registry holds it
	Content string
	// Custom: the registry names something other than Windows' default
	// for Windows 10 v1607 and later.
	Custom bool
}

// URL is what NCSI fetches.
func (w WebProbe) URL() string { return "http://" + w.Host + "/" + strings.TrimPrefix(w.Path, "/") }

// DNSProbe is one active DNS probe: Host must resolve to Content.
type DNSProbe struct {
	Family  string
	Host    string
	Content string
}

// Corporate is the corporate connectivity policy (for DirectAccess
// clients, per Microsoft; it does not replace the internet probe).
type Corporate struct {
	WebsiteProbeURL   string
	DNSProbeHost      string
	DNSProbeAddress   string
	SitePrefixes      string
	DomainLocationURL string
}

// Settings is NCSI's configuration on this PC.
type Settings struct {
	Web []WebProbe
	DNS []DNSProbe
	// ActiveProbing is false when EnableActiveProbing is 0 or the policy
	// NoActiveProbe is 1 (which Microsoft says never to use as a fix).
	ActiveProbing bool
	// ActiveProbingOffBy names the value that turned it off.
	ActiveProbingOffBy string
	PassivePollingOff  bool // policy DisablePassivePolling
	GlobalDNS          bool // policy UseGlobalDns
	Corporate          Corporate
}

// Windows 10 v1607 and later defaults (NlaSvc\Parameters\Internet).
var defaults = map[string]string{
	"ActiveWebProbeHost":      "www.msftconnecttest.com",
	"ActiveWebProbeHostV6":    "ipv6.msftconnecttest.com",
	"ActiveWebProbePath":      "connecttest.txt",
	"ActiveWebProbePathV6":    "connecttest.txt",
	"ActiveWebProbeContent":   "Microsoft Connect Test",
	"ActiveWebProbeContentV6": "Microsoft Connect Test",
	"ActiveDnsProbeHost":      "dns.msftncsi.com",
	"ActiveDnsProbeHostV6":    "dns.msftncsi.com",
	"ActiveDnsProbeContent":   "131.107.255.255",
	"ActiveDnsProbeContentV6": "fd3e:4f5a:5b81::1",
}

// Read reads the settings; an absent value takes Windows' default.
func Read(src Source) (*Settings, error) {
	r := reader{src: src}
	s := &Settings{ActiveProbing: true}
	for _, fam := range []struct{ name, suffix string }{{"IPv4", ""}, {"IPv6", "V6"}} {
		w := WebProbe{Family: fam.name}
		var custom [3]bool
		w.Host, custom[0] = r.str(ParametersKey, "ActiveWebProbeHost"+fam.suffix)
		w.Path, custom[1] = r.str(ParametersKey, "ActiveWebProbePath"+fam.suffix)
		w.Content, custom[2] = r.str(ParametersKey, "ActiveWebProbeContent"+fam.suffix)
		w.Custom = custom[0] || custom[1] || custom[2]
		s.Web = append(s.Web, w)
		d := DNSProbe{Family: fam.name}
		d.Host, _ = r.str(ParametersKey, "ActiveDnsProbeHost"+fam.suffix)
		d.Content, _ = r.str(ParametersKey, "ActiveDnsProbeContent"+fam.suffix)
		s.DNS = append(s.DNS, d)
	}
	if v, ok := r.dword(ParametersKey, "EnableActiveProbing"); ok && v == 0 {
		s.ActiveProbing, s.ActiveProbingOffBy = false, `HKLM\`+ParametersKey+`\EnableActiveProbing = 0`
	}
	if v, ok := r.dword(PolicyKey, "NoActiveProbe"); ok && v != 0 {
		s.ActiveProbing, s.ActiveProbingOffBy = false, `HKLM\`+PolicyKey+`\NoActiveProbe = 1`
	}
	if v, ok := r.dword(PolicyKey, "DisablePassivePolling"); ok && v != 0 {
		s.PassivePollingOff = true
	}
	if v, ok := r.dword(PolicyKey, "UseGlobalDns"); ok && v != 0 {
		s.GlobalDNS = true
	}
	s.Corporate.WebsiteProbeURL, _ = r.str(CorporateKey, "WebProbeUrl")
	s.Corporate.DNSProbeHost, _ = r.str(CorporateKey, "DnsProbeHost")
	s.Corporate.DNSProbeAddress, _ = r.str(CorporateKey, "DnsProbeContent")
	s.Corporate.SitePrefixes, _ = r.str(CorporateKey, "SitePrefixes")
	s.Corporate.DomainLocationURL, _ = r.str(CorporateKey, "DomainLocationDeterminationUrl")
	if r.err != nil {
		return nil, r.err
	}
	return s, nil
}

// reader keeps the first error, so Read stays a list of lookups.
type reader struct {
	src Source
	err error
}

// str returns the value, or the default for a probe value (set is false
// then, and for a value equal to the default).
func (r *reader) str(key, name string) (string, bool) {
	v, ok, err := r.src.String(key, name)
	if err != nil && r.err == nil {
		r.err = fmt.Errorf(`ncsi: HKLM\%s\%s: %w`, key, name, err)
	}
	def, hasDef := defaults[name]
	if !ok || (hasDef && strings.TrimSpace(v) == "") {
		return def, false
	}
	return v, !hasDef || v != def
}

func (r *reader) dword(key, name string) (uint32, bool) {
	v, ok, err := r.src.DWORD(key, name)
	if err != nil && r.err == nil {
		r.err = fmt.Errorf(`ncsi: HKLM\%s\%s: %w`, key, name, err)
	}
	return v, ok
}

// ProbeSpecs are the probe rules for what this PC probes beyond the tap's
// built-in NCSI rules: each customised web probe (host, path, expected
// text) and the corporate website probe (host and path; NCSI expects any
// answer there, so the rule carries no text). Ids start "pc-", not
// "ncsi-", which the built-in rules own.
func (s *Settings) ProbeSpecs() []rules.Spec {
	var out []rules.Spec
	for _, w := range s.Web {
		if !w.Custom || w.Host == "" {
			continue
		}
		out = append(out, rules.Spec{
			ID:           "pc-ncsi-web-" + strings.ToLower(w.Family),
			ServiceArea:  "NCSI",
			URLs:         []string{w.Host},
			TCPPorts:     "80",
			Required:     true,
			Notes:        "this PC's NCSI " + w.Family + " web probe (NlaSvc registry): " + w.URL(),
			Probe:        true,
			ProbePath:    "/" + strings.TrimPrefix(w.Path, "/"),
			ProbeContent: w.Content,
		})
	}
	if u, err := url.Parse(s.Corporate.WebsiteProbeURL); err == nil && u.Hostname() != "" {
		port := u.Port()
		if port == "" {
			port = map[string]string{"https": "443"}[u.Scheme]
		}
		if port == "" {
			port = "80"
		}
		out = append(out, rules.Spec{
			ID:          "pc-ncsi-corporate-web",
			ServiceArea: "NCSI",
			URLs:        []string{u.Hostname()},
			TCPPorts:    port,
			Notes:       "this PC's corporate website probe (NCSI policy, DirectAccess): " + s.Corporate.WebsiteProbeURL,
		})
	}
	return out
}
