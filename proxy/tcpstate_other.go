//go:build !linux

package proxy

import (
	"io"
	"net"
)

// receivedReset cannot tell which side reset without Linux's TCP_INFO; the
// upstream is blamed, as the conservative reading for a diagnostic tool.
func receivedReset(*net.TCPConn) bool { return false }

// readPooled holds the buffer while it waits where the poller cannot be
// asked first.
func readPooled(src io.Reader) (*[]byte, int, error) {
	bp := bufPool.Get().(*[]byte)
	n, err := src.Read(*bp)
	return bp, n, err
}

// awaitQueued lets the splice (or copy) wait for the bytes itself.
func awaitQueued(_ any, max int64) (int64, error) { return max, nil }
