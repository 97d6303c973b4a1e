//go:build !linux

package proxy

import (
	"io"
	"net"
)

// receivedReset cannot tell which side reset without Linux's TCP_INFO; the
// upstream is blamed, as the conservative reading for a diagnostic tool.
func receivedReset(*net.TCPConn) bool { return false }

// sockReader reads a tunnel's source the plain way: the read buffer (or a
// splice pipe) is held while waiting where the poller cannot be asked first.
type sockReader struct{ src io.Reader }

func (r *sockReader) init(src io.Reader) { r.src = src }

func (r *sockReader) read() (*[]byte, int, error) {
	bp := bufPool.Get().(*[]byte)
	n, err := r.src.Read(*bp)
	return bp, n, err
}

// queued lets the copy wait for the bytes itself.
func (r *sockReader) queued(max int64) (int64, error) { return max, nil }
