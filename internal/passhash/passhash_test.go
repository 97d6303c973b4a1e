package passhash

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// Vectors written by the reference implementation's command line (Debian
// package argon2, 20190702), for the password "pa55word":
//
//	echo -n pa55word | argon2 saltsalt -id -e
//	echo -n pa55word | argon2 saltsalt -i -e
//	echo -n pa55word | argon2 somesaltvalue16b -id -t 2 -k 1024 -p 2 -e
//
// and by htpasswd -bnBC 4 "" pa55word (apache2-utils).
var vectors = []struct {
	hash, params string
}{
	{"$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$0WEDi1kOiu5giA0E8MNsva6rInW4jqHqZYoWg/OHIcs", "argon2id m=4096,t=3,p=1,len=32"},
	{"$argon2i$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ$GecB3KA8ZRkD2R2h7RTA14GU64u7NVAVQn4aIk8Guwc", "argon2i m=4096,t=3,p=1,len=32"},
	{"$argon2id$v=19$m=1024,t=2,p=2$c29tZXNhbHR2YWx1ZTE2Yg$Ra0OxmQCixn1BsycMG3Y3wAf6++nOlu0x/0aBggo2j4", "argon2id m=1024,t=2,p=2,len=32"},
	{"$2y$04$ZZOjejqtaRTwZUQ45eMO.uQwsjqKFUmfB7.1/5U11QaaPbmv8h14q", "bcrypt cost=4"},
}

func TestVerifyReferenceVectors(t *testing.T) {
	for _, v := range vectors {
		h, err := Parse(v.hash)
		if err != nil {
			t.Fatalf("%s: %v", v.params, err)
		}
		if h.Params() != v.params {
			t.Errorf("params %q, want %q", h.Params(), v.params)
		}
		if !h.Verify([]byte("pa55word")) {
			t.Errorf("%s: right password refused", v.params)
		}
		for _, wrong := range []string{"", "pa55wore", "pa55word ", "PA55WORD"} {
			if h.Verify([]byte(wrong)) {
				t.Errorf("%s: wrong password %q accepted", v.params, wrong)
			}
		}
		d := h.Decoy()
		if d.Params() != h.Params() || d.Verify([]byte("pa55word")) {
			t.Errorf("%s: decoy %s, or it matches the password", v.params, d.Params())
		}
	}
}

func TestNewArgon2id(t *testing.T) {
	s, err := NewArgon2id([]byte("secret"), 64, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q", s)
	}
	h, err := Parse(s)
	if err != nil || !h.Verify([]byte("secret")) || h.Verify([]byte("secreT")) {
		t.Fatalf("round trip of %q: %v", s, err)
	}
	if _, err := NewArgon2id([]byte("x"), MaxArgon2Memory+1, 1, 1); !errors.Is(err, ErrCost) {
		t.Errorf("memory over the limit: %v", err)
	}
}

// TestParseRejects: every malformed or too costly entry is refused with
// the right sentinel, and the error text never shows salt or hash.
func TestParseRejects(t *testing.T) {
	const salt, key = "c2FsdHNhbHQ", "0WEDi1kOiu5giA0E8MNsva6rInW4jqHqZYoWg/OHIcs"
	cases := []struct {
		name, hash string
		want       error
	}{
		{"plain text", "pa55word", ErrUnknown},
		{"empty", "", ErrUnknown},
		{"bcrypt truncated", "$2y$10$abc", ErrUnknown},
		{"bcrypt cost 18", "$2y$18$ZZOjejqtaRTwZUQ45eMO.uQwsjqKFUmfB7.1/5U11QaaPbmv8h14q", ErrCost},
		{"argon2d", "$argon2d$v=19$m=4096,t=3,p=1$" + salt + "$" + key, ErrMalformed},
		{"no version (v=16)", "$argon2id$m=4096,t=3,p=1$" + salt + "$" + key, ErrMalformed},
		{"version 16", "$argon2id$v=16$m=4096,t=3,p=1$" + salt + "$" + key, ErrMalformed},
		{"params out of order", "$argon2id$v=19$t=3,m=4096,p=1$" + salt + "$" + key, ErrMalformed},
		{"param missing", "$argon2id$v=19$m=4096,t=3$" + salt + "$" + key, ErrMalformed},
		{"param not a number", "$argon2id$v=19$m=4k,t=3,p=1$" + salt + "$" + key, ErrMalformed},
		{"leading zero", "$argon2id$v=19$m=04096,t=3,p=1$" + salt + "$" + key, ErrMalformed},
		{"padded base64", "$argon2id$v=19$m=4096,t=3,p=1$c2FsdHNhbHQ=$" + key, ErrMalformed},
		{"url base64", "$argon2id$v=19$m=4096,t=3,p=1$" + salt + "$" + strings.ReplaceAll(key, "/", "_"), ErrMalformed},
		{"short salt", "$argon2id$v=19$m=4096,t=3,p=1$c2FsdA$" + key, ErrMalformed},
		{"short hash", "$argon2id$v=19$m=4096,t=3,p=1$" + salt + "$MTIz", ErrMalformed},
		{"no hash", "$argon2id$v=19$m=4096,t=3,p=1$" + salt, ErrMalformed},
		{"t zero", "$argon2id$v=19$m=4096,t=0,p=1$" + salt + "$" + key, ErrMalformed},
		{"memory under 8p", "$argon2id$v=19$m=31,t=1,p=4$" + salt + "$" + key, ErrMalformed},
		{"memory over 1 GiB", "$argon2id$v=19$m=1048577,t=3,p=1$" + salt + "$" + key, ErrCost},
		{"t over 10", "$argon2id$v=19$m=4096,t=11,p=1$" + salt + "$" + key, ErrCost},
		{"p over 255", "$argon2id$v=19$m=4096,t=3,p=256$" + salt + "$" + key, ErrCost},
		{"m over 32 bits", "$argon2id$v=19$m=4294967296,t=3,p=1$" + salt + "$" + key, ErrMalformed},
	}
	for _, tc := range cases {
		_, err := Parse(tc.hash)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			continue
		}
		if msg := err.Error(); strings.Contains(msg, salt) || strings.Contains(msg, key[:16]) {
			t.Errorf("%s: error shows the salt or hash: %s", tc.name, msg)
		}
	}
}

func TestHeader(t *testing.T) {
	cases := map[string]string{
		"$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaA":   "$argon2id$v=19$m=65536,t=3,p=4",
		"$argon2id$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaA":        "$argon2id",
		"$argon2id$v=19$c2FsdHNhbHQ$aGFzaA":                   "$argon2id$v=19",
		"$argon2id$v=19$m=65536,t=3,p=4,c2FsdHNhbHQ$aGFzaA":   "$argon2id$v=19",
		"$argon2idc2FsdHNhbHQ$v=19$m=65536,t=3,p=4$x$y":       "",
		"$2y$10$ZZOjejqtaRTwZUQ45eMO.uQwsjqKFUmfB7.1/5U11Qaa": "",
		"plain": "",
	}
	for in, want := range cases {
		if got := Header(in); got != want {
			t.Errorf("Header(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestDecoyCostsTheSame: verifying against a decoy takes as long as
// against the hash it copies, so response time does not tell whether a
// user name exists. Medians of a few runs, within a factor of three.
func TestDecoyCostsTheSame(t *testing.T) {
	for _, v := range []string{vectors[0].hash, vectors[3].hash} {
		h, _ := Parse(v)
		d := h.Decoy()
		real, decoy := medianOf(func() { h.Verify([]byte("wrong")) }), medianOf(func() { d.Verify([]byte("wrong")) })
		if decoy < real/3 || decoy > real*3 {
			t.Errorf("%s: verification takes %v, against its decoy %v", h.Params(), real, decoy)
		}
	}
}

func medianOf(f func()) time.Duration {
	var d [7]time.Duration
	for i := range d {
		start := time.Now()
		f()
		d[i] = time.Since(start)
	}
	for i := range d {
		for j := i + 1; j < len(d); j++ {
			if d[j] < d[i] {
				d[i], d[j] = d[j], d[i]
			}
		}
	}
	return d[len(d)/2]
}
