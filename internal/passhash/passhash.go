// Package passhash parses and verifies the password hashes of access.users:
// bcrypt, as htpasswd -B writes it, and Argon2id or Argon2i in the PHC
// string format that the reference argon2 command line and passlib write
// ($argon2id$v=19$m=65536,t=3,p=4$SALT$HASH, unpadded standard base64).
//
// It is a leaf (standard library and golang.org/x/crypto only) so that the
// config package, which validates the entries, and the proxy package, which
// verifies passwords against them, parse them with the same code.
//
// Parse refuses parameters that would let a configuration make every login
// take the machine: bcrypt cost above MaxBcryptCost, Argon2 memory above
// MaxArgon2Memory KiB, more than MaxArgon2Time passes or MaxArgon2Threads
// lanes.
package passhash

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
)

// Limits on the cost of one verification.
const (
	// MaxBcryptCost is htpasswd's own upper bound (-C 17): about ten
	// seconds of one CPU per login already.
	MaxBcryptCost = 17
	// MaxArgon2Memory is in KiB, as the m parameter: 1 GiB per login.
	MaxArgon2Memory = 1 << 20
	// MaxArgon2Time bounds the passes over the memory (t).
	MaxArgon2Time = 10
	// MaxArgon2Threads is the most lanes (p) golang.org/x/crypto/argon2 takes.
	MaxArgon2Threads = 255
)

// Bounds of the salt and hash lengths, in bytes. The Argon2 specification
// (RFC 9106 §3.1) asks for a salt of at least 8 bytes and a tag of at least 4.
const (
	minSalt, maxSalt = 8, 1024
	minKey, maxKey   = 4, 1024
)

// Errors Parse wraps, for callers to tell a malformed entry from one whose
// cost is over the limits.
var (
	// ErrUnknown: neither a bcrypt hash nor an Argon2 PHC string.
	ErrUnknown = errors.New("not a bcrypt or argon2 hash")
	// ErrMalformed: an Argon2 PHC string that does not parse.
	ErrMalformed = errors.New("malformed argon2 hash")
	// ErrCost: a well-formed hash whose parameters are over the limits.
	ErrCost = errors.New("hash parameters over the limits")
)

// Kind is the hash function.
type Kind uint8

const (
	Bcrypt Kind = iota
	Argon2id
	Argon2i
)

func (k Kind) String() string {
	switch k {
	case Argon2id:
		return "argon2id"
	case Argon2i:
		return "argon2i"
	}
	return "bcrypt"
}

// Hash is a parsed password hash. It is immutable once parsed.
type Hash struct {
	kind Kind
	// bcrypt: the whole hash, as bcrypt.CompareHashAndPassword takes it.
	bcrypt []byte
	cost   int
	// Argon2.
	memory  uint32 // KiB
	time    uint32
	threads uint8
	salt    []byte
	key     []byte
}

// Kind is the hash function.
func (h *Hash) Kind() Kind { return h.kind }

// Params are the hash function and its cost parameters, without salt or
// hash: "bcrypt cost=10", "argon2id m=65536,t=3,p=4,len=32". Two hashes
// with the same Params cost the same to verify. Safe to log.
func (h *Hash) Params() string {
	if h.kind == Bcrypt {
		return "bcrypt cost=" + strconv.Itoa(h.cost)
	}
	return fmt.Sprintf("%s m=%d,t=%d,p=%d,len=%d", h.kind, h.memory, h.time, h.threads, len(h.key))
}

// Memory is roughly how many bytes one verification holds.
func (h *Hash) Memory() int64 {
	if h.kind == Bcrypt {
		return 4 << 10 // its state is a few KiB
	}
	return int64(h.memory) << 10
}

// Verify reports whether password matches, in time that does not depend on
// where the two differ.
func (h *Hash) Verify(password []byte) bool {
	switch h.kind {
	case Bcrypt:
		return bcrypt.CompareHashAndPassword(h.bcrypt, password) == nil
	case Argon2i:
		return subtle.ConstantTimeCompare(argon2.Key(password, h.salt, h.time, h.memory, h.threads, uint32(len(h.key))), h.key) == 1
	}
	return subtle.ConstantTimeCompare(argon2.IDKey(password, h.salt, h.time, h.memory, h.threads, uint32(len(h.key))), h.key) == 1
}

// Decoy returns a hash of the same kind and cost that no password matches,
// for spending on an unknown user name the time a known one costs. A bcrypt
// decoy is computed at h's cost, so it takes as long as one login.
func (h *Hash) Decoy() *Hash {
	if h.kind == Bcrypt {
		// A random password too long to type keeps the decoy unmatchable
		// (bcrypt reads at most 72 bytes).
		pw := make([]byte, 48)
		_, _ = rand.Read(pw)
		b, err := bcrypt.GenerateFromPassword([]byte(base64.RawStdEncoding.EncodeToString(pw)), h.cost)
		if err != nil {
			// Only a cost out of range fails, and Parse bounds it.
			panic("passhash: " + err.Error())
		}
		return &Hash{kind: Bcrypt, bcrypt: b, cost: h.cost}
	}
	d := *h
	d.salt = make([]byte, len(h.salt))
	d.key = make([]byte, len(h.key))
	_, _ = rand.Read(d.salt)
	_, _ = rand.Read(d.key)
	return &d
}

// Parse reads a bcrypt hash ($2a$, $2b$, $2y$) or an Argon2 PHC string. The
// error wraps ErrUnknown, ErrMalformed or ErrCost; its text never contains
// the salt or the hash.
func Parse(s string) (*Hash, error) {
	switch {
	case strings.HasPrefix(s, "$argon2"):
		return parseArgon2(s)
	case strings.HasPrefix(s, "$2"):
		cost, err := bcrypt.Cost([]byte(s))
		if err != nil {
			return nil, fmt.Errorf("%w: bcrypt: %v", ErrUnknown, err)
		}
		if cost > MaxBcryptCost {
			return nil, fmt.Errorf("%w: bcrypt cost %d, at most %d", ErrCost, cost, MaxBcryptCost)
		}
		return &Hash{kind: Bcrypt, bcrypt: []byte(s), cost: cost}, nil
	}
	return nil, ErrUnknown
}

// parseArgon2 reads $argon2id$v=19$m=M,t=T,p=P$SALT$HASH. Version 19 (0x13)
// is the only one golang.org/x/crypto/argon2 computes; an older string
// without v= is version 16 and is refused. Argon2d is refused for the same
// reason.
func parseArgon2(s string) (*Hash, error) {
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, hash
	if len(parts) != 6 || parts[0] != "" {
		return nil, fmt.Errorf("%w: want $argon2id$v=19$m=KIB,t=N,p=N$SALT$HASH", ErrMalformed)
	}
	h := &Hash{}
	switch parts[1] {
	case "argon2id":
		h.kind = Argon2id
	case "argon2i":
		h.kind = Argon2i
	default:
		return nil, fmt.Errorf("%w: variant %q, want argon2id or argon2i", ErrMalformed, parts[1])
	}
	if parts[2] != "v=19" {
		return nil, fmt.Errorf("%w: version %q, want v=19", ErrMalformed, parts[2])
	}
	var m, t, p uint64
	params := strings.Split(parts[3], ",")
	if len(params) != 3 {
		return nil, fmt.Errorf("%w: parameters %q, want m=KIB,t=N,p=N", ErrMalformed, parts[3])
	}
	for i, dst := range []*uint64{&m, &t, &p} {
		name, val, _ := strings.Cut(params[i], "=")
		n, err := strconv.ParseUint(val, 10, 32)
		if name != "mtp"[i:i+1] || err != nil || (len(val) > 1 && val[0] == '0') {
			return nil, fmt.Errorf("%w: parameters %q, want m=KIB,t=N,p=N in decimal", ErrMalformed, parts[3])
		}
		*dst = n
	}
	salt, errSalt := base64.RawStdEncoding.Strict().DecodeString(parts[4])
	key, errKey := base64.RawStdEncoding.Strict().DecodeString(parts[5])
	switch {
	case errSalt != nil || errKey != nil:
		return nil, fmt.Errorf("%w: salt and hash must be unpadded standard base64", ErrMalformed)
	case len(salt) < minSalt || len(salt) > maxSalt:
		return nil, fmt.Errorf("%w: salt of %d bytes, want %d to %d", ErrMalformed, len(salt), minSalt, maxSalt)
	case len(key) < minKey || len(key) > maxKey:
		return nil, fmt.Errorf("%w: hash of %d bytes, want %d to %d", ErrMalformed, len(key), minKey, maxKey)
	case t < 1 || p < 1 || m < 8*p:
		// RFC 9106 §3.1: at least one pass and one lane, 8p KiB of memory.
		return nil, fmt.Errorf("%w: m=%d,t=%d,p=%d, want t and p at least 1 and m at least 8*p", ErrMalformed, m, t, p)
	case m > MaxArgon2Memory || t > MaxArgon2Time || p > MaxArgon2Threads:
		return nil, fmt.Errorf("%w: m=%d,t=%d,p=%d, want m at most %d (KiB), t at most %d, p at most %d",
			ErrCost, m, t, p, MaxArgon2Memory, MaxArgon2Time, MaxArgon2Threads)
	}
	h.memory, h.time, h.threads = uint32(m), uint32(t), uint8(p)
	h.salt, h.key = salt, key
	return h, nil
}

// Header is the part of an Argon2 PHC string before the salt
// ("$argon2id$v=19$m=65536,t=3,p=4"), which says what was asked for and
// holds no secret. Fields that do not look like variant, version and
// parameters are left out, so that a string missing one of them cannot have
// its salt or hash shown in their place; "" when nothing is left. Error
// messages show it in place of the whole entry.
func Header(s string) string {
	if !strings.HasPrefix(s, "$argon2") {
		return ""
	}
	parts := strings.SplitN(s, "$", 5)
	looks := []func(string) bool{
		func(v string) bool { return strings.HasPrefix(v, "argon2") && onlyOf(v, "argon2di") },
		func(v string) bool { return strings.HasPrefix(v, "v=") && onlyOf(v[2:], "0123456789") },
		func(v string) bool { return strings.Contains(v, "=") && onlyOf(v, "mtp=,0123456789") },
	}
	n := 1
	for ; n < len(parts) && n <= len(looks) && looks[n-1](parts[n]) && len(parts[n]) <= 64; n++ {
	}
	if n == 1 {
		return ""
	}
	return strings.Join(parts[:n], "$")
}

func onlyOf(s, chars string) bool {
	for _, c := range s {
		if !strings.ContainsRune(chars, c) {
			return false
		}
	}
	return true
}

// NewArgon2id hashes password with a fresh random salt of 16 bytes and a
// 32-byte tag, and returns the PHC string. memory is in KiB.
func NewArgon2id(password []byte, memory, time uint32, threads uint8) (string, error) {
	if memory > MaxArgon2Memory || time < 1 || time > MaxArgon2Time || threads < 1 || memory < 8*uint32(threads) {
		return "", fmt.Errorf("%w: m=%d,t=%d,p=%d", ErrCost, memory, time, threads)
	}
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey(password, salt, time, memory, threads, 32)
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", memory, time, threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}
