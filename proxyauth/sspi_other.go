//go:build !windows

package proxyauth

import (
	"errors"
	"fmt"
)

// NewSSPI authenticates as the logged-on Windows user through SSPI's
// Negotiate package. It exists only on Windows; here it returns an error
// wrapping errors.ErrUnsupported.
func NewSSPI(spn string) (Client, error) {
	return nil, fmt.Errorf("proxyauth: sspi (the logged-on Windows user) for %s: %w", spn, errors.ErrUnsupported)
}
