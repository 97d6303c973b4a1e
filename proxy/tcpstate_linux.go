package proxy

import (
	"net"
	"os"
	"syscall"

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

// waitReadable blocks until src has bytes (or EOF, or an error) without
// holding a buffer, so an idle tunnel still in its handshake costs no read
// buffer. It peeks one byte with MSG_PEEK; the read that follows takes it.
// A source that is not a socket returns at once.
func waitReadable(src any) error {
	sc, ok := src.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var one [1]byte
	var perr error
	werr := raw.Read(func(fd uintptr) bool {
		_, _, err := unix.Recvfrom(int(fd), one[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if err == unix.EAGAIN || err == unix.EINTR {
			return false
		}
		// Reporting a socket error clears it: keep it, or the read that
		// follows would see a plain EOF where the peer sent a reset.
		perr = err
		return true
	})
	if werr != nil {
		return werr
	}
	if perr != nil {
		return &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("recvfrom", perr)}
	}
	return nil
}
