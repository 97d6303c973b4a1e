package proxy

import (
	"net"

	"golang.org/x/sys/unix"
)

// receivedReset reports whether the peer of c reset the connection: after a
// RST the kernel moves the socket to TCP_CLOSE, while a FIN leaves it in
// CLOSE_WAIT. A copy error alone cannot say which socket of a splice failed.
func receivedReset(c *net.TCPConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	_ = raw.Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		closed = err == nil && info.State == unix.BPF_TCP_CLOSE
	})
	return closed
}
