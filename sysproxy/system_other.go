//go:build !windows

package sysproxy

// New returns the PC's settings; elsewhere than Windows there are none.
func New(backup string) (*System, error) { return nil, ErrUnsupported }
