package config

import (
	"fmt"
	"strconv"
	"strings"
)

// FieldError is one rejected setting. Load and Validate return an
// errors.Join of these (and of *UnknownKeyError), so a caller can report
// every problem at once or pick them apart with errors.As.
type FieldError struct {
	// Key is the dotted key, with [i] for list elements: rules.user[0].id.
	Key string
	// Value is the offending value as given, with any URL password masked.
	Value string
	// Allowed says what would have been accepted.
	Allowed string
}

func (e *FieldError) Error() string {
	// Masked again here, not only at construction, because a FieldError
	// built elsewhere must not be able to print a credential either.
	return fmt.Sprintf("config: %s = %q: %s", e.Key, maskPassword(e.Value), e.Allowed)
}

// UnknownKeyError reports a key that Config has no field for, usually a typo.
// The value is left out on purpose: a mistyped credential key still holds
// the credential.
type UnknownKeyError struct {
	Key string
}

func (e *UnknownKeyError) Error() string {
	key := e.Key
	// The key is user input: a control character in it must not forge a
	// second line in a log.
	if q := strconv.Quote(key); q[1:len(q)-1] != key {
		key = q
	}
	return "config: " + key + ": unknown key"
}

func fieldError(key, value, allowed string) *FieldError {
	return &FieldError{Key: key, Value: maskPassword(value), Allowed: allowed}
}

// passwordMask replaces a parent proxy password wherever the config is shown.
const passwordMask = "xxxxx"

// maskPassword hides the password of a URL-like string. It works on the raw
// text rather than on url.Parse, because the values that most need masking
// are the ones that fail to parse: "user:pa ss@proxy" or a URL without a
// scheme. It masks from the first colon of the userinfo to the last '@', so
// a malformed value is over-masked rather than leaked.
func maskPassword(s string) string {
	start := 0
	if i := strings.Index(s, "://"); i >= 0 {
		start = i + len("://")
	}
	rest := s[start:]
	at := strings.LastIndex(rest, "@")
	if at < 0 {
		return s
	}
	colon := strings.Index(rest[:at], ":")
	if colon < 0 {
		return s
	}
	return s[:start] + rest[:colon+1] + passwordMask + rest[at:]
}
