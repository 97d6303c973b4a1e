package rules

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MaxMatches is how many matching rules a Match keeps. The official list
// never has more than four sets covering one host; if more match, the least
// specific are dropped and Match.Truncated says so.
const MaxMatches = 8

// Match is the result of Set.Match. It is a plain value, so a lookup does
// not allocate. The zero Match means nothing matched.
type Match struct {
	// Rule is the winner; nil when nothing matched.
	Rule *Rule
	// Pattern is the winner's pattern that matched, as written in Rule.URLs.
	Pattern string

	n         uint8
	truncated bool
	rules     [MaxMatches]*Rule
	patterns  [MaxMatches]string
	keys      [MaxMatches]uint64
}

// All returns every matching rule, best first, so All()[0] is Rule. The
// slice aliases m.
func (m *Match) All() []*Rule { return m.rules[:m.n] }

// Patterns returns, parallel to All, the pattern of each rule that matched
// (the most specific one when several of a rule's patterns match).
func (m *Match) Patterns() []string { return m.patterns[:m.n] }

// Truncated reports whether more than MaxMatches rules matched and the least
// specific were left out.
func (m *Match) Truncated() bool { return m.truncated }

// IDs appends the ids of All to dst as a comma separated list ("56,59"), so
// callers can log them without allocating.
func (m *Match) IDs(dst []byte) []byte {
	for i, r := range m.rules[:m.n] {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, r.ID...)
	}
	return dst
}

// add records that r matched through pattern pat with precedence key. A rule
// appears once, with its best pattern; the list stays sorted best first.
func (m *Match) add(r *Rule, pat string, key uint64) {
	n := int(m.n)
	for i := 0; i < n; i++ {
		if m.rules[i] != r {
			continue
		}
		if key <= m.keys[i] {
			return
		}
		// A better pattern of the same rule: take it out and re-insert.
		copy(m.rules[i:n], m.rules[i+1:n])
		copy(m.patterns[i:n], m.patterns[i+1:n])
		copy(m.keys[i:n], m.keys[i+1:n])
		n--
		break
	}
	pos := n
	for pos > 0 && m.keys[pos-1] < key {
		pos--
	}
	if pos == MaxMatches {
		m.truncated = true
		return
	}
	if n == MaxMatches {
		m.truncated = true
		n--
	}
	copy(m.rules[pos+1:n+1], m.rules[pos:n])
	copy(m.patterns[pos+1:n+1], m.patterns[pos:n])
	copy(m.keys[pos+1:n+1], m.keys[pos:n])
	m.rules[pos], m.patterns[pos], m.keys[pos] = r, pat, key
	m.n = uint8(n + 1)
	m.Rule, m.Pattern = m.rules[0], m.patterns[0]
}

// entry is one compiled pattern of one rule.
type entry struct {
	rule *Rule
	pat  pattern
	text string // the pattern as written, for Match.Pattern
	key  uint64 // precedence; higher wins
}

// precedence packs the ordering documented on Set into one integer so
// that a lookup compares candidates with a single comparison:
//
//	bits 56-63 source (user > ncsi > catalogue)
//	bit  48    exact host
//	bits 32-47 literal length of the pattern
//	bits  0-31 inverted order (earlier rule wins a tie)
func precedence(r *Rule, p pattern) uint64 {
	k := uint64(r.Source)<<56 | uint64(p.literal)<<32 | uint64(^r.order)
	if p.kind == patExact {
		k |= 1 << 48
	}
	return k
}

// Set is a compiled, immutable rule set. It is safe for concurrent use.
//
// Precedence, when a host matches several rules (the first difference
// decides):
//
//  1. Source: user rules, then the built-in NCSI probes, then the catalogue.
//     The operator's own rule is a deliberate override, and the NCSI probes
//     carry an expectation the catalogue does not have.
//  2. Exact host before any wildcard.
//  3. More literal characters in the pattern (everything but the '*') before
//     fewer: *.login.microsoftonline.com beats *.microsoftonline.com.
//  4. The earlier rule: for the catalogue the lower numeric id, for NCSI and
//     user rules the order in which they were given.
//
// A rule whose TCP ports do not include the requested port does not match at
// all, and neither does a set without URLs or one with UDP ports only.
type Set struct {
	rules   []*Rule
	exact   map[string][]entry
	wild    map[string][]entry // keyed by the literal suffix after the wildcard label
	version string
}

// Rules returns every rule, catalogue first (by id), then NCSI, then user
// rules in the given order. The slice is shared: do not modify it.
func (s *Set) Rules() []*Rule {
	if s == nil {
		return nil
	}
	return s.rules
}

// Version identifies the rules in force for logging: the catalogue version,
// plus "+user." and a short hash of the user rules when there are any.
func (s *Set) Version() string {
	if s == nil {
		return ""
	}
	return s.version
}

// ErrSpec is wrapped by every user rule validation error.
var ErrSpec = errors.New("invalid rule")

// Compile builds a Set from a catalogue (nil means none), the built-in NCSI
// probes and the user rules. Errors name the user rule and field.
func Compile(cat *Catalogue, user []Spec) (*Set, error) {
	s := &Set{
		exact: make(map[string][]entry),
		wild:  make(map[string][]entry),
	}
	version := "none"
	if cat != nil {
		version = cat.Version
		for i := range cat.Endpoints {
			r, err := catalogueRule(&cat.Endpoints[i])
			if err != nil {
				return nil, err
			}
			s.rules = append(s.rules, r)
		}
	}
	for _, sp := range NCSIProbes() {
		r, err := specRule(sp, SourceNCSI)
		if err != nil {
			return nil, err // a broken built-in is a programming error; tests cover it
		}
		s.rules = append(s.rules, r)
	}
	ids := make(map[string]bool, len(user))
	for i, sp := range user {
		if err := checkUserID(sp.ID, ids); err != nil {
			return nil, fmt.Errorf("rules: user rule #%d: id: %w", i+1, err)
		}
		r, err := specRule(sp, SourceUser)
		if err != nil {
			return nil, err
		}
		s.rules = append(s.rules, r)
	}
	if len(user) > 0 {
		version += "+user." + hashSpecs(user)
	}
	s.version = version

	for i, r := range s.rules {
		r.order = uint32(i)
		if len(r.TCPPorts) == 0 && len(r.UDPPorts) > 0 {
			// A UDP-only set (Teams media, id 11) can never be TCP traffic
			// through a proxy; compiling it would let it match any port.
			continue
		}
		for _, u := range r.URLs {
			p, err := parsePattern(u)
			if err != nil {
				return nil, fmt.Errorf("rules: %s rule %s: urls: %w", r.Source, r.ID, err)
			}
			e := entry{rule: r, pat: p, text: u, key: precedence(r, p)}
			if p.kind == patExact {
				s.exact[p.key] = append(s.exact[p.key], e)
			} else {
				s.wild[p.key] = append(s.wild[p.key], e)
			}
		}
	}
	return s, nil
}

func catalogueRule(e *Endpoint) (*Rule, error) {
	tcp, err := ParsePorts(e.TCPPorts)
	if err != nil {
		return nil, fmt.Errorf(errCatalogueEntryFmt, e.ID, "tcpPorts", err)
	}
	udp, err := ParsePorts(e.UDPPorts)
	if err != nil {
		return nil, fmt.Errorf(errCatalogueEntryFmt, e.ID, "udpPorts", err)
	}
	return &Rule{
		ID:                     strconv.Itoa(e.ID),
		Source:                 SourceCatalogue,
		ServiceArea:            e.ServiceArea,
		ServiceAreaDisplayName: e.ServiceAreaDisplayName,
		Required:               e.Required,
		ExpressRoute:           e.ExpressRoute,
		Category:               e.Category,
		Notes:                  e.Notes,
		URLs:                   slices.Clone(e.URLs),
		TCPPorts:               tcp,
		UDPPorts:               udp,
	}, nil
}

// checkUserID enforces the id rules documented on Spec.ID.
func checkUserID(id string, seen map[string]bool) error {
	switch {
	case strings.TrimSpace(id) == "":
		return fmt.Errorf("%w: missing", ErrSpec)
	case strings.TrimFunc(id, func(r rune) bool { return '0' <= r && r <= '9' }) == "":
		return fmt.Errorf("%w: %q is all digits, which are reserved for catalogue ids", ErrSpec, id)
	case strings.HasPrefix(id, "ncsi-"):
		return fmt.Errorf("%w: %q starts with \"ncsi-\", which is reserved for the built-in probes", ErrSpec, id)
	case strings.ContainsAny(id, ", \t\r\n"):
		// rule_ids is a comma separated list.
		return fmt.Errorf("%w: %q contains a comma or white space", ErrSpec, id)
	case seen[id]:
		return fmt.Errorf("%w: %q is used twice", ErrSpec, id)
	}
	seen[id] = true
	return nil
}

func specRule(sp Spec, src Source) (*Rule, error) {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("rules: %s rule %s: %s: %w: "+format, append([]any{src, sp.ID, field, ErrSpec}, args...)...)
	}
	if len(sp.URLs) == 0 {
		return nil, bad("urls", "at least one host pattern is needed")
	}
	for i, u := range sp.URLs {
		if _, err := parsePattern(u); err != nil {
			return nil, bad(fmt.Sprintf("urls[%d]", i), "%v", err)
		}
	}
	tcp, err := ParsePorts(sp.TCPPorts)
	if err != nil {
		return nil, bad("tcp_ports", "%v", err)
	}
	if sp.Category != "" && !slices.Contains(categories, sp.Category) {
		return nil, bad("category", "%q is not one of Optimize, Allow, Default", sp.Category)
	}
	r := &Rule{
		ID:           sp.ID,
		Source:       src,
		ServiceArea:  sp.ServiceArea,
		Required:     sp.Required,
		ExpressRoute: sp.ExpressRoute,
		Category:     sp.Category,
		Notes:        sp.Notes,
		URLs:         slices.Clone(sp.URLs),
		TCPPorts:     tcp,
	}
	if src == SourceNCSI {
		r.ServiceAreaDisplayName = "Windows Network Connectivity Status Indicator"
	}
	switch {
	case sp.Probe:
		if !strings.HasPrefix(sp.ProbePath, "/") {
			return nil, bad("probe_path", "%q must start with '/'", sp.ProbePath)
		}
		if sp.ProbeContent == "" {
			return nil, bad("probe_content", "the text the probe answer must contain is required")
		}
		r.Probe = &Probe{Path: sp.ProbePath, Content: sp.ProbeContent}
	case sp.ProbePath != "" || sp.ProbeContent != "":
		return nil, bad("probe", "probe_path and probe_content need probe: true")
	}
	return r, nil
}

// hashSpecs fingerprints the user rules so that Version changes when they do.
func hashSpecs(specs []Spec) string {
	h := sha256.New()
	for _, sp := range specs {
		// %q keeps field boundaries unambiguous.
		fmt.Fprintf(h, "%q %q %q %q %t %t %q %q %t %q %q\n", sp.ID, sp.ServiceArea, sp.URLs, sp.TCPPorts,
			sp.Required, sp.ExpressRoute, sp.Category, sp.Notes, sp.Probe, sp.ProbePath, sp.ProbeContent)
	}
	return hex.EncodeToString(h.Sum(nil))[:8]
}

// Match finds the rules covering host on TCP port (0: any port). ASCII
// upper case and one trailing dot are normalised away; a name with an empty
// label or longer than 253 characters matches nothing; other bytes are
// compared as they are, so they can only ever fall under a wildcard. Match
// does not allocate.
func (s *Set) Match(host string, port int) Match {
	var m Match
	if s == nil {
		return m
	}
	// Normalise into a stack buffer; the map lookups below convert
	// buf slices to strings in place, which the compiler does without
	// allocating.
	var buf [maxHostLen]byte
	if len(host) > 0 && host[len(host)-1] == '.' {
		host = host[:len(host)-1]
	}
	if host == "" || len(host) > maxHostLen {
		return m
	}
	for i := 0; i < len(host); i++ {
		c := host[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c == '.' && (i == 0 || buf[i-1] == '.') {
			return m // empty label
		}
		buf[i] = c
	}
	if buf[len(host)-1] == '.' {
		return m // empty last label: "a.com.."
	}
	name := buf[:len(host)]

	for _, e := range s.exact[string(name)] {
		if e.rule.allowsPort(port) {
			m.add(e.rule, e.text, e.key)
		}
	}
	// Walk the suffixes that start after each dot: "a.b.c" tries "b.c", "c".
	for i, c := range name {
		if c != '.' {
			continue
		}
		for _, e := range s.wild[string(name[i+1:])] {
			if e.rule.allowsPort(port) && e.pat.matchLeft(name[:i]) {
				m.add(e.rule, e.text, e.key)
			}
		}
	}
	return m
}
