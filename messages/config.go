package messages

import (
	"errors"
	"strings"

	"github.com/m365tap/m365tap/config"
)

// ConfigError renders a configuration error for a person in the printer's
// language: each rejected setting on a line of its own, naming the key,
// the value and what is allowed. What is allowed stays as the config
// package wrote it (key names and values are the same in every language).
// ok is false when err holds no configuration error, and the caller
// prints it as it is.
func (p *Printer) ConfigError(err error) (text string, ok bool) {
	var lines []string
	var walk func(error)
	walk = func(e error) {
		if j, isJoin := e.(interface{ Unwrap() []error }); isJoin {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		var fe *config.FieldError
		var uk *config.UnknownKeyError
		switch {
		case errors.As(e, &fe):
			// Error() masks a password in the value; the message must too.
			lines = append(lines, p.T("config.field", Args{"Key": fe.Key, "Value": maskedValue(fe), "Allowed": fe.Allowed}))
		case errors.As(e, &uk):
			// As Error shows it: a key with control characters quoted.
			key := strings.TrimSuffix(strings.TrimPrefix(uk.Error(), "config: "), ": unknown key")
			lines = append(lines, p.T("config.unknown_key", Args{"Key": key}))
		default:
			lines = append(lines, e.Error())
		}
	}
	walk(err)
	var fe *config.FieldError
	var uk *config.UnknownKeyError
	if !errors.As(err, &fe) && !errors.As(err, &uk) {
		return "", false
	}
	return strings.Join(lines, "\n"), true
}

// maskedValue is the value as FieldError.Error shows it: quoted, with a
// URL password masked.
func maskedValue(fe *config.FieldError) string {
	s := fe.Error()
	prefix := "config: " + fe.Key + " = "
	s = strings.TrimPrefix(s, prefix)
	if i := strings.LastIndex(s, ": "+fe.Allowed); i >= 0 && fe.Allowed != "" {
		s = s[:i]
	}
	return s
}
