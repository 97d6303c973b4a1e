package logs

import (
	"encoding/binary"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// Text helpers shared by the formats. Each takes a string or a byte slice:
// values arrive as both (AddString, AddByteString), and converting one to
// the other would copy every value.

type text interface{ string | []byte }

// escaper is one format's rule for text inside a value: which bytes stay as
// they are, what each other ASCII byte becomes, and what replaces each byte
// of invalid UTF-8, so that a record stays one line of valid UTF-8 whatever
// a host name, URL or error holds.
type escaper struct {
	safe [256]bool
	// ma and mb repeat in each byte one of the two printable bytes the
	// format escapes, for the scans that take a word at a time.
	ma, mb uint64
	repl   [utf8.RuneSelf]string
	bad    string
	// c1 replaces the C1 controls U+0080–U+009F (U+009B, CSI, starts a
	// terminal escape as ESC [ does), sep the separators U+2028 and
	// U+2029, which JavaScript and some viewers take for line breaks.
	c1  [0x20]string
	sep [2]string
}

// newEscaper builds a rule: repl for the ASCII bytes it names, other for
// the remaining control characters (DEL included) and for the C1
// controls and U+2028/U+2029, bad for each byte of invalid UTF-8. a and b
// are the two printable bytes repl names.
func newEscaper(a, b byte, repl map[byte]string, other func(r rune) string, bad string) *escaper {
	e := &escaper{ma: lo8 * uint64(a), mb: lo8 * uint64(b), bad: bad}
	for c := range utf8.RuneSelf {
		switch r, ok := repl[byte(c)]; {
		case ok:
			e.repl[c] = r
		case c < 0x20 || c == 0x7f:
			e.repl[c] = other(rune(c))
		default:
			e.safe[c] = true
		}
	}
	for i := range e.c1 {
		e.c1[i] = other(rune(0x80 + i))
	}
	e.sep = [2]string{other(0x2028), other(0x2029)}
	return e
}

// jsonControl is r as a JSON \u escape: \u001b, \u0085, \u2028.
func jsonControl(r rune) string {
	return string([]byte{'\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf]})
}

func space(rune) string { return " " }

const hexDigits = "0123456789abcdef"

var (
	jsonRepl = map[byte]string{'"': `\"`, '\\': `\\`, '\n': `\n`, '\r': `\r`, '\t': `\t`}
	// zapJSON is zap's JSON encoder's rule, which the json format keeps to
	// the byte (invalid UTF-8 becomes the six characters \ufffd) but for
	// what zap writes raw and a terminal or a JavaScript reader could take
	// for a control: DEL, the C1 controls and U+2028/U+2029. docs/events.md
	// promises every control character escaped in every format, so they
	// are written \u007f, \u0080..\u009f, \u2028 and \u2029.
	zapJSON = newEscaper('"', '\\', jsonRepl, jsonControl, `\ufffd`)
	// ecsJSON writes U+FFFD itself, as docs/events.md says of ECS.
	ecsJSON = newEscaper('"', '\\', jsonRepl, jsonControl, "\ufffd")
	// CEF extension values escape \ and = and keep line breaks readable;
	// other control characters, DEL and the C1 controls included, and
	// U+2028/U+2029 become spaces: CEF has no escape for them, and a \u
	// written as text would read back as text.
	cefValue = newEscaper('=', '\\', map[byte]string{'=': `\=`, '\\': `\\`, '\n': `\n`, '\r': `\r`}, space, "\ufffd")
	// CEF header fields escape \ and |, and have no line breaks at all.
	cefHeader = newEscaper('|', '\\', map[byte]string{'|': `\|`, '\\': `\\`}, space, "\ufffd")
)

// appendEscaped appends s under e's rule.
func appendEscaped[T text](dst []byte, s T, e *escaper) []byte {
	l, n := len(dst), len(s)
	dst = slices.Grow(dst, n)
	i := copySafe(dst[l:l+n], s, e)
	if i == n {
		return dst[:l+n]
	}
	return escape(dst[:l+i], s[i:], e)
}

// appendQuoted appends s escaped under e between double quotes.
func appendQuoted[T text](dst []byte, s T, e *escaper) []byte {
	l, n := len(dst), len(s)
	dst = slices.Grow(dst, n+2)
	d := dst[l : l+n+2]
	d[0] = '"'
	i := copySafe(d[1:n+1], s, e)
	if i == n {
		d[n+1] = '"'
		return dst[:l+n+2]
	}
	return append(escape(dst[:l+1+i], s[i:], e), '"')
}

// appendKey appends k as a JSON object key, quoted and followed by a colon.
func appendKey(dst []byte, k string, e *escaper) []byte {
	l, n := len(dst), len(k)
	dst = slices.Grow(dst, n+3)
	if d := dst[l : l+n+3]; copySafe(d[1:n+1], k, e) == n {
		d[0], d[n+1], d[n+2] = '"', '"', ':'
		return dst[:l+n+3]
	}
	return append(appendQuoted(dst, k, e), ':')
}

// appendPair appends "k":"v", escaped under e, in one call: most of a JSON
// record is such pairs, short ones.
func appendPair[T text](dst []byte, k string, v T, e *escaper) []byte {
	l, nk, nv := len(dst), len(k), len(v)
	dst = slices.Grow(dst, nk+nv+5)
	d := dst[l : l+nk+nv+5]
	if copySafe(d[1:nk+1], k, e) != nk {
		return appendQuoted(append(appendQuoted(dst, k, e), ':'), v, e)
	}
	d[0], d[nk+1], d[nk+2], d[nk+3] = '"', '"', ':', '"'
	i := copySafe(d[nk+4:nk+4+nv], v, e)
	if i == nv {
		d[nk+4+nv] = '"'
		return dst[:l+nk+nv+5]
	}
	return append(escape(dst[:l+nk+4+i], v[i:], e), '"')
}

// copySafe copies s to d, as long as s, a word at a time while e keeps
// every byte of the word as it is, and returns how much of d holds s:
// len(s) when all of it is plain. Checking and copying in one pass,
// without a call to memmove, is what makes a value with nothing to escape,
// the common case, cheap.
func copySafe[T text](d []byte, s T, e *escaper) int {
	n := len(s)
	d = d[:n]
	ma, mb := e.ma, e.mb
	switch {
	case n >= 8:
		i := 0
		for ; i < n-8; i += 8 {
			w := word(s[i : i+8])
			if attention(w, ma, mb) != 0 {
				return i
			}
			binary.LittleEndian.PutUint64(d[i:], w)
		}
		// The last word ends the text, overlapping the one before.
		w := word(s[n-8:])
		if attention(w, ma, mb) != 0 {
			return i
		}
		binary.LittleEndian.PutUint64(d[n-8:], w)
		return n
	case n >= 4:
		lo, hi := half(s[:4]), half(s[n-4:])
		if attention(lo|hi<<32, ma, mb) != 0 {
			return 0
		}
		binary.LittleEndian.PutUint32(d, uint32(lo))
		binary.LittleEndian.PutUint32(d[n-4:], uint32(hi))
		return n
	}
	for i := range n {
		if !e.safe[s[i]] {
			return 0
		}
		d[i] = s[i]
	}
	return n
}

// escape appends s under e's rule, byte by byte where it must.
func escape[T text](dst []byte, s T, e *escaper) []byte {
	start := 0
	for i := 0; ; {
		i = scanSafe(s, i, e)
		if i == len(s) {
			break
		}
		c, n := s[i], 1
		var r string
		if c < utf8.RuneSelf {
			r = e.repl[c]
		} else {
			switch n = runeLen(s, i); {
			case n == 2 && c == 0xc2 && s[i+1] < 0xa0:
				r = e.c1[s[i+1]-0x80]
			case n == 3 && c == 0xe2 && s[i+1] == 0x80 && s[i+2]&^1 == 0xa8:
				r = e.sep[s[i+2]-0xa8]
			case n > 0:
				// Valid UTF-8, kept as it is. A run of it (Japanese text)
				// is walked here rune by rune: the word scan would stop at
				// every one of its bytes.
				for i += n; i < len(s) && s[i] >= utf8.RuneSelf; i += n {
					if n = runeLen(s, i); n == 0 || (n == 2 && s[i] == 0xc2 && s[i+1] < 0xa0) ||
						(n == 3 && s[i] == 0xe2 && s[i+1] == 0x80 && s[i+2]&^1 == 0xa8) {
						break
					}
				}
				continue
			default:
				r, n = e.bad, 1
			}
		}
		dst = append(dst, s[start:i]...)
		dst = append(dst, r...)
		i += n
		start = i
	}
	return append(dst, s[start:]...)
}

// appendJSONString appends s as a JSON string for the ECS format.
func appendJSONString[T text](dst []byte, s T) []byte {
	return appendQuoted(dst, s, ecsJSON)
}

// scanSafe returns the index of the first byte at or after i that e does
// not keep as it is. Plain text is checked a word at a time: most values
// are host names, URLs and fixed words with nothing to escape, and most are
// short, so the end of the text is checked as one word that may overlap
// what was checked before rather than byte by byte.
func scanSafe[T text](s T, i int, e *escaper) int {
	n := len(s)
	ma, mb := e.ma, e.mb
	switch {
	case n-i >= 8:
		for ; n-i >= 16; i += 16 {
			t := s[i : i+16]
			if attention(word(t[:8]), ma, mb)|attention(word(t[8:]), ma, mb) != 0 {
				break
			}
		}
		if n-i >= 8 && attention(word(s[i:i+8]), ma, mb) == 0 {
			i += 8
		}
		// Fewer than 8 bytes left: one word overlapping what was checked.
		if n-i < 8 && (i == n || attention(word(s[n-8:]), ma, mb) == 0) {
			return n
		}
	case n-i >= 4:
		// The same with two half words.
		if attention(half(s[i:i+4])|half(s[n-4:])<<32, ma, mb) == 0 {
			return n
		}
	}
	for i < n && e.safe[s[i]] {
		i++
	}
	return i
}

const lo8, hi8 = 0x0101010101010101, 0x8080808080808080

// word reads 8 bytes little-endian; the compiler makes it one load.
func word[T text](t T) uint64 {
	_ = t[7]
	return uint64(t[0]) | uint64(t[1])<<8 | uint64(t[2])<<16 | uint64(t[3])<<24 |
		uint64(t[4])<<32 | uint64(t[5])<<40 | uint64(t[6])<<48 | uint64(t[7])<<56
}

func half[T text](t T) uint64 {
	_ = t[3]
	return uint64(t[0]) | uint64(t[1])<<8 | uint64(t[2])<<16 | uint64(t[3])<<24
}

// attention is non-zero when a byte of w is non-ASCII, a control character,
// DEL, or one of the bytes in ma and mb. It is exact for the word as a whole,
// which is all the scan needs; the bytes are then looked at one by one.
func attention(w, ma, mb uint64) uint64 {
	x, y := w^ma, w^mb
	// w's own high bits flag non-ASCII; w-0x20 borrows into a byte's high
	// bit below 0x20, w+1 carries into it at DEL; a borrow or carry that
	// crosses into the next byte starts at a byte already flagged.
	return (w | (w - lo8*0x20) | (w + lo8) | ((x - lo8) &^ x) | ((y - lo8) &^ y)) & hi8
}

// runeLen is the length of the valid UTF-8 sequence at s[i], 0 when the
// byte there does not start one. utf8.DecodeRune would do, but has no
// variant for both strings and byte slices.
func runeLen[T text](s T, i int) int {
	n := len(s) - i
	c := s[i]
	lo, hi := byte(0x80), byte(0xbf)
	switch {
	case c < 0xc2 || c > 0xf4:
		return 0
	case c < 0xe0:
		if n < 2 || s[i+1] < lo || s[i+1] > hi {
			return 0
		}
		return 2
	case c < 0xf0:
		switch c {
		case 0xe0:
			lo = 0xa0 // overlong
		case 0xed:
			hi = 0x9f // surrogates
		}
		if n < 3 || s[i+1] < lo || s[i+1] > hi || s[i+2]&0xc0 != 0x80 {
			return 0
		}
		return 3
	}
	switch c {
	case 0xf0:
		lo = 0x90 // overlong
	case 0xf4:
		hi = 0x8f // beyond U+10FFFF
	}
	if n < 4 || s[i+1] < lo || s[i+1] > hi || s[i+2]&0xc0 != 0x80 || s[i+3]&0xc0 != 0x80 {
		return 0
	}
	return 4
}

// appendFloat writes a float as zap's JSON encoder does; NaN and the
// infinities, which JSON lacks, become strings when quoted is set.
func appendFloat(dst []byte, f float64, bits int, quoted bool) []byte {
	var special string
	switch {
	case math.IsNaN(f):
		special = "NaN"
	case math.IsInf(f, 1):
		special = "+Inf"
	case math.IsInf(f, -1):
		special = "-Inf"
	default:
		if bits == 64 {
			return appendMs(dst, f)
		}
		return strconv.AppendFloat(dst, f, 'f', -1, bits)
	}
	if quoted {
		dst = append(dst, '"')
		dst = append(dst, special...)
		return append(dst, '"')
	}
	return append(dst, special...)
}

// appendMs writes f as strconv.AppendFloat(dst, f, 'f', -1, 64) does, with
// a fast path for what the tap mostly writes: milliseconds with at most
// three decimals (float64(µs)/1000), for which the shortest decimal that
// reads back as f is those three decimals. Below 2^42 two such decimals
// are further apart than f's rounding interval is wide, so no shorter one
// can exist.
func appendMs(dst []byte, f float64) []byte {
	if !(f >= 0 && f < 1<<42) || math.Signbit(f) {
		return strconv.AppendFloat(dst, f, 'f', -1, 64)
	}
	n := uint64(math.Round(f * 1000))
	if float64(n)/1000 != f {
		return strconv.AppendFloat(dst, f, 'f', -1, 64)
	}
	dst = appendUint(dst, n/1000)
	frac := n % 1000
	if frac == 0 {
		return dst
	}
	dst = append(dst, '.', byte('0'+frac/100))
	if frac%100 != 0 {
		dst = append(dst, byte('0'+frac/10%10))
		if frac%10 != 0 {
			dst = append(dst, byte('0'+frac%10))
		}
	}
	return dst
}

// appendComplex writes c as zap does, at the precision of its type.
func appendComplex(dst []byte, c complex128, bits int) []byte {
	dst = strconv.AppendFloat(dst, real(c), 'f', -1, bits)
	if imag(c) >= 0 {
		dst = append(dst, '+')
	}
	dst = strconv.AppendFloat(dst, imag(c), 'f', -1, bits)
	return append(dst, 'i')
}

// timeLayout is the one time layout of every format: UTC, RFC 3339 with
// microseconds (RFC 5424 allows at most six fractional digits).
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// The seconds of the first and the last instant appendTimestamp writes
// by hand.
const (
	minSec = -62135596800 // 0001-01-01T00:00:00Z
	maxSec = 253402300799 // 9999-12-31T23:59:59Z
)

// appendTimestamp writes t in timeLayout, digit by digit: time.AppendFormat
// interprets its layout on every call, and every record carries one to
// three timestamps.
func appendTimestamp(dst []byte, t time.Time) []byte {
	sec := t.Unix()
	if sec < minSec || sec > maxSec {
		return t.UTC().AppendFormat(dst, timeLayout)
	}
	days := (sec - minSec) / 86400
	var b [27]byte
	if d := today.Load(); d != nil && d.days == days {
		*(*[11]byte)(b[:11]) = d.text
	} else {
		year, month, day := civil(days)
		pair(b[0:], year/100)
		pair(b[2:], year%100)
		b[4] = '-'
		pair(b[5:], month)
		b[7] = '-'
		pair(b[8:], day)
		b[10] = 'T'
		if d == nil || days > d.days {
			today.Store(&dayText{days, [11]byte(b[:11])})
		}
	}
	clock(&b, int((sec-minSec)%86400), t.Nanosecond()/1000)
	return append(dst, b[:]...)
}

// today is the date of the latest day appendTimestamp wrote, "2006-01-02T":
// records are written as they happen, so nearly all fall on it. It only
// moves forward, so that a record of an earlier time (an exchange's
// start) does not make the next one compute the date again.
var today atomic.Pointer[dayText]

type dayText struct {
	days int64 // since 0001-01-01
	text [11]byte
}

// appendTimestampNear writes t as appendTimestamp does, taking the date
// from refText, ref as appendTimestamp wrote it, when t falls on ref's
// day: an exchange's start is mostly on the day of its end.
func appendTimestampNear(dst []byte, t, ref time.Time, refText []byte) []byte {
	sec, rsec := t.Unix(), ref.Unix()
	if sec < minSec || rsec > maxSec || len(refText) != 27 || (sec-minSec)/86400 != (rsec-minSec)/86400 {
		return appendTimestamp(dst, t)
	}
	var b [27]byte
	copy(b[:11], refText)
	clock(&b, int((sec-minSec)%86400), t.Nanosecond()/1000)
	return append(dst, b[:]...)
}

// clock writes the time of day, secs < 86400 seconds and us < 1e6
// microseconds, in b[11:]: "15:04:05.000000Z". The remainders keep every
// table index provably in range.
func clock(b *[27]byte, secs, us int) {
	sec, usec := uint(secs), uint(us)
	h, m, s := sec/3600%100, sec/60%60, sec%60
	b[11], b[12], b[13] = digitPairs[2*h], digitPairs[2*h+1], ':'
	b[14], b[15], b[16] = digitPairs[2*m], digitPairs[2*m+1], ':'
	b[17], b[18], b[19] = digitPairs[2*s], digitPairs[2*s+1], '.'
	u1, u2, u3 := usec/10000%100, usec/100%100, usec%100
	b[20], b[21] = digitPairs[2*u1], digitPairs[2*u1+1]
	b[22], b[23] = digitPairs[2*u2], digitPairs[2*u2+1]
	b[24], b[25], b[26] = digitPairs[2*u3], digitPairs[2*u3+1], 'Z'
}

// pair writes v < 100 as two digits.
func pair(b []byte, v int) {
	b[0], b[1] = digitPairs[2*v], digitPairs[2*v+1]
}

// civil turns days since 0001-01-01 into a proleptic Gregorian date
// (Howard Hinnant's days_from_civil, inverted, on a March-based year).
func civil(days int64) (year, month, day int) {
	// Shift to 0000-03-01, the start of a 400-year era.
	z := days + 306
	era := z / 146097
	doe := z - era*146097
	yoe := (doe - doe/1460 + doe/36524 - doe/146096) / 365
	doy := doe - (365*yoe + yoe/4 - yoe/100)
	mp := (5*doy + 2) / 153
	d := doy - (153*mp+2)/5 + 1
	m := mp + 3
	if m > 12 {
		m -= 12
	}
	y := yoe + era*400
	if m <= 2 {
		y++
	}
	return int(y), int(m), int(d)
}

const digitPairs = "00010203040506070809101112131415161718192021222324252627282930313233343536373839404142434445464748495051525354555657585960616263646566676869707172737475767778798081828384858687888990919293949596979899"

// appendUint is strconv.AppendUint(dst, v, 10) writing in place: strconv
// formats into a buffer of its own and copies, and a record has a dozen
// numbers.
func appendUint(dst []byte, v uint64) []byte {
	if v < 10 {
		return append(dst, byte('0'+v))
	}
	n := decimalLen(v)
	dst = slices.Grow(dst, n)
	i := len(dst) + n
	dst = dst[:i]
	for v >= 100 {
		q := v / 100
		r := (v - q*100) * 2
		i -= 2
		dst[i], dst[i+1] = digitPairs[r], digitPairs[r+1]
		v = q
	}
	if v >= 10 {
		dst[i-2], dst[i-1] = digitPairs[v*2], digitPairs[v*2+1]
	} else {
		dst[i-1] = byte('0' + v)
	}
	return dst
}

func appendInt(dst []byte, v int64) []byte {
	if v < 0 {
		return appendUint(append(dst, '-'), -uint64(v))
	}
	return appendUint(dst, uint64(v))
}

var pow10 = [...]uint64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19}

// decimalLen is the number of decimal digits of v > 0.
func decimalLen(v uint64) int {
	n := bits.Len64(v) * 1233 >> 12 // about log10(2) per bit
	if n < len(pow10) && v >= pow10[n] {
		n++
	}
	return n
}
