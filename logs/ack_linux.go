package logs

import (
	"net"

	"golang.org/x/sys/unix"
)

// tcpAcked is the number of bytes of c the peer's TCP has acknowledged
// (tcpi_bytes_acked, Linux 4.1 and later; the SYN counts as one). It stays
// readable after a reset, until the socket is closed.
func tcpAcked(c *net.TCPConn) (uint64, bool) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, false
	}
	var acked uint64
	ok := false
	_ = raw.Control(func(fd uintptr) {
		info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO)
		if err == nil {
			acked, ok = info.Bytes_acked, true
		}
	})
	return acked, ok
}
