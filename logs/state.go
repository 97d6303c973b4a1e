package logs

import (
	"encoding/base64"
	"math"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap/zapcore"
)

// format selects what a state writes for keys outside the mapping.
type format uint8

const (
	formatECS format = iota
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
	// empty marks the set slots that hold empty text, which CEF leaves
	// out: kept here so that the writers test one bit, not the value.
	empty  uint64
	vals   [numSlots]val
	arena  []byte
	extra  []byte
	ns     []byte // namespace prefix from OpenNamespace, "a.b."
	nested jsonEnc
	out    []byte // the record being written
}

// newState's nested renderer writes as the ECS and CEF encoders always
// have: U+FFFD itself for invalid UTF-8, reflected values as json.Marshal.
func newState(f format) *state {
	return &state{format: f, nested: jsonEnc{esc: ecsJSON, html: true}}
}

var statePool = sync.Pool{New: func() any { return newState(formatECS) }}

func getState(f format) *state {
	s := statePool.Get().(*state)
	s.format = f
	return s
}

func (s *state) reset() {
	s.set, s.empty = 0, 0
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
	s.set, s.empty = base.set, base.empty
	s.vals = base.vals
	s.arena = append(s.arena[:0], base.arena...)
	s.extra = append(s.extra[:0], base.extra...)
	s.ns = append(s.ns[:0], base.ns...)
}

func (s *state) has(k slot) bool { return s.set&(1<<k) != 0 }

// filled reports whether slot k holds a value other than empty text.
func (s *state) filled(k slot) bool { return (s.set&^s.empty)&(1<<k) != 0 }

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
	return s.filled(k) && (s.vals[k].kind == kString || s.vals[k].kind == kBytes)
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

// slotFor is the slot key goes into: numSlots for a key the table lacks,
// or any key inside a namespace. Small enough to be inlined into the Add
// methods, as is fill.
func (s *state) slotFor(key string) slot {
	if k, ok := lookup(key); ok && len(s.ns) == 0 {
		return k
	}
	return numSlots
}

// fill marks slot k < numSlots as set, and as empty when its text is, and
// returns its value to fill in.
func (s *state) fill(k slot, empty bool) *val {
	bit := uint64(1) << (k & 63)
	s.set |= bit
	s.empty &^= bit
	if empty {
		s.empty |= bit
	}
	return &s.vals[k]
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
		s.extra = append(s.extra, `,"`+ecsPrefix...)
		s.extra = appendEscaped(s.extra, s.ns, ecsJSON)
		s.extra = appendEscaped(s.extra, key, ecsJSON)
		s.extra = append(s.extra, '"', ':')
	}
}

// extraText writes a text value for the current extra key.
func extraText[T text](s *state, v T) {
	if s.format == formatCEF {
		s.extra = appendEscaped(s.extra, v, cefValue)
		return
	}
	s.extra = appendJSONString(s.extra, v)
}

// extraNested writes what s.nested rendered for the current extra key: JSON
// in ECS, JSON as a CEF value in CEF. A reflected value that could not be
// encoded rendered nothing, and the key already written wants a value: the
// error says why there is none.
func (s *state) extraNested(err error) error {
	v := s.nested.buf
	if len(v) == 0 && err != nil {
		v = appendJSONString(v, err.Error())
	}
	if s.format == formatCEF {
		s.extra = appendEscaped(s.extra, v, cefValue)
	} else {
		s.extra = append(s.extra, v...)
	}
	s.nested.buf = v[:0]
	return err
}

// zapcore.ObjectEncoder.

func (s *state) AddString(key, v string) {
	if k := s.slotFor(key); k < numSlots {
		p := s.fill(k, v == "")
		p.kind, p.s = kString, v
		return
	}
	if v == "" && s.format == formatCEF {
		return // an empty CEF value reads as a missing one; leave the key out
	}
	s.extraKey(key)
	extraText(s, v)
}

func (s *state) AddByteString(key string, v []byte) {
	if k := s.slotFor(key); k < numSlots {
		p := s.fill(k, len(v) == 0)
		p.kind, p.i, p.n = kBytes, int64(len(s.arena)), len(v)
		s.arena = append(s.arena, v...)
		return
	}
	if len(v) == 0 && s.format == formatCEF {
		return
	}
	s.extraKey(key)
	extraText(s, v)
}

// AddBinary, AddComplex128 and AddTime render their text in s.nested's
// buffer first: CEF escapes it (base64 has =), and a buffer of their own
// would cost an allocation.
func (s *state) AddBinary(key string, v []byte) {
	s.extraKey(key)
	s.nested.buf = base64.StdEncoding.AppendEncode(s.nested.buf[:0], v)
	extraText(s, s.nested.buf)
}

func (s *state) AddBool(key string, v bool) {
	if k := s.slotFor(key); k < numSlots {
		p := s.fill(k, false)
		p.kind, p.b = kBool, v
		return
	}
	s.extraKey(key)
	s.extra = strconv.AppendBool(s.extra, v)
}

func (s *state) AddInt64(key string, v int64) {
	if k := s.slotFor(key); k < numSlots {
		p := s.fill(k, false)
		p.kind, p.i = kInt, v
		return
	}
	s.extraKey(key)
	s.extra = appendInt(s.extra, v)
}

func (s *state) AddUint64(key string, v uint64) {
	if k := s.slotFor(key); k < numSlots {
		p := s.fill(k, false)
		p.kind, p.i = kUint, int64(v)
		return
	}
	s.extraKey(key)
	s.extra = appendUint(s.extra, v)
}

func (s *state) AddFloat64(key string, v float64) {
	if k := s.slotFor(key); k < numSlots {
		p := s.fill(k, false)
		p.kind, p.f = kFloat, v
		return
	}
	s.extraKey(key)
	s.extra = appendFloat(s.extra, v, 64, s.format != formatCEF)
}

func (s *state) AddFloat32(key string, v float32) {
	if k := s.slotFor(key); k < numSlots {
		p := s.fill(k, false)
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

func (s *state) AddComplex128(key string, v complex128) { s.complex(key, v, 64) }
func (s *state) AddComplex64(key string, v complex64)   { s.complex(key, complex128(v), 32) }

func (s *state) complex(key string, v complex128, bits int) {
	s.extraKey(key)
	s.nested.buf = appendComplex(s.nested.buf[:0], v, bits)
	extraText(s, s.nested.buf)
}

func (s *state) AddTime(key string, v time.Time) {
	s.extraKey(key)
	s.nested.buf = appendTimestamp(s.nested.buf[:0], v)
	extraText(s, s.nested.buf)
}

func (s *state) AddArray(key string, m zapcore.ArrayMarshaler) error {
	s.extraKey(key)
	s.nested.buf = s.nested.buf[:0]
	return s.extraNested(s.nested.AppendArray(m))
}

func (s *state) AddObject(key string, m zapcore.ObjectMarshaler) error {
	s.extraKey(key)
	s.nested.buf = s.nested.buf[:0]
	return s.extraNested(s.nested.AppendObject(m))
}

func (s *state) AddReflected(key string, v any) error {
	s.extraKey(key)
	s.nested.buf = s.nested.buf[:0]
	return s.extraNested(s.nested.AppendReflected(v))
}

func (s *state) OpenNamespace(key string) {
	s.ns = append(s.ns, key...)
	s.ns = append(s.ns, '.')
}
