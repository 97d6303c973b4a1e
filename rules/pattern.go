package rules

import (
	"errors"
	"fmt"
	"strings"
)

// patternKind is the shape of a host pattern. The official list uses four
// shapes; Microsoft does not define their semantics, so these follow from the
// data (docs: ncsi-and-m365-facts.md §10):
//
//   - exact: "login.microsoftonline.com"
//   - below: "*.office.com" matches any host at any depth below office.com,
//     but not office.com itself (the list names apexes separately where they
//     are needed, e.g. set 156 has activity.windows.com and
//     *.activity.windows.com).
//   - glued: "*cdn.onenote.net" matches any host ending in "cdn.onenote.net"
//     with at least one character before it ("xyzcdn.onenote.net",
//     "a.cdn.onenote.net"), not "cdn.onenote.net".
//   - middle: "autodiscover.*.onmicrosoft.com" – the star is exactly one
//     whole label (the tenant name).
type patternKind uint8

const (
	patExact patternKind = iota
	patBelow
	patGlued
	patMiddle
)

// pattern is a parsed host pattern. key is the literal part that follows the
// wildcard on a label boundary: the matcher indexes by it. frag is the glued
// label tail ("cdn") or the middle pattern's leading labels ("autodiscover").
type pattern struct {
	kind patternKind
	key  string
	frag string
	// literal counts the characters of the pattern other than the star;
	// the longer, the more specific.
	literal int
}

// maxHostLen is the longest DNS name in text form without the trailing dot
// (RFC 1035 §2.3.4: 255 octets on the wire).
const maxHostLen = 253

var errPattern = errors.New("invalid host pattern")

// parsePattern checks and parses one host pattern. Upper case is folded and
// one trailing dot dropped, as Match does with hosts.
func parsePattern(s string) (pattern, error) {
	p := strings.ToLower(strings.TrimSuffix(s, "."))
	fail := func(why string) (pattern, error) {
		return pattern{}, fmt.Errorf("%w %q: %s", errPattern, s, why)
	}
	if p == "" {
		return fail("empty")
	}
	if len(p) > maxHostLen {
		return fail("longer than 253 characters")
	}
	for i := 0; i < len(p); i++ {
		if !hostByte(p[i]) && p[i] != '*' {
			return fail("only letters, digits, '-', '_', '.' and one '*' are allowed (no scheme, port or path)")
		}
	}
	if strings.Contains(p, "..") || p[0] == '.' {
		return fail("empty label")
	}
	star := strings.IndexByte(p, '*')
	if star < 0 {
		return pattern{kind: patExact, key: p, literal: len(p)}, nil
	}
	if strings.Count(p, "*") > 1 {
		return fail("more than one '*'")
	}
	literal := len(p) - 1
	switch {
	case strings.HasPrefix(p, "*."):
		rest := p[2:]
		if rest == "" {
			return fail("nothing after '*.'")
		}
		return pattern{kind: patBelow, key: rest, literal: literal}, nil
	case star == 0:
		frag, rest, ok := strings.Cut(p[1:], ".")
		if !ok || rest == "" {
			return fail("a glued wildcard needs a domain after it, as in *cdn.example.com")
		}
		return pattern{kind: patGlued, key: rest, frag: frag, literal: literal}, nil
	case p[star-1] == '.' && star+1 < len(p) && p[star+1] == '.':
		return pattern{kind: patMiddle, key: p[star+2:], frag: p[:star-1], literal: literal}, nil
	default:
		return fail("'*' must be a whole leading label (*.x), lead the first label (*x.y) or be one whole inner label (a.*.b)")
	}
}

// hostByte reports whether c may appear in a normalised host name. '_' is
// allowed because service names such as SRV owners use it.
func hostByte(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}

// matchLeft decides a wildcard pattern given the part of the host left of
// the dot that precedes p.key. left is never empty: the caller only splits on
// dots that have a label before them.
func (p *pattern) matchLeft(left []byte) bool {
	switch p.kind {
	case patBelow:
		return true
	case patGlued:
		// left ends in frag, with at least one character before it.
		n := len(left) - len(p.frag)
		return n > 0 && string(left[n:]) == p.frag
	case patMiddle:
		// left is frag + "." + exactly one non-empty label.
		n := len(p.frag)
		if len(left) < n+2 || left[n] != '.' || string(left[:n]) != p.frag {
			return false
		}
		for _, c := range left[n+1:] {
			if c == '.' {
				return false
			}
		}
		return true
	}
	return false
}
