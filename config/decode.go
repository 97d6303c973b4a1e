package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
)

// What a mistyped value should have been. Used by the decode hook and by the
// environment conversion so both sources read alike.
const (
	allowDuration = "want a Go duration such as 5s or 250ms"
	allowBool     = "want true or false"
	allowInt      = "want a whole number"
	allowString   = "want a string"
	allowList     = "want a list"
)

// strictHook checks each value against the type of the field it is decoded
// into, before mapstructure sees it. It exists because mapstructure strips
// the value from its own errors (GHSA-fv92-fjc5-jj9h), and a message must
// name key, value and what is allowed. It returns a *FieldError without Key;
// decodeErrors fills the key in from mapstructure's DecodeError.
func strictHook(from, to reflect.Value) (any, error) {
	data := from.Interface()
	if to.Type() == durationType {
		switch d := data.(type) {
		case time.Duration:
			return d, nil
		case string:
			parsed, err := time.ParseDuration(d)
			if err != nil {
				return nil, &FieldError{Value: d, Allowed: allowDuration}
			}
			return parsed, nil
		}
		// A bare number would decode as nanoseconds: 5 meaning 5ns is
		// never what was meant.
		return nil, &FieldError{Value: render(data), Allowed: allowDuration}
	}
	switch to.Kind() {
	case reflect.Bool:
		if from.Kind() != reflect.Bool {
			return nil, &FieldError{Value: render(data), Allowed: allowBool}
		}
	case reflect.String:
		// A number is accepted where a string is wanted: YAML reads an
		// unquoted rule id such as 125 as an int, and nothing is ambiguous.
		switch {
		case from.Kind() == reflect.String:
		case from.CanInt():
			return strconv.FormatInt(from.Int(), 10), nil
		case from.CanUint():
			return strconv.FormatUint(from.Uint(), 10), nil
		case from.CanFloat():
			return strconv.FormatFloat(from.Float(), 'f', -1, 64), nil
		default:
			return nil, &FieldError{Value: render(data), Allowed: allowString}
		}
	case reflect.Int:
		switch {
		case from.CanInt(), from.CanUint():
		case from.CanFloat():
			f := from.Float()
			if f != math.Trunc(f) || math.Abs(f) > 1<<53 {
				return nil, &FieldError{Value: render(data), Allowed: allowInt}
			}
			return int(f), nil
		default:
			return nil, &FieldError{Value: render(data), Allowed: allowInt}
		}
	case reflect.Slice:
		if k := from.Kind(); k != reflect.Slice && k != reflect.Array {
			return nil, &FieldError{Value: render(data), Allowed: allowList}
		}
	case reflect.Struct:
		if k := from.Kind(); k != reflect.Map && k != reflect.Struct {
			return nil, &FieldError{Value: render(data), Allowed: allowMapping(to.Type())}
		}
	}
	return data, nil
}

// allowMapping lists the keys a struct takes, so that `parent: http://...`
// says what should have been written instead.
func allowMapping(t reflect.Type) string {
	var keys []string
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() {
			keys = append(keys, f.Tag.Get("mapstructure"))
		}
	}
	return "want a mapping with keys " + strings.Join(keys, ", ")
}

func render(v any) string {
	if v == nil {
		return ""
	}
	return fmt.Sprint(v)
}

// decodeErrors flattens what UnmarshalExact returned into one error per
// problem, each a *FieldError or *UnknownKeyError where it can be.
func decodeErrors(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, decodeErrors(e)...)
		}
		return out
	}
	de, ok := err.(*mapstructure.DecodeError)
	if !ok {
		if inner := errors.Unwrap(err); inner != nil {
			return decodeErrors(inner)
		}
		return []error{fmt.Errorf("config: %w", err)}
	}
	name, inner := de.Name(), de.Unwrap()
	var fe *FieldError
	var ute *mapstructure.UnconvertibleTypeError
	switch {
	case errors.As(inner, &fe):
		fe.Key = name
		return []error{fe}
	case errors.As(inner, &ute):
		return []error{fieldError(name, render(ute.Value), "want a value of type "+ute.Expected.Type().String())}
	}
	// mapstructure reports unknown keys only as text; its format is fixed
	// by the pinned version and covered by the unknown-key fixtures.
	if keys, ok := strings.CutPrefix(inner.Error(), "has invalid keys: "); ok {
		var out []error
		for k := range strings.SplitSeq(keys, ", ") {
			if name != "" {
				k = name + "." + k
			}
			out = append(out, &UnknownKeyError{Key: k})
		}
		return out
	}
	return []error{fmt.Errorf("config: %s: %w", name, inner)}
}
