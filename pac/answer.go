package pac

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Kind is the kind of one entry of a PAC answer. Its String is the keyword
// as it appears in the log.
type Kind uint8

// The entry kinds. DIRECT, PROXY and HTTPS are the ones the tap can take;
// the SOCKS kinds are recognised so that a PAC naming them is reported as
// an unsupported hop rather than as garbage.
const (
	Direct Kind = iota + 1
	Proxy
	HTTPS
	SOCKS
	SOCKS4
	SOCKS5
)

var kindNames = [...]string{Direct: "DIRECT", Proxy: "PROXY", HTTPS: "HTTPS", SOCKS: "SOCKS", SOCKS4: "SOCKS4", SOCKS5: "SOCKS5"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && kindNames[k] != "" {
		return kindNames[k]
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// Supported reports whether the tap can send an exchange by this kind of
// hop: directly, or through an HTTP proxy. HTTPS (TLS to the proxy) and
// SOCKS are not supported.
func (k Kind) Supported() bool { return k == Direct || k == Proxy }

// Hop is one entry of a PAC answer.
type Hop struct {
	Kind Kind
	// Host and Port name the proxy; empty and 0 for Direct.
	Host string
	Port uint16
}

// Addr is host:port of the proxy, "" for Direct.
func (h Hop) Addr() string {
	if h.Kind == Direct {
		return ""
	}
	return net.JoinHostPort(h.Host, strconv.Itoa(int(h.Port)))
}

func (h Hop) String() string {
	if h.Kind == Direct {
		return "DIRECT"
	}
	return h.Kind.String() + " " + h.Addr()
}

// ErrAnswer is wrapped by every *AnswerError.
var ErrAnswer = errors.New("malformed PAC answer")

// AnswerError names the first entry of an answer that could not be read.
type AnswerError struct {
	Entry  string
	Reason string
}

func (e *AnswerError) Error() string {
	return fmt.Sprintf("pac: answer entry %q: %s", e.Entry, e.Reason)
}

func (e *AnswerError) Unwrap() error { return ErrAnswer }

// defaultPort is the port an entry without one implies; the values are
// those browsers use (PROXY 80, HTTPS 443, SOCKS 1080).
func defaultPort(k Kind) uint16 {
	switch k {
	case HTTPS:
		return 443
	case SOCKS, SOCKS4, SOCKS5:
		return 1080
	}
	return 80
}

// ParseAnswer reads a FindProxyForURL result such as
// "PROXY a:8080; PROXY b:8080; DIRECT". Keywords are case-insensitive and
// blank entries are skipped. Entries that cannot be read are left out and
// the first of them is returned as an *AnswerError beside the entries that
// could be read, because a browser skips such an entry and uses the rest.
// An answer with no entry at all returns no hops and an *AnswerError: what
// to do then (browsers go direct) is the caller's decision.
func ParseAnswer(s string) ([]Hop, error) {
	var hops []Hop
	var first error
	fail := func(entry, reason string) {
		if first == nil {
			first = &AnswerError{Entry: entry, Reason: reason}
		}
	}
	for rest := s; rest != ""; {
		var entry string
		entry, rest, _ = strings.Cut(rest, ";")
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		hop, reason := parseEntry(entry)
		if reason != "" {
			fail(entry, reason)
			continue
		}
		hops = append(hops, hop)
	}
	if len(hops) == 0 && first == nil {
		first = &AnswerError{Entry: s, Reason: "no entry; want DIRECT, PROXY host:port or HTTPS host:port"}
	}
	return hops, first
}

// validHost accepts a DNS name (letters, digits, '-', '_' and dots), an
// IPv4 address or an IPv6 address without brackets: anything else cannot
// be dialled and must not reach the dialer.
func validHost(h string) bool {
	if strings.Contains(h, ":") {
		a, err := netip.ParseAddr(h)
		return err == nil && a.Is6() && a.Zone() == ""
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return len(h) <= 253
}

func parseEntry(entry string) (Hop, string) {
	word, arg, _ := strings.Cut(entry, " ")
	if i := strings.IndexAny(word, "\t"); i >= 0 {
		word, arg = word[:i], word[i+1:]+" "+arg
	}
	arg = strings.TrimSpace(arg)
	var k Kind
	switch strings.ToUpper(word) {
	case "DIRECT":
		if arg != "" {
			return Hop{}, "DIRECT takes no address"
		}
		return Hop{Kind: Direct}, ""
	case "PROXY", "HTTP":
		k = Proxy
	case "HTTPS":
		k = HTTPS
	case "SOCKS":
		k = SOCKS
	case "SOCKS4":
		k = SOCKS4
	case "SOCKS5":
		k = SOCKS5
	default:
		return Hop{}, "unknown keyword; want DIRECT, PROXY, HTTPS, SOCKS, SOCKS4 or SOCKS5"
	}
	if arg == "" {
		return Hop{}, "no proxy address"
	}
	if strings.ContainsAny(arg, " \t/@") {
		return Hop{}, "want host:port"
	}
	host, port := arg, ""
	if h, p, err := net.SplitHostPort(arg); err == nil {
		host, port = h, p
	} else if strings.Count(arg, ":") == 1 || strings.HasPrefix(arg, "[") {
		return Hop{}, "want host:port"
	}
	if host == "" {
		return Hop{}, "no proxy host"
	}
	if !validHost(host) {
		return Hop{}, "want host:port with a host name or IP address"
	}
	p := defaultPort(k)
	if port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return Hop{}, "port must be 1..65535"
		}
		p = uint16(n)
	}
	return Hop{Kind: k, Host: strings.ToLower(host), Port: p}, ""
}
