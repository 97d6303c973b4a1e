package rules

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Source says where a rule came from. String is the text the log carries.
type Source uint8

// The numeric order is also the precedence order: a rule from a later source
// beats one from an earlier source (see Set.Match).
const (
	SourceCatalogue Source = iota // Microsoft's endpoint list (embedded or updated)
	SourceNCSI                    // the built-in Windows connectivity probes
	SourceUser                    // the operator's own rules

	numSources
)

var sourceNames = [numSources]string{
	SourceCatalogue: "catalogue",
	SourceNCSI:      "ncsi",
	SourceUser:      "user",
}

func (s Source) String() string {
	if s < numSources {
		return sourceNames[s]
	}
	return fmt.Sprintf("source(%d)", uint8(s))
}

// ParseSource is the inverse of Source.String.
func ParseSource(s string) (Source, error) {
	for i, name := range sourceNames {
		if name == s {
			return Source(i), nil
		}
	}
	return 0, fmt.Errorf("rules: unknown source %q (want catalogue, ncsi or user)", s)
}

// Probe is the expectation attached to an NCSI-style probe rule: a GET for
// Path must answer 200 with a body that contains Content. Requests for other
// paths on the same host still match the rule but carry no expectation.
type Probe struct {
	Path    string
	Content string
}

// Rule is one compiled entry: a catalogue endpoint set, a built-in NCSI
// probe or a user rule. Rules are shared by every Match and must be treated
// as read-only.
type Rule struct {
	// ID is the catalogue's numeric id as text ("56"), "ncsi-…" for the
	// built-in probes, or the user's own id.
	ID     string
	Source Source
	// ServiceArea is the catalogue's area ("Common", "Exchange", …), "NCSI"
	// for the built-in probes, and whatever the user gave (may be empty).
	ServiceArea            string
	ServiceAreaDisplayName string
	Required               bool
	// ExpressRoute is the catalogue's flag: true means the set may be routed
	// over Azure ExpressRoute; false means it must go over the internet.
	ExpressRoute bool
	// Category is Optimize, Allow or Default; empty for most NCSI and user rules.
	Category string
	Notes    string
	// URLs are the host patterns exactly as given.
	URLs []string
	// TCPPorts are the allowed destination ports, sorted and without
	// duplicates. Empty means any port.
	TCPPorts []uint16
	// UDPPorts are kept for display only: the tap sees TCP alone.
	UDPPorts []uint16
	// Probe is non-nil for probe rules.
	Probe *Probe

	// order breaks ties between rules of the same source and specificity:
	// lower wins. For the catalogue it follows the numeric id.
	order uint32
}

// allowsPort reports whether port is one of the rule's TCP ports; port 0
// means the caller does not know or care.
func (r *Rule) allowsPort(port int) bool {
	if port == 0 || len(r.TCPPorts) == 0 {
		return true
	}
	if port < 0 || port > 0xFFFF {
		return false
	}
	// The lists are tiny (one to four ports in the official data), so a
	// linear scan beats a binary search; long ranges fall back to one.
	if len(r.TCPPorts) > 8 {
		_, ok := slices.BinarySearch(r.TCPPorts, uint16(port))
		return ok
	}
	for _, p := range r.TCPPorts {
		if int(p) == port {
			return true
		}
	}
	return false
}

// Spec is the input form of a user rule; the configuration decodes into its
// own type and converts to Spec. Zero values: an empty TCPPorts means any
// port, an empty Category means none, Probe false means no expectation.
type Spec struct {
	// ID names the rule in the log. Required; must be unique among user
	// rules, must not be all digits (catalogue ids) and must not start with
	// "ncsi-" (built-in probes), so an id in a log is never ambiguous.
	ID          string
	ServiceArea string
	// URLs are host patterns in the catalogue's syntax: "host", "*.domain",
	// "*suffix.domain" or "prefix.*.domain".
	URLs []string
	// TCPPorts is a list in the catalogue's syntax, e.g. "80,443" or
	// "443, 8443" or "8000-8010".
	TCPPorts     string
	Required     bool
	ExpressRoute bool
	Category     string
	Notes        string
	// Probe marks an NCSI-style probe; ProbePath (starting with "/") and
	// ProbeContent are then required.
	Probe        bool
	ProbePath    string
	ProbeContent string
}

// NCSI probe expectations, as Windows' NlaSvc registry defaults define them
// (ActiveWebProbePath/ActiveWebProbeContent; before Windows 10 v1607 the
// msftncsi.com values).
const (
	ncsiConnectTestPath    = "/connecttest.txt"
	ncsiConnectTestContent = "Microsoft Connect Test"
	ncsiLegacyPath         = "/ncsi.txt"
	ncsiLegacyContent      = "Microsoft NCSI"
)

// NCSIProbes returns the built-in web probes of Windows' Network
// Connectivity Status Indicator. Compile always includes them. The probes
// are plain HTTP, hence port 80 only: a CONNECT to the same host is not a
// probe and carries no expectation.
func NCSIProbes() []Spec {
	probe := func(id, host, path, content, notes string) Spec {
		return Spec{
			ID:           id,
			ServiceArea:  "NCSI",
			URLs:         []string{host},
			TCPPorts:     "80",
			Required:     true,
			Notes:        notes,
			Probe:        true,
			ProbePath:    path,
			ProbeContent: content,
		}
	}
	return []Spec{
		probe("ncsi-connecttest-v4", "www.msftconnecttest.com", ncsiConnectTestPath, ncsiConnectTestContent,
			"Windows 10 v1607 and later, Windows 11: IPv4 web probe"),
		probe("ncsi-connecttest-v6", "ipv6.msftconnecttest.com", ncsiConnectTestPath, ncsiConnectTestContent,
			"Windows 10 v1607 and later, Windows 11: IPv6 web probe"),
		probe("ncsi-msftncsi-v4", "www.msftncsi.com", ncsiLegacyPath, ncsiLegacyContent,
			"Windows 8, 8.1, 10 before v1607: IPv4 web probe"),
		probe("ncsi-msftncsi-v6", "ipv6.msftncsi.com", ncsiLegacyPath, ncsiLegacyContent,
			"Windows 8, 8.1, 10 before v1607: IPv6 web probe"),
	}
}

// Category values of the official list.
var categories = []string{"Optimize", "Allow", "Default"}

// ErrPorts is wrapped by every port list parse error.
var ErrPorts = errors.New("invalid port list")

// ParsePorts parses a port list in the web service's syntax: comma
// separated, spaces allowed around items ("143, 587, 993, 995"), ranges as
// "low-high". The result is sorted and without duplicates; an empty string
// gives nil.
func ParsePorts(s string) ([]uint16, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []uint16
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("%w %q: empty item", ErrPorts, s)
		}
		lo, hi, isRange := strings.Cut(item, "-")
		first, err := parsePort(lo)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %v", ErrPorts, s, err)
		}
		last := first
		if isRange {
			if last, err = parsePort(hi); err != nil {
				return nil, fmt.Errorf("%w %q: %v", ErrPorts, s, err)
			}
			if last < first {
				return nil, fmt.Errorf("%w %q: range %s runs backwards", ErrPorts, s, item)
			}
		}
		for p := int(first); p <= int(last); p++ {
			out = append(out, uint16(p))
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func parsePort(s string) (uint16, error) {
	s = strings.TrimSpace(s)
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port (1-65535)", s)
	}
	return uint16(n), nil
}

// FormatPorts renders ports back into the web service's syntax, folding
// consecutive runs into ranges.
func FormatPorts(ports []uint16) string {
	var b strings.Builder
	for i := 0; i < len(ports); {
		j := i
		for j+1 < len(ports) && ports[j+1] == ports[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.Itoa(int(ports[i])))
		// Two neighbours read better as a list than as a range.
		switch {
		case j == i+1:
			b.WriteByte(',')
			b.WriteString(strconv.Itoa(int(ports[j])))
		case j > i+1:
			b.WriteByte('-')
			b.WriteString(strconv.Itoa(int(ports[j])))
		}
		i = j + 1
	}
	return b.String()
}

// Kind is the role a rule plays in the cause table. It folds source,
// required flag, service area and probe into the distinctions the article
// makes.
type Kind uint8

const (
	KindNone           Kind = iota // no rule matched
	KindCommonRequired             // catalogue set in "Common" marked required: the article's §1 list
	KindOtherRequired              // catalogue set marked required in another area (Exchange, SharePoint, Teams)
	KindOptional                   // catalogue set not marked required
	KindNCSIProbe                  // built-in NCSI web probe
	KindUserProbe                  // user probe rule (a corporate probe host, for instance)
	KindUserRequired               // user rule marked required
	KindUserOptional               // user rule not marked required

	numKinds
)

var kindNames = [numKinds]string{
	KindNone:           "none",
	KindCommonRequired: "common-required",
	KindOtherRequired:  "other-required",
	KindOptional:       "optional",
	KindNCSIProbe:      "ncsi-probe",
	KindUserProbe:      "user-probe",
	KindUserRequired:   "user-required",
	KindUserOptional:   "user-optional",
}

// Kinds lists every kind in declaration order.
func Kinds() []Kind {
	out := make([]Kind, numKinds)
	for i := range out {
		out[i] = Kind(i)
	}
	return out
}

func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// ParseKind is the inverse of Kind.String.
func ParseKind(s string) (Kind, error) {
	for i, name := range kindNames {
		if name == s {
			return Kind(i), nil
		}
	}
	return 0, fmt.Errorf("rules: unknown rule kind %q", s)
}

// CommonArea is the service area the article's §1 is about: "Microsoft 365
// Common and Office Online".
const CommonArea = "Common"

// KindOf classifies r; nil is KindNone.
func KindOf(r *Rule) Kind {
	switch {
	case r == nil:
		return KindNone
	case r.Probe != nil && r.Source == SourceUser:
		return KindUserProbe
	case r.Probe != nil:
		return KindNCSIProbe
	case r.Source == SourceUser && r.Required:
		return KindUserRequired
	case r.Source == SourceUser:
		return KindUserOptional
	case r.Required && r.ServiceArea == CommonArea:
		return KindCommonRequired
	case r.Required:
		return KindOtherRequired
	default:
		return KindOptional
	}
}
