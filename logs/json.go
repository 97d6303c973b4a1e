package logs

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"sync"
	"time"

	"go.uber.org/zap/buffer"
	"go.uber.org/zap/zapcore"
)

// jsonEnc writes fields as zap's JSON encoder does under EncoderConfig, to
// the byte: the json format promises the lines it wrote before it had an
// encoder of its own (json_test.go compares the two on every input). Zap's
// encoder escapes every byte through function values and allocates for the
// timestamp; this one skips plain text a word at a time.
//
// It also renders the nested values (arrays, objects, reflected values) of
// the ECS and CEF formats, with esc and html set as those formats had them.
type jsonEnc struct {
	buf []byte
	// open counts the namespaces opened in the current object: they close
	// with it.
	open int
	esc  *escaper
	// html escapes <, > and & in reflected values, as json.Marshal does.
	html bool

	rbuf bytes.Buffer
	renc *json.Encoder
	rfix []byte // a reflected value with DEL or C1 controls escaped
}

// jsonEncoder is the json format's zapcore.Encoder. Its jsonEnc holds the
// fields added with With, already written.
type jsonEncoder struct{ *jsonEnc }

func newJSONEncoder() *jsonEncoder { return &jsonEncoder{&jsonEnc{esc: zapJSON}} }

var jsonPool = sync.Pool{New: func() any { return &jsonEnc{esc: zapJSON} }}

func (e *jsonEncoder) Clone() zapcore.Encoder {
	return &jsonEncoder{&jsonEnc{buf: bytes.Clone(e.buf), open: e.open, esc: e.esc}}
}

func (e *jsonEncoder) EncodeEntry(ent zapcore.Entry, fields []zapcore.Field) (*buffer.Buffer, error) {
	f := jsonPool.Get().(*jsonEnc)
	f.buf = append(f.buf[:0], `{"level":"`...)
	f.buf = appendEscaped(f.buf, ent.Level.String(), f.esc)
	f.buf = append(f.buf, '"')
	if !ent.Time.IsZero() {
		f.buf = append(f.buf, `,"ts":"`...)
		f.buf = appendTimestamp(f.buf, ent.Time)
		f.buf = append(f.buf, '"')
	}
	f.buf = appendQuoted(append(f.buf, `,"msg":`...), ent.Message, f.esc)
	if len(e.buf) > 0 {
		f.buf = sep(f.buf)
		f.buf = append(f.buf, e.buf...)
	}
	f.open = e.open
	for i := range fields {
		fields[i].AddTo(f)
	}
	f.closeNamespaces()
	f.buf = append(f.buf, '}', '\n')
	out := bufferPool.Get()
	_, _ = out.Write(f.buf)
	if cap(f.buf) <= 64<<10 && f.rbuf.Cap() <= 64<<10 {
		jsonPool.Put(f)
	}
	return out, nil
}

// sep writes the comma before a value unless it opens an object or array
// or follows a key. Zap decides by the last byte written, and so must this
// encoder to write what zap writes after an empty namespace or With.
func sep(b []byte) []byte {
	if n := len(b); n > 0 {
		switch b[n-1] {
		case '{', '[', ':', ',', ' ':
		default:
			b = append(b, ',')
		}
	}
	return b
}

func (e *jsonEnc) sep() { e.buf = sep(e.buf) }

// key writes the separator and the key; the value follows as it is.
func (e *jsonEnc) key(k string) { e.buf = appendKey(sep(e.buf), k, e.esc) }

func (e *jsonEnc) closeNamespaces() {
	for ; e.open > 0; e.open-- {
		e.buf = append(e.buf, '}')
	}
}

// reflected is v as encoding/json writes it, nothing when that fails;
// but for DEL and the C1 controls, which it writes raw and the formats
// escape like every control character (U+2028 and U+2029 it escapes
// itself).
func (e *jsonEnc) reflected(v any) ([]byte, error) {
	if v == nil {
		return []byte("null"), nil
	}
	if e.renc == nil {
		e.renc = json.NewEncoder(&e.rbuf)
		e.renc.SetEscapeHTML(e.html)
	}
	e.rbuf.Reset()
	if err := e.renc.Encode(v); err != nil {
		return nil, err
	}
	b := bytes.TrimSuffix(e.rbuf.Bytes(), []byte{'\n'})
	fixed := escapeReflected(e.rfix[:0], b)
	if fixed == nil {
		return b, nil
	}
	e.rfix = fixed
	return fixed, nil
}

// escapeReflected appends JSON text b to dst with DEL and the C1 controls
// as \u escapes, and returns nil when b has none. Outside its strings JSON
// text is ASCII without DEL, so every such character is inside a string;
// and 0xc2 never continues a UTF-8 sequence, so 0xc2 0x80..0x9f is always
// a C1 control.
func escapeReflected(dst, b []byte) []byte {
	start, found := 0, false
	for i := 0; i < len(b); i++ {
		var r rune
		switch c := b[i]; {
		case c == 0x7f:
			r = 0x7f
		case c == 0xc2 && i+1 < len(b) && b[i+1] >= 0x80 && b[i+1] < 0xa0:
			r = rune(b[i+1])
		default:
			continue
		}
		found = true
		dst = append(dst, b[start:i]...)
		dst = append(dst, '\\', 'u', '0', '0', hexDigits[r>>4], hexDigits[r&0xf])
		if r != 0x7f {
			i++
		}
		start = i + 1
	}
	if !found {
		return nil
	}
	return append(dst, b[start:]...)
}

// zapcore.ObjectEncoder.

func (e *jsonEnc) AddArray(k string, m zapcore.ArrayMarshaler) error {
	e.key(k)
	return e.AppendArray(m)
}

func (e *jsonEnc) AddObject(k string, m zapcore.ObjectMarshaler) error {
	e.key(k)
	return e.AppendObject(m)
}

func (e *jsonEnc) AddBinary(k string, v []byte) {
	e.AddString(k, base64.StdEncoding.EncodeToString(v))
}

func (e *jsonEnc) AddByteString(k string, v []byte) { e.buf = appendPair(sep(e.buf), k, v, e.esc) }
func (e *jsonEnc) AddBool(k string, v bool)         { e.key(k); e.buf = strconv.AppendBool(e.buf, v) }
func (e *jsonEnc) AddComplex128(k string, v complex128) {
	e.key(k)
	e.AppendComplex128(v)
}
func (e *jsonEnc) AddComplex64(k string, v complex64)    { e.key(k); e.AppendComplex64(v) }
func (e *jsonEnc) AddDuration(k string, v time.Duration) { e.key(k); e.AppendDuration(v) }
func (e *jsonEnc) AddFloat64(k string, v float64)        { e.key(k); e.buf = appendFloat(e.buf, v, 64, true) }
func (e *jsonEnc) AddFloat32(k string, v float32)        { e.key(k); e.AppendFloat32(v) }
func (e *jsonEnc) AddInt(k string, v int)                { e.AddInt64(k, int64(v)) }
func (e *jsonEnc) AddInt64(k string, v int64)            { e.key(k); e.buf = appendInt(e.buf, v) }
func (e *jsonEnc) AddInt32(k string, v int32)            { e.AddInt64(k, int64(v)) }
func (e *jsonEnc) AddInt16(k string, v int16)            { e.AddInt64(k, int64(v)) }
func (e *jsonEnc) AddInt8(k string, v int8)              { e.AddInt64(k, int64(v)) }
func (e *jsonEnc) AddString(k, v string)                 { e.buf = appendPair(sep(e.buf), k, v, e.esc) }
func (e *jsonEnc) AddTime(k string, v time.Time)         { e.key(k); e.AppendTime(v) }
func (e *jsonEnc) AddUint(k string, v uint)              { e.AddUint64(k, uint64(v)) }
func (e *jsonEnc) AddUint64(k string, v uint64)          { e.key(k); e.buf = appendUint(e.buf, v) }
func (e *jsonEnc) AddUint32(k string, v uint32)          { e.AddUint64(k, uint64(v)) }
func (e *jsonEnc) AddUint16(k string, v uint16)          { e.AddUint64(k, uint64(v)) }
func (e *jsonEnc) AddUint8(k string, v uint8)            { e.AddUint64(k, uint64(v)) }
func (e *jsonEnc) AddUintptr(k string, v uintptr)        { e.AddUint64(k, uint64(v)) }

// AddReflected writes nothing, not even the key, when v cannot be encoded:
// zap then adds the error under "<key>Error".
func (e *jsonEnc) AddReflected(k string, v any) error {
	b, err := e.reflected(v)
	if err != nil {
		return err
	}
	e.key(k)
	e.buf = append(e.buf, b...)
	return nil
}

func (e *jsonEnc) OpenNamespace(k string) {
	e.key(k)
	e.buf = append(e.buf, '{')
	e.open++
}

// zapcore.ArrayEncoder.

func (e *jsonEnc) AppendArray(m zapcore.ArrayMarshaler) error {
	e.sep()
	e.buf = append(e.buf, '[')
	err := m.MarshalLogArray(e)
	e.buf = append(e.buf, ']')
	return err
}

func (e *jsonEnc) AppendObject(m zapcore.ObjectMarshaler) error {
	open := e.open
	e.open = 0
	e.sep()
	e.buf = append(e.buf, '{')
	err := m.MarshalLogObject(e)
	e.buf = append(e.buf, '}')
	e.closeNamespaces()
	e.open = open
	return err
}

func (e *jsonEnc) AppendReflected(v any) error {
	b, err := e.reflected(v)
	if err != nil {
		return err
	}
	e.sep()
	e.buf = append(e.buf, b...)
	return nil
}

func (e *jsonEnc) AppendBool(v bool)             { e.sep(); e.buf = strconv.AppendBool(e.buf, v) }
func (e *jsonEnc) AppendByteString(v []byte)     { e.sep(); e.buf = appendQuoted(e.buf, v, e.esc) }
func (e *jsonEnc) AppendComplex128(v complex128) { e.complex(v, 64) }
func (e *jsonEnc) AppendComplex64(v complex64)   { e.complex(complex128(v), 32) }
func (e *jsonEnc) complex(v complex128, bits int) {
	e.sep()
	e.buf = append(e.buf, '"')
	e.buf = appendComplex(e.buf, v, bits)
	e.buf = append(e.buf, '"')
}
func (e *jsonEnc) AppendDuration(v time.Duration) { e.AppendInt64(int64(v)) }
func (e *jsonEnc) AppendFloat64(v float64)        { e.sep(); e.buf = appendFloat(e.buf, v, 64, true) }
func (e *jsonEnc) AppendFloat32(v float32) {
	e.sep()
	e.buf = appendFloat(e.buf, float64(v), 32, true)
}
func (e *jsonEnc) AppendInt(v int)       { e.AppendInt64(int64(v)) }
func (e *jsonEnc) AppendInt64(v int64)   { e.sep(); e.buf = appendInt(e.buf, v) }
func (e *jsonEnc) AppendInt32(v int32)   { e.AppendInt64(int64(v)) }
func (e *jsonEnc) AppendInt16(v int16)   { e.AppendInt64(int64(v)) }
func (e *jsonEnc) AppendInt8(v int8)     { e.AppendInt64(int64(v)) }
func (e *jsonEnc) AppendString(v string) { e.sep(); e.buf = appendQuoted(e.buf, v, e.esc) }
func (e *jsonEnc) AppendTime(v time.Time) {
	e.sep()
	e.buf = append(e.buf, '"')
	e.buf = appendTimestamp(e.buf, v)
	e.buf = append(e.buf, '"')
}
func (e *jsonEnc) AppendUint(v uint)       { e.AppendUint64(uint64(v)) }
func (e *jsonEnc) AppendUint64(v uint64)   { e.sep(); e.buf = appendUint(e.buf, v) }
func (e *jsonEnc) AppendUint32(v uint32)   { e.AppendUint64(uint64(v)) }
func (e *jsonEnc) AppendUint16(v uint16)   { e.AppendUint64(uint64(v)) }
func (e *jsonEnc) AppendUint8(v uint8)     { e.AppendUint64(uint64(v)) }
func (e *jsonEnc) AppendUintptr(v uintptr) { e.AppendUint64(uint64(v)) }
