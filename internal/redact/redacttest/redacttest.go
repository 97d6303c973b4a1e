// Package redacttest generates the ways a URL key can be written that a
// server still reads as that key, for the tests of redact and of the
// packages that log URLs through it.
package redacttest

import (
	"fmt"
	"strings"
)

// Spellings returns ways a client can write key so that a server still
// reads it as key: case, '+' and %20 padding, percent-encoding of one or
// every byte (upper and lower hex), PHP's array suffix and its '.'/' ' for
// '_', a Unicode case variant.
func Spellings(key string) []string {
	lower := strings.ToLower(key)
	mixed := []byte(lower)
	for i := range mixed {
		if i%2 == 0 && 'a' <= mixed[i] && mixed[i] <= 'z' {
			mixed[i] -= 'a' - 'A'
		}
	}
	var all, one, oneLower strings.Builder
	for i := 0; i < len(key); i++ {
		fmt.Fprintf(&all, "%%%02X", key[i])
	}
	fmt.Fprintf(&one, "%%%02X%s", key[0], key[1:])
	fmt.Fprintf(&oneLower, "%s%%%02x", key[:len(key)-1], key[len(key)-1])
	s := []string{
		key, lower, strings.ToUpper(key), string(mixed),
		key + "+", "+" + key, "++" + key + "++", key + "%20", "%20" + key, "%20" + key + "+", key + "%09", "%0A" + key,
		key + "%C2%A0", key + "%E3%80%80", " " + key, key + "%00",
		all.String(), one.String(), oneLower.String(),
		key + "[]", key + "[0]", key + "%5B%5D", key + "+[]",
	}
	if strings.Contains(key, "_") {
		s = append(s, strings.ReplaceAll(key, "_", "."), strings.ReplaceAll(key, "_", "+"), strings.ReplaceAll(key, "_", "%20"))
	}
	if strings.Contains(lower, "k") {
		// U+212A KELVIN SIGN lower-cases to 'k'.
		s = append(s, strings.Replace(lower, "k", "%E2%84%AA", 1))
	}
	return s
}
