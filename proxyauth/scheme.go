// Package proxyauth knows the HTTP proxy authentication schemes (RFC 9110
// §11, NTLM and Negotiate as Windows speaks them): it names the scheme of a
// Proxy-Authorization or Proxy-Authenticate value, lists what a parent's 407
// offers, reads what a client's credential says about itself (the NTLM
// message type and user, the Kerberos service name of a ticket), and holds
// the tap's own credentials for a parent proxy.
//
// It knows nothing of the proxy, the logs or the config: callers decide
// what to log. Nothing here returns a token, a password or a realm from a
// challenge as a scheme name, so the strings it returns for logs are safe.
package proxyauth

import (
	"errors"
	"strings"
)

// Scheme is an HTTP authentication scheme. Its String is what events carry
// verbatim (proxy_auth_scheme, proxy_auth_offered).
type Scheme uint8

// The schemes the tap tells apart. SchemeNone is the zero value: no
// credential or no challenge at all.
const (
	SchemeNone Scheme = iota
	SchemeBasic
	SchemeNTLM
	SchemeNegotiate
	SchemeDigest
	// SchemeOther is any other scheme name (Bearer, Kerberos, a vendor's).
	// Its name is not kept: it comes from the network and is not ours to log.
	SchemeOther
	schemeCount
)

var schemeNames = [schemeCount]string{"", "basic", "ntlm", "negotiate", "digest", "other"}

// String returns the scheme's name as logged: "", "basic", "ntlm",
// "negotiate", "digest" or "other".
func (s Scheme) String() string {
	if s >= schemeCount {
		return "other"
	}
	return schemeNames[s]
}

// wire is the scheme's name as a header spells it.
func (s Scheme) wire() string {
	switch s {
	case SchemeBasic:
		return "Basic"
	case SchemeNTLM:
		return "NTLM"
	case SchemeNegotiate:
		return "Negotiate"
	case SchemeDigest:
		return "Digest"
	}
	return ""
}

// ErrUnknownScheme is returned by ParseScheme for a name String never returns.
var ErrUnknownScheme = errors.New("proxyauth: unknown scheme")

// ParseScheme is the inverse of String: ParseScheme(s.String()) == s for
// every Scheme. It is exact (lower case), as the logs are; use SchemeOf for
// header values, whose scheme names are case-insensitive.
func ParseScheme(name string) (Scheme, error) {
	for i, n := range schemeNames {
		if n == name {
			return Scheme(i), nil
		}
	}
	return SchemeNone, ErrUnknownScheme
}

// SchemeOf returns the scheme of a Proxy-Authorization value, or of the
// first challenge of a Proxy-Authenticate value: its first token, compared
// case-insensitively (RFC 9110 §11.1). An empty or blank value is
// SchemeNone. It does not allocate: it runs on every request that carries
// the header.
func SchemeOf(headerValue string) Scheme {
	s := trimOWS(headerValue)
	end := 0
	for end < len(s) && isTchar(s[end]) {
		end++
	}
	if end == 0 {
		if s == "" {
			return SchemeNone
		}
		return SchemeOther
	}
	return schemeName(s[:end])
}

// schemeName maps a scheme token to its Scheme.
func schemeName(tok string) Scheme {
	switch len(tok) {
	case 4:
		if strings.EqualFold(tok, "ntlm") {
			return SchemeNTLM
		}
	case 5:
		if strings.EqualFold(tok, "basic") {
			return SchemeBasic
		}
	case 6:
		if strings.EqualFold(tok, "digest") {
			return SchemeDigest
		}
	case 9:
		if strings.EqualFold(tok, "negotiate") {
			return SchemeNegotiate
		}
	}
	return SchemeOther
}

// Offered lists the schemes a 407 offers: every challenge of every
// Proxy-Authenticate value (a value may hold several, comma-separated,
// RFC 9110 §11.6.1), in order, each scheme once, joined by commas:
// "negotiate,ntlm,basic". Realms, parameters and tokens are never part of
// it; schemes the tap does not know read "other". No value (or none with a
// scheme) gives "".
func Offered(values []string) string {
	var seen [schemeCount]bool
	var order [schemeCount]Scheme
	n := 0
	for _, v := range values {
		for s := range challenges(v) {
			if !seen[s] {
				seen[s] = true
				order[n] = s
				n++
			}
		}
	}
	switch n {
	case 0:
		return ""
	case 1:
		return order[0].String()
	}
	size := n - 1
	for _, s := range order[:n] {
		size += len(s.String())
	}
	var b strings.Builder
	b.Grow(size)
	for i, s := range order[:n] {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s.String())
	}
	return b.String()
}

// challenges yields the scheme of each challenge in one Proxy-Authenticate
// value. The grammar (RFC 9110 §11.2):
//
//	challenge  = auth-scheme [ 1*SP ( token68 / #auth-param ) ]
//	auth-param = token BWS "=" BWS ( token / quoted-string )
//
// A comma separates both challenges and the auth-params of one challenge;
// what follows a comma is a new challenge unless it is a token followed by
// "=". Malformed input never stops the scan: a byte that fits nowhere is
// skipped, so the work is linear in the value's length.
func challenges(v string) func(yield func(Scheme) bool) {
	return func(yield func(Scheme) bool) {
		i := 0
		for i < len(v) {
			// Between list elements: commas and whitespace.
			for i < len(v) && (v[i] == ',' || isWS(v[i])) {
				i++
			}
			start := i
			for i < len(v) && isTchar(v[i]) {
				i++
			}
			if i == start {
				if i < len(v) {
					i = skipJunk(v, i)
				}
				continue
			}
			tok := v[start:i]
			j := skipWS(v, i)
			if j < len(v) && v[j] == '=' {
				// An auth-param of the current challenge.
				i = skipParamValue(v, j+1)
				continue
			}
			if !yield(schemeName(tok)) {
				return
			}
			// After the scheme: a token68, the first auth-param, or nothing.
			i = skipWS(v, i)
			start = i
			for i < len(v) && isToken68(v[i]) {
				i++
			}
			if i == start {
				continue
			}
			k := i
			for k < len(v) && v[k] == '=' {
				k++
			}
			if k == i {
				continue // a bare token68 such as an unpadded NTLM token
			}
			if m := skipWS(v, k); m == len(v) || v[m] == ',' {
				i = m // a token68 with padding
				continue
			}
			// name=value: the first auth-param.
			i = skipParamValue(v, i+1)
		}
	}
}

// skipParamValue skips BWS and a token or quoted-string starting at i.
func skipParamValue(v string, i int) int {
	i = skipWS(v, i)
	if i < len(v) && v[i] == '"' {
		i++
		for i < len(v) {
			switch v[i] {
			case '\\':
				i += 2
				continue
			case '"':
				return i + 1
			}
			i++
		}
		return len(v)
	}
	for i < len(v) && isToken68(v[i]) || i < len(v) && isTchar(v[i]) {
		i++
	}
	return i
}

// skipJunk skips a byte that starts no token, or a whole quoted string
// standing where it should not, so a stray quote cannot turn its content
// into scheme names.
func skipJunk(v string, i int) int {
	if v[i] == '"' {
		return skipParamValue(v, i)
	}
	return i + 1
}

func skipWS(v string, i int) int {
	for i < len(v) && isWS(v[i]) {
		i++
	}
	return i
}

func trimOWS(s string) string {
	i := 0
	for i < len(s) && isWS(s[i]) {
		i++
	}
	return s[i:]
}

func isWS(c byte) bool { return c == ' ' || c == '\t' }

// isTchar reports a token character (RFC 9110 §5.6.2).
func isTchar(c byte) bool {
	return c < 0x80 && tchar[c]
}

// isToken68 reports a token68 character other than the trailing '='
// (RFC 9110 §11.2).
func isToken68(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/'
}

var tchar = func() (t [128]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()
