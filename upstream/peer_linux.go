package upstream

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// peerClosed reports, in one non-blocking system call, whether the parent
// closed or reset an idle connection or sent bytes nobody asked for:
// recv with MSG_PEEK|MSG_DONTWAIT answers EAGAIN only for a live, quiet
// connection. It runs before every reuse of a pinned connection.
func peerClosed(tc *net.TCPConn) bool {
	rc, err := tc.SyscallConn()
	if err != nil {
		return true
	}
	closed := true
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, errno := unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		closed = !(errno == syscall.EAGAIN && n <= 0) && errno != syscall.EINTR
		if errno == syscall.EINTR {
			closed = peerClosedDeadline(tc)
		}
		return true // never wait: the answer is now or not at all
	})
	if err != nil {
		return true
	}
	return closed
}
