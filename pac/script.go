package pac

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	"github.com/dop251/goja"
)

// MaxScriptSize is the largest PAC accepted: 1 MiB, WinHTTP's limit, so a
// PAC the PC refuses is refused here too.
const MaxScriptSize = 1 << 20

// Sentinel errors, for callers that branch on what went wrong. Every error
// this package returns for a script wraps one of them.
var (
	// ErrTooLarge: the script is over MaxScriptSize.
	ErrTooLarge = errors.New("PAC larger than 1 MiB")
	// ErrCompile: the script is not valid JavaScript.
	ErrCompile = errors.New("PAC does not compile")
	// ErrNoFunction: the script defines neither FindProxyForURL nor FindProxyForURLEx.
	ErrNoFunction = errors.New("PAC defines neither FindProxyForURL nor FindProxyForURLEx")
	// ErrScript: the script threw, or its top level failed.
	ErrScript = errors.New("PAC script error")
	// ErrTimeout: an evaluation ran past Options.EvalTimeout.
	ErrTimeout = errors.New("PAC evaluation timed out")
	// ErrLookups: an evaluation asked for more DNS lookups than Options.MaxLookups.
	ErrLookups = errors.New("PAC asked for too many DNS lookups")
	// ErrResult: FindProxyForURL returned something that is not a string.
	ErrResult = errors.New("PAC returned no string")
)

// Script is a compiled PAC. It is immutable and may be shared by engines.
type Script struct {
	prog *goja.Program
	// SHA256 is the hex SHA-256 of the source, to name the PAC in a log or
	// report without its text.
	SHA256 string
	// Size is the source length in bytes.
	Size int
}

// Compile checks the size cap and compiles src. The source is named name in
// error messages (a path or URL).
func Compile(name string, src []byte) (*Script, error) {
	s, err := compile(name, src)
	if err != nil {
		return nil, fmt.Errorf("pac: %s: %w", name, err)
	}
	return s, nil
}

func compile(name string, src []byte) (*Script, error) {
	if len(src) > MaxScriptSize {
		return nil, fmt.Errorf("%d bytes: %w", len(src), ErrTooLarge)
	}
	prog, err := goja.Compile(name, string(src), false)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ErrCompile, oneLine(err.Error()))
	}
	sum := sha256.Sum256(src)
	return &Script{prog: prog, SHA256: hex.EncodeToString(sum[:]), Size: len(src)}, nil
}

// oneLine keeps a script's error text to one line of bounded length: the
// text comes from untrusted input and ends up in a log.
func oneLine(s string) string {
	const max = 300
	b := make([]byte, 0, min(len(s), max))
	for i := 0; i < len(s) && len(b) < max; i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			c = ' '
		}
		b = append(b, c)
	}
	return string(b)
}
