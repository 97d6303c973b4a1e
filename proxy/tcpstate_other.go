//go:build !linux

package proxy

import "net"

// receivedReset cannot tell which side reset without Linux's TCP_INFO; the
// upstream is blamed, as the conservative reading for a diagnostic tool.
func receivedReset(*net.TCPConn) bool { return false }

// waitReadable is a no-op where the read buffer is simply held while waiting.
func waitReadable(any) error { return nil }
