package logs

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	"go.uber.org/zap/zapcore"
)

// format selects what a state writes for keys outside the mapping.
type format uint8

const (
	formatJSON format = iota
	formatECS
	formatCEF
)

type vkind uint8

const (
	kNone vkind = iota
	kString
	kBytes // a copy in state.arena: offset in val.i, length in val.n
	kInt
	kUint
	kFloat
	kBool
)

// val is one collected value. Strings are kept by reference (they are
// immutable); byte strings are copied into the state's arena, since the
// caller may reuse the slice once the Add call returns.
type val struct {
	kind vkind
	b    bool
	s    string
	i    int64 // int, uint (as bits), or the arena offset of kBytes
	n    int   // arena length of kBytes
	f    float64
}

// state collects one record: known keys into slots, everything else
// rendered at once into extra, in the format's own syntax. It implements
// zapcore.ObjectEncoder for the fields zap hands over (zap.Inline calls the
// event's MarshalLogObject with it). States are pooled: one per record being
// encoded, so encoding allocates nothing once the pool is warm.
type state struct {
	format format
	set    uint64
	vals   [numSlots]val
	arena  []byte
	extra  []byte
	ns     []byte // namespace prefix from OpenNamespace, "a.b."
	nested jsonEnc
	out    []byte // the record being written
}

var statePool = sync.Pool{New: func() any { return &state{} }}

func getState(f format) *state {
	s := statePool.Get().(*state)
	s.format = f
	return s
}

func (s *state) reset() {
	s.set = 0
	s.arena = s.arena[:0]
	s.extra = s.extra[:0]
	s.ns = s.ns[:0]
}

func putState(s *state) {
	// A state that grew for a huge record is not kept: the pool would pin
	// its memory for every later event.
	if cap(s.arena) > 64<<10 || cap(s.extra) > 64<<10 || cap(s.nested.buf) > 64<<10 || cap(s.out) > 64<<10 {
		return
	}
	s.reset()
	statePool.Put(s)
}

// copyFrom makes s hold what base collected (fields added with With).
func (s *state) copyFrom(base *state) {
	s.set = base.set
	s.vals = base.vals
	s.arena = append(s.arena[:0], base.arena...)
	s.extra = append(s.extra[:0], base.extra...)
	s.ns = append(s.ns[:0], base.ns...)
}

func (s *state) has(k slot) bool { return s.set&(1<<k) != 0 }

// str is the slot's text, "" when absent or not text.
func (s *state) str(k slot) string {
	if !s.has(k) {
		return ""
	}
	v := &s.vals[k]
	switch v.kind {
	case kString:
		return v.s
	case kBytes:
		// Only rule_ids arrives as bytes, and it is never read as text;
		// this conversion is for a caller that sends another key so.
		return string(s.bytes(v))
	}
	return ""
}

func (s *state) bytes(v *val) []byte { return s.arena[v.i : int(v.i)+v.n] }

// isText reports whether slot k holds a non-empty string.
func (s *state) isText(k slot) bool {
	if !s.has(k) {
		return false
	}
	v := &s.vals[k]
	return (v.kind == kString && v.s != "") || (v.kind == kBytes && v.n > 0)
}

// num is the slot's numeric value as float64 and whether it has one.
func (s *state) num(k slot) (float64, bool) {
	if !s.has(k) {
		return 0, false
	}
	v := &s.vals[k]
	switch v.kind {
	case kInt:
		return float64(v.i), true
	case kUint:
		return float64(uint64(v.i)), true
	case kFloat:
		return v.f, true
	}
	return 0, false
}

// integer is the slot's value as int64 and whether it is a number.
func (s *state) integer(k slot) (int64, bool) {
	if !s.has(k) {
		return 0, false
	}
	v := &s.vals[k]
	switch v.kind {
	case kInt, kUint:
		return v.i, true
	case kFloat:
		return int64(math.Round(v.f)), true
	}
	return 0, false
}

// nanosFromMs turns a slot holding milliseconds into nanoseconds.
func (s *state) nanosFromMs(k slot) (int64, bool) {
	f, ok := s.num(k)
	if !ok || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, false
	}
	return int64(math.Round(f * 1e6)), true
}

func (s *state) boolean(k slot) (bool, bool) {
	if !s.has(k) || s.vals[k].kind != kBool {
		return false, false
	}
	return s.vals[k].b, true
}

func (s *state) put(key string) (*val, bool) {
	if len(s.ns) > 0 {
		return nil, false
	}
	k, ok := lookup(key)
	if !ok {
		return nil, false
	}
	s.set |= 1 << k
	return &s.vals[k], true
}

// extraKey starts an unknown key in extra: `,"m365tap.<ns><key>":` for
// ECS, ` m365tap<Ns><Key>=` for CEF.
func (s *state) extraKey(key string) {
	switch s.format {
	case formatCEF:
		s.extra = append(s.extra, ' ')
		s.extra = appendCEFKey(s.extra, s.ns, key)
		s.extra = append(s.extra, '=')
	default:
		s.extra = append(s.extra, ',', '"')
		s.extra = append(s.extra, ecsPrefix...)
		s.extra = appendJSONBody(s.extra, s.ns)
		s.extra = appendJSONStringBody(s.extra, key)
		s.extra = append(s.extra, '"', ':')
	}
}

// extraText writes a text value for the current extra key.
func (s *state) extraText(v string) {
	if s.format == formatCEF {
		s.extra = appendCEFValue(s.extra, v)
		return
	}
	s.extra = appendJSONString(s.extra, v)
}

func (s *state) extraTextBytes(v []byte) {
	if s.format == formatCEF {
		s.extra = appendCEFValueBytes(s.extra, v)
		return
	}
	s.extra = appendJSONStringBytes(s.extra, v)
}

// extraRaw writes a literal (number, bool) for the current extra key.
func (s *state) extraRaw(lit []byte) { s.extra = append(s.extra, lit...) }

// extraJSON writes a value that render produced as JSON into s.nested.
func (s *state) extraJSON(render func(e *jsonEnc) error) error {
	s.nested.buf = s.nested.buf[:0]
	s.nested.comma = false
	err := render(&s.nested)
	if s.format == formatCEF {
		s.extra = appendCEFValueBytes(s.extra, s.nested.buf)
	} else {
		s.extra = append(s.extra, s.nested.buf...)
	}
	return err
}

// zapcore.ObjectEncoder.

func (s *state) AddString(key, v string) {
	if p, ok := s.put(key); ok {
		p.kind, p.s = kString, v
		return
	}
	if v == "" && s.format == formatCEF {
		return // an empty CEF value reads as a missing one; leave the key out
	}
	s.extraKey(key)
	s.extraText(v)
}

func (s *state) AddByteString(key string, v []byte) {
	if p, ok := s.put(key); ok {
		p.kind, p.i, p.n = kBytes, int64(len(s.arena)), len(v)
		s.arena = append(s.arena, v...)
		return
	}
	if len(v) == 0 && s.format == formatCEF {
		return
	}
	s.extraKey(key)
	s.extraTextBytes(v)
}

func (s *state) AddBinary(key string, v []byte) {
	s.extraKey(key)
	s.extraJSONorText(base64.StdEncoding.AppendEncode(nil, v))
}

func (s *state) extraJSONorText(text []byte) {
	if s.format == formatCEF {
		s.extra = appendCEFValueBytes(s.extra, text)
		return
	}
	s.extra = appendJSONStringBytes(s.extra, text)
}

func (s *state) AddBool(key string, v bool) {
	if p, ok := s.put(key); ok {
		p.kind, p.b = kBool, v
		return
	}
	s.extraKey(key)
	s.extra = strconv.AppendBool(s.extra, v)
}

func (s *state) AddInt64(key string, v int64) {
	if p, ok := s.put(key); ok {
		p.kind, p.i = kInt, v
		return
	}
	s.extraKey(key)
	s.extra = strconv.AppendInt(s.extra, v, 10)
}

func (s *state) AddUint64(key string, v uint64) {
	if p, ok := s.put(key); ok {
		p.kind, p.i = kUint, int64(v)
		return
	}
	s.extraKey(key)
	s.extra = strconv.AppendUint(s.extra, v, 10)
}

func (s *state) AddFloat64(key string, v float64) {
	if p, ok := s.put(key); ok {
		p.kind, p.f = kFloat, v
		return
	}
	s.extraKey(key)
	s.extra = appendFloat(s.extra, v, 64, s.format != formatCEF)
}

func (s *state) AddFloat32(key string, v float32) {
	if p, ok := s.put(key); ok {
		p.kind, p.f = kFloat, float64(v)
		return
	}
	s.extraKey(key)
	s.extra = appendFloat(s.extra, float64(v), 32, s.format != formatCEF)
}

func (s *state) AddInt(k string, v int)         { s.AddInt64(k, int64(v)) }
func (s *state) AddInt32(k string, v int32)     { s.AddInt64(k, int64(v)) }
func (s *state) AddInt16(k string, v int16)     { s.AddInt64(k, int64(v)) }
func (s *state) AddInt8(k string, v int8)       { s.AddInt64(k, int64(v)) }
func (s *state) AddUint(k string, v uint)       { s.AddUint64(k, uint64(v)) }
func (s *state) AddUint32(k string, v uint32)   { s.AddUint64(k, uint64(v)) }
func (s *state) AddUint16(k string, v uint16)   { s.AddUint64(k, uint64(v)) }
func (s *state) AddUint8(k string, v uint8)     { s.AddUint64(k, uint64(v)) }
func (s *state) AddUintptr(k string, v uintptr) { s.AddUint64(k, uint64(v)) }

// Durations are nanoseconds, as in the JSON format.
func (s *state) AddDuration(k string, v time.Duration) { s.AddInt64(k, int64(v)) }

func (s *state) AddComplex128(key string, v complex128) {
	s.extraKey(key)
	s.extraJSONorText(appendComplex(nil, v))
}

func (s *state) AddComplex64(key string, v complex64) { s.AddComplex128(key, complex128(v)) }

func (s *state) AddTime(key string, v time.Time) {
	s.extraKey(key)
	var b [40]byte
	s.extraJSONorText(appendTimestamp(b[:0], v))
}

func (s *state) AddArray(key string, m zapcore.ArrayMarshaler) error {
	s.extraKey(key)
	return s.extraJSON(func(e *jsonEnc) error { return e.array(m) })
}

func (s *state) AddObject(key string, m zapcore.ObjectMarshaler) error {
	s.extraKey(key)
	return s.extraJSON(func(e *jsonEnc) error { return e.object(m) })
}

func (s *state) AddReflected(key string, v any) error {
	s.extraKey(key)
	return s.extraJSON(func(e *jsonEnc) error { return e.reflected(v) })
}

func (s *state) OpenNamespace(key string) {
	s.ns = append(s.ns, key...)
	s.ns = append(s.ns, '.')
}

// jsonEnc renders nested values (arrays, objects) as JSON, for the keys
// outside the mapping that carry them: the report record's lists.
type jsonEnc struct {
	buf   []byte
	comma bool
	open  int // namespaces opened in the current object
}

func (e *jsonEnc) sep() {
	if e.comma {
		e.buf = append(e.buf, ',')
	}
	e.comma = true
}

func (e *jsonEnc) key(k string) {
	e.sep()
	e.buf = appendJSONString(e.buf, k)
	e.buf = append(e.buf, ':')
}

func (e *jsonEnc) object(m zapcore.ObjectMarshaler) error {
	comma, open := e.comma, e.open
	e.buf = append(e.buf, '{')
	e.comma, e.open = false, 0
	err := m.MarshalLogObject(e)
	for ; e.open > 0; e.open-- {
		e.buf = append(e.buf, '}')
	}
	e.buf = append(e.buf, '}')
	e.comma, e.open = comma, open
	return err
}

func (e *jsonEnc) array(m zapcore.ArrayMarshaler) error {
	comma := e.comma
	e.buf = append(e.buf, '[')
	e.comma = false
	err := m.MarshalLogArray(e)
	e.buf = append(e.buf, ']')
	e.comma = comma
	return err
}

func (e *jsonEnc) reflected(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		e.buf = appendJSONString(e.buf, err.Error())
		return err
	}
	e.buf = append(e.buf, b...)
	return nil
}

func (e *jsonEnc) AddArray(k string, m zapcore.ArrayMarshaler) error {
	e.key(k)
	return e.array(m)
}
func (e *jsonEnc) AddObject(k string, m zapcore.ObjectMarshaler) error {
	e.key(k)
	return e.object(m)
}
func (e *jsonEnc) AddBinary(k string, v []byte) {
	e.key(k)
	e.buf = appendJSONStringBytes(e.buf, base64.StdEncoding.AppendEncode(nil, v))
}
func (e *jsonEnc) AddByteString(k string, v []byte) {
	e.key(k)
	e.buf = appendJSONStringBytes(e.buf, v)
}
func (e *jsonEnc) AddBool(k string, v bool) { e.key(k); e.buf = strconv.AppendBool(e.buf, v) }
func (e *jsonEnc) AddComplex128(k string, v complex128) {
	e.key(k)
	e.buf = appendJSONStringBytes(e.buf, appendComplex(nil, v))
}
func (e *jsonEnc) AddComplex64(k string, v complex64) { e.AddComplex128(k, complex128(v)) }
func (e *jsonEnc) AddDuration(k string, v time.Duration) {
	e.key(k)
	e.buf = strconv.AppendInt(e.buf, int64(v), 10)
}
func (e *jsonEnc) AddFloat64(k string, v float64) { e.key(k); e.buf = appendFloat(e.buf, v, 64, true) }
func (e *jsonEnc) AddFloat32(k string, v float32) {
	e.key(k)
	e.buf = appendFloat(e.buf, float64(v), 32, true)
}
func (e *jsonEnc) AddInt(k string, v int)     { e.AddInt64(k, int64(v)) }
func (e *jsonEnc) AddInt64(k string, v int64) { e.key(k); e.buf = strconv.AppendInt(e.buf, v, 10) }
func (e *jsonEnc) AddInt32(k string, v int32) { e.AddInt64(k, int64(v)) }
func (e *jsonEnc) AddInt16(k string, v int16) { e.AddInt64(k, int64(v)) }
func (e *jsonEnc) AddInt8(k string, v int8)   { e.AddInt64(k, int64(v)) }
func (e *jsonEnc) AddString(k, v string)      { e.key(k); e.buf = appendJSONString(e.buf, v) }
func (e *jsonEnc) AddTime(k string, v time.Time) {
	e.key(k)
	var b [40]byte
	e.buf = appendJSONStringBytes(e.buf, appendTimestamp(b[:0], v))
}
func (e *jsonEnc) AddUint(k string, v uint)     { e.AddUint64(k, uint64(v)) }
func (e *jsonEnc) AddUint64(k string, v uint64) { e.key(k); e.buf = strconv.AppendUint(e.buf, v, 10) }
func (e *jsonEnc) AddUint32(k string, v uint32) { e.AddUint64(k, uint64(v)) }
func (e *jsonEnc) AddUint16(k string, v uint16) { e.AddUint64(k, uint64(v)) }
func (e *jsonEnc) AddUint8(k string, v uint8)   { e.AddUint64(k, uint64(v)) }
func (e *jsonEnc) AddUintptr(k string, v uintptr) {
	e.AddUint64(k, uint64(v))
}
func (e *jsonEnc) AddReflected(k string, v any) error {
	e.key(k)
	return e.reflected(v)
}
func (e *jsonEnc) OpenNamespace(k string) {
	e.key(k)
	e.buf = append(e.buf, '{')
	e.comma = false
	e.open++
}

func (e *jsonEnc) AppendBool(v bool) { e.sep(); e.buf = strconv.AppendBool(e.buf, v) }
func (e *jsonEnc) AppendByteString(v []byte) {
	e.sep()
	e.buf = appendJSONStringBytes(e.buf, v)
}
func (e *jsonEnc) AppendComplex128(v complex128) {
	e.sep()
	e.buf = appendJSONStringBytes(e.buf, appendComplex(nil, v))
}
func (e *jsonEnc) AppendComplex64(v complex64) { e.AppendComplex128(complex128(v)) }
func (e *jsonEnc) AppendFloat64(v float64)     { e.sep(); e.buf = appendFloat(e.buf, v, 64, true) }
func (e *jsonEnc) AppendFloat32(v float32) {
	e.sep()
	e.buf = appendFloat(e.buf, float64(v), 32, true)
}
func (e *jsonEnc) AppendInt(v int)         { e.AppendInt64(int64(v)) }
func (e *jsonEnc) AppendInt64(v int64)     { e.sep(); e.buf = strconv.AppendInt(e.buf, v, 10) }
func (e *jsonEnc) AppendInt32(v int32)     { e.AppendInt64(int64(v)) }
func (e *jsonEnc) AppendInt16(v int16)     { e.AppendInt64(int64(v)) }
func (e *jsonEnc) AppendInt8(v int8)       { e.AppendInt64(int64(v)) }
func (e *jsonEnc) AppendString(v string)   { e.sep(); e.buf = appendJSONString(e.buf, v) }
func (e *jsonEnc) AppendUint(v uint)       { e.AppendUint64(uint64(v)) }
func (e *jsonEnc) AppendUint64(v uint64)   { e.sep(); e.buf = strconv.AppendUint(e.buf, v, 10) }
func (e *jsonEnc) AppendUint32(v uint32)   { e.AppendUint64(uint64(v)) }
func (e *jsonEnc) AppendUint16(v uint16)   { e.AppendUint64(uint64(v)) }
func (e *jsonEnc) AppendUint8(v uint8)     { e.AppendUint64(uint64(v)) }
func (e *jsonEnc) AppendUintptr(v uintptr) { e.AppendUint64(uint64(v)) }
func (e *jsonEnc) AppendDuration(v time.Duration) {
	e.sep()
	e.buf = strconv.AppendInt(e.buf, int64(v), 10)
}
func (e *jsonEnc) AppendTime(v time.Time) {
	e.sep()
	var b [40]byte
	e.buf = appendJSONStringBytes(e.buf, appendTimestamp(b[:0], v))
}
func (e *jsonEnc) AppendArray(m zapcore.ArrayMarshaler) error {
	e.sep()
	return e.array(m)
}
func (e *jsonEnc) AppendObject(m zapcore.ObjectMarshaler) error {
	e.sep()
	return e.object(m)
}
func (e *jsonEnc) AppendReflected(v any) error {
	e.sep()
	return e.reflected(v)
}

// Text helpers shared by the formats.

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string: quotes, the escapes JSON
// requires, \u00XX for other control characters, and U+FFFD for each byte
// of invalid UTF-8, so the output is always valid UTF-8 on one line.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	dst = appendJSONStringBody(dst, s)
	return append(dst, '"')
}

func appendJSONStringBytes(dst []byte, s []byte) []byte {
	dst = append(dst, '"')
	dst = appendJSONBody(dst, s)
	return append(dst, '"')
}

func appendJSONStringBody(dst []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		if i = safeRun(s, i, '"', '\\'); i == len(s) {
			break
		}
		c := s[i]
		if jsonSafe[c] {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		dst = appendJSONEscape(dst, c)
		i++
		start = i
	}
	return append(dst, s[start:]...)
}

// appendJSONBody is appendJSONStringBody for a byte slice.
func appendJSONBody(dst []byte, s []byte) []byte {
	start := 0
	for i := 0; i < len(s); {
		if i = safeRunBytes(s, i, '"', '\\'); i == len(s) {
			break
		}
		c := s[i]
		if jsonSafe[c] {
			i++
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(s[i:])
			if r != utf8.RuneError || size != 1 {
				i += size
				continue
			}
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i++
			start = i
			continue
		}
		dst = append(dst, s[start:i]...)
		dst = appendJSONEscape(dst, c)
		i++
		start = i
	}
	return append(dst, s[start:]...)
}

func appendJSONEscape(dst []byte, c byte) []byte {
	switch c {
	case '"', '\\':
		return append(dst, '\\', c)
	case '\n':
		return append(dst, '\\', 'n')
	case '\r':
		return append(dst, '\\', 'r')
	case '\t':
		return append(dst, '\\', 't')
	}
	return append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
}

// appendFloat writes a float as zap's JSON encoder does; NaN and the
// infinities, which JSON lacks, become strings when quoted is set.
func appendFloat(dst []byte, f float64, bits int, quoted bool) []byte {
	switch {
	case math.IsNaN(f):
		if quoted {
			return append(dst, `"NaN"`...)
		}
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		if quoted {
			return append(dst, `"+Inf"`...)
		}
		return append(dst, "+Inf"...)
	case math.IsInf(f, -1):
		if quoted {
			return append(dst, `"-Inf"`...)
		}
		return append(dst, "-Inf"...)
	}
	return strconv.AppendFloat(dst, f, 'f', -1, bits)
}

func appendComplex(dst []byte, c complex128) []byte {
	dst = strconv.AppendFloat(dst, real(c), 'f', -1, 64)
	if imag(c) >= 0 {
		dst = append(dst, '+')
	}
	dst = strconv.AppendFloat(dst, imag(c), 'f', -1, 64)
	return append(dst, 'i')
}

// appendTimestamp is the one time layout of every format: UTC, RFC 3339
// with microseconds, as the JSON format's ts (and RFC 5424 allows at most
// six fractional digits).
func appendTimestamp(dst []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(dst, "2006-01-02T15:04:05.000000Z07:00")
	}
	hour, minute, sec := t.Clock()
	us := t.Nanosecond() / 1000
	// Written digit by digit: time.AppendFormat interprets its layout on
	// every call, and every record carries one to three timestamps.
	return append(dst,
		byte('0'+year/1000), byte('0'+year/100%10), byte('0'+year/10%10), byte('0'+year%10), '-',
		byte('0'+int(month)/10), byte('0'+int(month)%10), '-',
		byte('0'+day/10), byte('0'+day%10), 'T',
		byte('0'+hour/10), byte('0'+hour%10), ':',
		byte('0'+minute/10), byte('0'+minute%10), ':',
		byte('0'+sec/10), byte('0'+sec%10), '.',
		byte('0'+us/100000), byte('0'+us/10000%10), byte('0'+us/1000%10),
		byte('0'+us/100%10), byte('0'+us/10%10), byte('0'+us%10), 'Z')
}

// jsonSafe marks the bytes a JSON string holds as they are: printable
// ASCII other than the quote and the backslash.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// safeRun returns the index of the first 8-byte block at or after i that
// holds a byte needing attention: a control character (< 0x20 or 0x7f),
// a or b, or a non-ASCII byte. Escaping loops skip plain text with it
// eight bytes at a time.
func safeRun(s string, i int, a, b byte) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	ma, mb := lo*uint64(a), lo*uint64(b)
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		x, y, z := w^ma, w^mb, w^(lo*0x7f)
		if (w|(w-lo*0x20)|((x-lo)&^x)|((y-lo)&^y)|((z-lo)&^z))&hi != 0 {
			return i
		}
	}
	return i
}

func safeRunBytes(s []byte, i int, a, b byte) int {
	const lo, hi = 0x0101010101010101, 0x8080808080808080
	ma, mb := lo*uint64(a), lo*uint64(b)
	for ; i+8 <= len(s); i += 8 {
		w := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		x, y, z := w^ma, w^mb, w^(lo*0x7f)
		if (w|(w-lo*0x20)|((x-lo)&^x)|((y-lo)&^y)|((z-lo)&^z))&hi != 0 {
			return i
		}
	}
	return i
}
