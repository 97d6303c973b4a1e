//go:build !windows

package ncsi

import "errors"

// ErrUnsupported: NCSI exists on Windows only.
var ErrUnsupported = errors.New("NCSI settings exist on Windows only")

// System is the Source of this PC's registry; there is none here.
func System() (Source, error) { return nil, ErrUnsupported }
