// Package redact renders URLs for the log without the secrets they carry:
// userinfo and the fragment are dropped, and the values of sensitive keys in
// the query and in path parameters are replaced by REDACTED.
//
// A key is recognised the way the servers that receive it parse it, not the
// way it is spelt: pairs are separated by '&' and by ';' (Go before 1.17,
// Python's parse_qs before 3.9.2, many Java containers), the key is
// percent-decoded with '+' as a space, trimmed of white space and control
// characters, case-folded, and PHP's rewriting of ' ' and '.' to '_' and of
// "key[...]" to an array named key is applied. So "code", "CODE", "code+",
// "%20code%20", "c%6Fde", "code[]" and "a=1;code" all name the key "code".
// Redacting a key that no server would read as sensitive costs a little
// diagnosis; logging one that a server does read costs a secret.
//
// It is a leaf (standard library only): the proxy package redacts the URLs
// of requests, probes and redirect targets with it.
package redact

import (
	"bytes"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Placeholder replaces the value of a sensitive key.
const Placeholder = "REDACTED"

// Builtin lists the keys whose values are always redacted: OAuth 2.0 and
// OpenID Connect codes and tokens (RFC 6749, RFC 7521), SAML messages,
// shared access signatures and passwords.
var Builtin = []string{"code", "token", "access_token", "id_token", "refresh_token", "client_secret", "password",
	"sig", "assertion", "SAMLResponse", "SAMLRequest", "client_assertion"}

// Redactor redacts URLs. The zero value redacts only userinfo and
// fragments; New adds the built-in keys and the configured ones. It is
// read-only after New, so one Redactor serves every goroutine.
type Redactor struct {
	keys map[string]struct{}
}

// New returns a Redactor for the built-in keys and extra (access.redact_query),
// each normalised as a key in a URL is.
func New(extra []string) *Redactor {
	r := &Redactor{keys: make(map[string]struct{}, len(Builtin)+len(extra))}
	for _, k := range append(append([]string(nil), Builtin...), extra...) {
		var buf [64]byte
		if n := normalise(buf[:0], k); len(n) > 0 {
			r.keys[string(n)] = struct{}{}
		}
	}
	return r
}

// Sensitive reports whether a raw key, as written in a URL, names a
// sensitive key.
func (r *Redactor) Sensitive(rawKey string) bool {
	if r == nil || len(r.keys) == 0 {
		return false
	}
	if _, ok := r.keys[rawKey]; ok {
		// The common spelling: no decoding, folding or trimming needed.
		return true
	}
	if canonical(rawKey) {
		// Already in normal form: the lookup above was conclusive.
		return false
	}
	var buf [64]byte
	n := normalise(buf[:0], rawKey)
	_, ok := r.keys[string(n)] // no allocation: the compiler reuses n's bytes for the lookup
	return ok
}

// Request renders the URL of a request whose request line carried
// requestURI (net/http's Request.RequestURI, which may be empty). When the
// request line is already the URL that would be logged, it is returned
// itself: the common request, without query, userinfo or fragment, costs
// no allocation.
func (r *Redactor) Request(requestURI string, u *url.URL) string {
	if plain(u) {
		p := u.EscapedPath()
		if strings.IndexByte(p, ';') < 0 {
			if n := len(u.Scheme); len(requestURI) == n+3+len(u.Host)+len(p) &&
				requestURI[:n] == u.Scheme && requestURI[n:n+3] == "://" &&
				requestURI[n+3:n+3+len(u.Host)] == u.Host && requestURI[n+3+len(u.Host):] == p {
				return requestURI
			}
			return u.Scheme + "://" + u.Host + p
		}
	}
	return r.URL(u)
}

// plain reports whether u has nothing to redact but possibly path parameters.
func plain(u *url.URL) bool {
	return u.User == nil && u.RawQuery == "" && u.Fragment == "" && strings.IndexByte(u.RawPath, '#') < 0
}

// URL renders u for the log without userinfo, without fragment and with the
// values of sensitive keys in the query and path parameters replaced. A
// request line has no fragment (RFC 9112 section 3.2), but net/http passes
// on a client's "#...": in RawQuery after a '?', in RawPath before one. It
// is cut there too, as OAuth implicit grants put their tokens in the
// fragment. The fragment is dropped rather than redacted: what follows '#'
// has no syntax every application agrees on.
func (r *Redactor) URL(u *url.URL) string {
	c := *u
	c.User = nil
	c.Fragment, c.RawFragment = "", ""
	if i := strings.IndexByte(c.RawPath, '#'); i >= 0 {
		c.RawPath, c.RawQuery = c.RawPath[:i], ""
		c.Path, _ = url.PathUnescape(c.RawPath)
	} else if i := strings.IndexByte(c.RawQuery, '#'); i >= 0 {
		c.RawQuery = c.RawQuery[:i]
	}
	if c.Opaque == "" {
		if p := c.EscapedPath(); strings.IndexByte(p, ';') >= 0 {
			if rp := r.Path(p); rp != p {
				c.RawPath = rp
				c.Path, _ = url.PathUnescape(rp)
			}
		}
	}
	if c.RawQuery != "" {
		c.RawQuery = r.Query(c.RawQuery)
	}
	if c.Opaque == "" && c.Scheme != "" && c.Host != "" && c.RawQuery == "" && c.RawPath == "" {
		return c.Scheme + "://" + c.Host + c.EscapedPath()
	}
	return c.String()
}

// Location renders a redirect target (an absolute or relative URL) as URL
// does; ok is false when loc does not parse as a URL.
func (r *Redactor) Location(loc string) (s string, ok bool) {
	u, err := url.Parse(loc)
	if err != nil {
		return "", false
	}
	return r.URL(u), true
}

// Query returns q with the value of every sensitive key replaced,
// separators and keys kept as written.
func (r *Redactor) Query(q string) string {
	// Most queries hold no sensitive key: find the first one before
	// building anything.
	first := r.nextSensitive(q, 0)
	if first < 0 {
		return q
	}
	var b strings.Builder
	b.Grow(len(q))
	start := 0
	for at := first; at >= 0; at = r.nextSensitive(q, start) {
		// q[at:] starts a sensitive pair; its '=' and its end:
		eq := at + strings.IndexByte(q[at:], '=')
		end := pairEnd(q, eq)
		b.WriteString(q[start : eq+1])
		b.WriteString(Placeholder)
		start = end
	}
	b.WriteString(q[start:])
	return b.String()
}

// nextSensitive returns the offset of the next pair at or after from whose
// key is sensitive and which has a value, or -1.
func (r *Redactor) nextSensitive(q string, from int) int {
	for from <= len(q) {
		end := pairEnd(q, from)
		pair := q[from:end]
		if key, _, ok := strings.Cut(pair, "="); ok && r.Sensitive(key) {
			return from
		}
		if end >= len(q) {
			return -1
		}
		from = end + 1
	}
	return -1
}

// pairEnd returns the offset of the separator ending the pair that runs
// through offset i, or len(q).
func pairEnd(q string, i int) int {
	if j := strings.IndexAny(q[i:], "&;"); j >= 0 {
		return i + j
	}
	return len(q)
}

// Path returns an escaped path with the values of sensitive path
// parameters ("/cb;code=S;state=1", RFC 3986 section 3.3, and Java
// containers' ";jsessionid=") replaced. The segment name before a
// segment's first ';' is kept.
func (r *Redactor) Path(p string) string {
	if strings.IndexByte(p, ';') < 0 {
		return p
	}
	var b strings.Builder
	b.Grow(len(p))
	for i, seg := range strings.Split(p, "/") {
		if i > 0 {
			b.WriteByte('/')
		}
		name, params, ok := strings.Cut(seg, ";")
		if !ok {
			b.WriteString(seg)
			continue
		}
		b.WriteString(name)
		b.WriteByte(';')
		b.WriteString(r.Query(params))
	}
	return b.String()
}

// canonical reports whether normalise would leave key as it is: only
// lower-case ASCII letters, digits, '_' and '-'.
func canonical(key string) bool {
	for i := 0; i < len(key); i++ {
		c := key[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// normalise appends to dst the key raw as a server reads it: percent-decoded
// with '+' as a space (an invalid escape is kept as written, as lenient
// servers do), trimmed of white space and control characters, cut at a
// PHP array's '[', ' ' and '.' as '_', and lower-cased.
func normalise(dst []byte, raw string) []byte {
	start := len(dst)
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '+':
			c = ' '
		case c == '%' && i+2 < len(raw) && ishex(raw[i+1]) && ishex(raw[i+2]):
			c = unhex(raw[i+1])<<4 | unhex(raw[i+2])
			i += 2
		}
		dst = append(dst, c)
	}
	key := bytes.TrimFunc(dst[start:], trimmed)
	if i := bytes.IndexByte(key, '['); i > 0 {
		key = bytes.TrimFunc(key[:i], trimmed)
	}
	ascii := true
	for i, c := range key {
		switch {
		case c >= utf8.RuneSelf:
			ascii = false
		case c == ' ' || c == '.':
			key[i] = '_'
		case 'A' <= c && c <= 'Z':
			key[i] = c + 'a' - 'A'
		}
	}
	if !ascii {
		// Rare: Unicode case folding ("K" KELVIN SIGN lowers to 'k').
		key = bytes.ToLower(key)
	}
	return append(dst[:start], key...)
}

// trimmed reports the runes trimmed from the ends of a key: white space
// (including U+00A0 and U+3000) and control characters.
func trimmed(r rune) bool {
	return unicode.IsSpace(r) || unicode.IsControl(r) || r == utf8.RuneError
}

func ishex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case '0' <= c && c <= '9':
		return c - '0'
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}
