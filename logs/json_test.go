package logs

import (
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// The json format's encoder must write what zap's JSON encoder writes with
// EncoderConfig, byte for byte: these tests give both the same entries and
// fields and compare.

// encodeBoth encodes one entry with zap's encoder and with ours, after
// adding with to each as zap's core.With does.
func encodeBoth(t testing.TB, ent zapcore.Entry, with [][]zapcore.Field, fields []zapcore.Field) (got, want string) {
	t.Helper()
	var encs [2]zapcore.Encoder
	encs[0], _ = NewEncoder("json", Meta{})
	encs[1] = zapcore.NewJSONEncoder(EncoderConfig())
	var out [2]string
	for i, enc := range encs {
		for _, fs := range with {
			enc = enc.Clone()
			for _, f := range fs {
				f.AddTo(enc)
			}
		}
		buf, err := enc.EncodeEntry(ent, fields)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = buf.String()
		buf.Free()
	}
	// The intended differences: ours writes DEL, the C1 controls and
	// U+2028/U+2029 as \u escapes; zap writes them raw (and so does
	// encoding/json, which both use for reflected values, for all but
	// U+2028/U+2029). Both sides are normalised the same way, after
	// checking that ours holds none of them raw.
	if i := strings.IndexFunc(out[0], rawEscapee); i >= 0 {
		t.Errorf("ours writes %U raw: %q", []rune(out[0][i:])[0], out[0])
	}
	return zapRaw.Replace(out[0]), zapRaw.Replace(out[1])
}

// rawEscapee reports the characters zap writes raw and ours escapes.
func rawEscapee(r rune) bool { return r == 0x7f || r >= 0x80 && r < 0xa0 || r == 0x2028 || r == 0x2029 }

// zapRaw rewrites those characters as ours writes them.
var zapRaw = func() *strings.Replacer {
	var pairs []string
	for _, r := range []rune{0x7f, 0x2028, 0x2029} {
		pairs = append(pairs, string(r), fmt.Sprintf(`\u%04x`, r))
	}
	for r := rune(0x80); r < 0xa0; r++ {
		pairs = append(pairs, string(r), fmt.Sprintf(`\u%04x`, r))
	}
	return strings.NewReplacer(pairs...)
}()

// verboseErr prints more with %+v, as pkg/errors' errors do.
type verboseErr struct{ msg string }

func (e verboseErr) Error() string { return e.msg }
func (e verboseErr) Format(s fmt.State, verb rune) {
	if s.Flag('+') {
		_, _ = io.WriteString(s, e.msg+"\n\tat main.go:1")
		return
	}
	_, _ = io.WriteString(s, e.msg)
}

// errGroup is multierr's shape, which zap writes as <key>Causes.
type errGroup []error

func (g errGroup) Error() string   { return "several" }
func (g errGroup) Errors() []error { return g }

type stringer string

func (s stringer) String() string { return string(s) }

// failing is an object and an array whose marshaling fails half-way.
type failing struct{}

func (failing) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("before", "x")
	return errors.New("object failed")
}

func (failing) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	enc.AppendString("before")
	return errors.New("array failed")
}

// nsObject opens namespaces inside an object and leaves them open.
type nsObject struct{}

func (nsObject) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddInt("a", 1)
	enc.OpenNamespace("inner")
	enc.AddInt("b", 2)
	enc.OpenNamespace("empty")
	return nil
}

// everyAppend appends one value of each kind to an array.
type everyAppend struct{}

func (everyAppend) MarshalLogArray(enc zapcore.ArrayEncoder) error {
	enc.AppendBool(true)
	enc.AppendByteString([]byte("b\xff\"s"))
	enc.AppendComplex128(complex(1.5, -2))
	enc.AppendComplex64(complex(1.1, 2.2))
	enc.AppendFloat64(math.Inf(-1))
	enc.AppendFloat32(1.1)
	enc.AppendInt(-1)
	enc.AppendInt64(math.MinInt64)
	enc.AppendInt32(-32)
	enc.AppendInt16(-16)
	enc.AppendInt8(-8)
	enc.AppendString("s\n")
	enc.AppendUint(1)
	enc.AppendUint64(math.MaxUint64)
	enc.AppendUint32(32)
	enc.AppendUint16(16)
	enc.AppendUint8(8)
	enc.AppendUintptr(0xdead)
	enc.AppendDuration(time.Second)
	enc.AppendTime(fixedTime.In(time.FixedZone("x", 3600)))
	_ = enc.AppendArray(zapcore.ArrayMarshalerFunc(func(zapcore.ArrayEncoder) error { return nil }))
	_ = enc.AppendObject(nsObject{})
	_ = enc.AppendReflected(map[string]int{"<a>": 1})
	_ = enc.AppendReflected(make(chan int)) // fails: nothing written
	_ = enc.AppendReflected(nil)
	return nil
}

func TestJSONMatchesZap(t *testing.T) {
	withNs := [][]zapcore.Field{{zap.String("session", "s1"), zap.Namespace("ns")}, {zap.Int("in_ns", 1)}}
	var nilStringer *stringer
	cases := []struct {
		name   string
		ent    zapcore.Entry
		with   [][]zapcore.Field
		fields []zapcore.Field
	}{
		{name: "empty", ent: zapcore.Entry{Time: fixedTime}},
		{name: "zero time", ent: zapcore.Entry{Message: "no ts", Level: zapcore.ErrorLevel}},
		{name: "levels", ent: zapcore.Entry{Level: zapcore.DPanicLevel, Time: fixedTime}},
		{name: "unknown level", ent: zapcore.Entry{Level: zapcore.Level(-7), Time: fixedTime}},
		{name: "other zone", ent: zapcore.Entry{Time: fixedTime.In(time.FixedZone("UTC-3", -3*3600)), Message: "m"}},
		{name: "year 10000", ent: zapcore.Entry{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), Message: "m"}},
		{name: "year 0", ent: zapcore.Entry{Time: time.Date(0, 12, 31, 23, 59, 59, 999999999, time.UTC), Message: "m"}},
		{name: "leap day", ent: zapcore.Entry{Time: time.Date(2000, 2, 29, 1, 2, 3, 4000, time.UTC), Message: "m"}},
		{name: "name caller stack", ent: zapcore.Entry{Time: fixedTime, LoggerName: "probe", Stack: "goroutine 1",
			Caller: zapcore.NewEntryCaller(0, "main.go", 1, true), Message: "dropped by the config"}},
		{name: "message escapes", ent: zapcore.Entry{Time: fixedTime, Message: "a\"b\\c\nd\re\tf\x00\x1f\x7f\xff\xc3(é€😀\u2028"}},
		{name: "scalars", ent: zapcore.Entry{Time: fixedTime, Message: "m"}, fields: []zapcore.Field{
			zap.Bool("t", true), zap.Int("i", -1), zap.Int8("i8", math.MinInt8), zap.Int16("i16", math.MaxInt16),
			zap.Int32("i32", math.MinInt32), zap.Int64("i64", math.MinInt64), zap.Uint("u", 7), zap.Uint8("u8", 255),
			zap.Uint16("u16", 65535), zap.Uint32("u32", math.MaxUint32), zap.Uint64("u64", math.MaxUint64), zap.Uintptr("p", 0xbeef),
			zap.Duration("d", -1500*time.Millisecond), zap.Binary("bin", []byte{0, 1, 0xff}), zap.ByteString("bs", []byte("x\x01\xe2\x82")),
			zap.Complex128("c128", complex(math.NaN(), math.Inf(1))), zap.Complex64("c64", complex(0.1, -0.2)),
			zap.Time("time", fixedTime.In(time.FixedZone("x", 7200))), zap.Time("zero_time", time.Time{}),
			zap.Stringer("stringer", stringer("s\"")), zap.Stringer("nil_stringer", nilStringer),
		}},
		{name: "floats", ent: zapcore.Entry{Time: fixedTime}, fields: []zapcore.Field{
			zap.Float64("nan", math.NaN()), zap.Float64("inf", math.Inf(1)), zap.Float64("ninf", math.Inf(-1)),
			zap.Float64("zero", 0), zap.Float64("nzero", math.Copysign(0, -1)), zap.Float64("ms", 30512.774),
			zap.Float64("ms2", 0.078), zap.Float64("ms3", 1e-7), zap.Float64("big", 1e21), zap.Float64("max", math.MaxFloat64),
			zap.Float64("edge", 4398046511103.999), zap.Float64("third", 1.0/3), zap.Float64("neg", -2.5),
			zap.Float32("f32", 1.1), zap.Float32("f32nan", float32(math.NaN())), zap.Float32("f32inf", float32(math.Inf(-1))),
		}},
		{name: "errors", ent: zapcore.Entry{Time: fixedTime}, fields: []zapcore.Field{
			zap.Error(errors.New("plain")), zap.Error(nil), zap.NamedError("verbose", verboseErr{"v"}),
			zap.NamedError("group", errGroup{errors.New("one"), verboseErr{"two"}}), zap.Errors("errs", []error{errors.New("a"), nil}),
		}},
		{name: "nested", ent: zapcore.Entry{Time: fixedTime}, fields: []zapcore.Field{
			zap.Object("obj", nsObject{}), zap.Array("every", everyAppend{}), zap.Strings("strs", []string{"a", "b\n"}),
			zap.Ints("ints", nil), zap.Object("failing", failing{}), zap.Array("failing_arr", failing{}),
			zap.Reflect("reflected", struct {
				A string `json:"a"`
				B []int
			}{"<&>", []int{1}}),
			zap.Reflect("bad", make(chan int)), zap.Any("nil", nil), zap.Any("map", map[string]any{"k": []any{1, "x"}}),
			zap.Inline(nsObject{}), zap.Skip(), zap.Int("after_inline", 3),
		}},
		{name: "namespaces", ent: zapcore.Entry{Time: fixedTime}, fields: []zapcore.Field{
			zap.Namespace("a"), zap.Namespace("b"), zap.String("k", "v"), zap.Namespace("c"),
		}},
		{name: "with", ent: zapcore.Entry{Time: fixedTime, Message: "m"}, with: withNs, fields: []zapcore.Field{zap.String("k", "v")}},
		{name: "with, no fields", ent: zapcore.Entry{Time: fixedTime, Message: "m"}, with: withNs},
		{name: "with empty namespace", ent: zapcore.Entry{Time: fixedTime}, with: [][]zapcore.Field{{zap.Namespace("ns")}}},
		{name: "with nested", ent: zapcore.Entry{Time: fixedTime}, with: [][]zapcore.Field{{zap.Object("o", nsObject{}), zap.Array("a", everyAppend{})}},
			fields: []zapcore.Field{zap.Namespace("n")}},
		{name: "keys escaped", ent: zapcore.Entry{Time: fixedTime}, fields: []zapcore.Field{
			zap.String("", ""), zap.String("k\"\n\xff", "v"), zap.String(strings.Repeat("long key ", 10), strings.Repeat("é", 40)),
		}},
	}
	for _, r := range records {
		cases = append(cases, struct {
			name   string
			ent    zapcore.Entry
			with   [][]zapcore.Field
			fields []zapcore.Field
		}{name: "record " + r.name, ent: zapcore.Entry{Level: r.level, Time: fixedTime, Message: r.msg}, fields: []zapcore.Field{zap.Inline(r.r)}})
	}
	for _, s := range hostile {
		r := hostileRecord(s)
		cases = append(cases, struct {
			name   string
			ent    zapcore.Entry
			with   [][]zapcore.Field
			fields []zapcore.Field
		}{name: "hostile " + s, ent: zapcore.Entry{Level: r.level, Time: fixedTime, Message: s}, fields: []zapcore.Field{zap.Inline(r.r)}})
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, want := encodeBoth(t, c.ent, c.with, c.fields)
			if got != want {
				t.Errorf("\n got: %q\nwant: %q", got, want)
			}
		})
	}
}

// TestJSONEncoderKeepsWithApart: fields added to a clone stay out of its
// parent, as with zap's encoder.
func TestJSONEncoderKeepsWithApart(t *testing.T) {
	parent, _ := NewEncoder("json", Meta{})
	parent.AddString("session", "s1")
	child := parent.Clone()
	child.OpenNamespace("child")
	child.AddString("extra", "x")
	ent := zapcore.Entry{Time: fixedTime, Message: "m"}
	for _, c := range []struct {
		enc  zapcore.Encoder
		want string
	}{
		{parent, `{"level":"info","ts":"2026-11-24T16:12:36.379166Z","msg":"m","session":"s1"}` + "\n"},
		{child, `{"level":"info","ts":"2026-11-24T16:12:36.379166Z","msg":"m","session":"s1","child":{"extra":"x"}}` + "\n"},
	} {
		buf, _ := c.enc.EncodeEntry(ent, nil)
		if buf.String() != c.want {
			t.Errorf("got %s, want %s", buf, c.want)
		}
		buf.Free()
	}
}

func FuzzJSONMatchesZap(f *testing.F) {
	for _, h := range hostile {
		f.Add(h, h, []byte(h), int64(-1), uint64(1), 1.5, float32(0.1), int8(0), int64(1795536756), int64(379166000))
	}
	f.Add("exchange", "duration_ms", []byte("56,59"), int64(math.MinInt64), uint64(math.MaxUint64), 30512.774, float32(math.Inf(1)), int8(1), int64(-62135596801), int64(0))
	f.Add("", "", []byte{}, int64(0), uint64(0), math.NaN(), float32(-0.0), int8(-1), int64(253402300800), int64(999999999))
	f.Fuzz(func(t *testing.T, msg, key string, b []byte, i int64, u uint64, fl float64, f32 float32, level int8, sec, nsec int64) {
		ent := zapcore.Entry{Level: zapcore.Level(level%8 - 1), Time: time.Unix(sec, nsec), Message: msg}
		obj := zapcore.ObjectMarshalerFunc(func(enc zapcore.ObjectEncoder) error {
			enc.AddString(key, msg)
			enc.OpenNamespace(key)
			enc.AddByteString(key, b)
			return enc.AddArray(key, zapcore.ArrayMarshalerFunc(func(enc zapcore.ArrayEncoder) error {
				enc.AppendString(key)
				enc.AppendFloat64(fl)
				enc.AppendFloat32(f32)
				enc.AppendByteString(b)
				return nil
			}))
		})
		with := [][]zapcore.Field{{zap.String(key, msg), zap.Namespace(key)}}
		fields := []zapcore.Field{
			zap.String(key, msg), zap.ByteString(key, b), zap.Binary(key, b), zap.Int64(key, i), zap.Uint64(key, u),
			zap.Float64(key, fl), zap.Float32(key, f32), zap.Float64(key, float64(i)/1000), zap.Float64(key, float64(u)/1000),
			zap.Complex128(key, complex(fl, float64(f32))), zap.Complex64(key, complex(f32, float32(fl))),
			zap.Duration(key, time.Duration(i)), zap.Time(key, time.Unix(sec, nsec).In(time.FixedZone(key, int(i%86400)))),
			zap.Object(key, obj), zap.Reflect(key, []any{msg, key, fl}), zap.Namespace(key), zap.Inline(obj),
		}
		got, want := encodeBoth(t, ent, with, fields)
		if got != want {
			t.Errorf("\n got: %q\nwant: %q", got, want)
		}
	})
}
