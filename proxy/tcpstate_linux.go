package proxy

import (
	"io"
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

// readPooled waits until src is readable and only then takes a buffer from
// bufPool and reads into it, all in one poller callback: a tunnel idling in
// its handshake holds no buffer, and a read costs one system call. The
// caller returns the buffer with bufPool.Put. A source that is not a socket
// is read the ordinary way.
func readPooled(src io.Reader) (bp *[]byte, n int, err error) {
	raw := rawConn(src)
	if raw == nil {
		bp = bufPool.Get().(*[]byte)
		n, err = src.Read(*bp)
		return bp, n, err
	}
	var rerr error
	werr := raw.Read(func(fd uintptr) bool {
		bp = bufPool.Get().(*[]byte)
		for {
			n, rerr = unix.Read(int(fd), *bp)
			if rerr != unix.EINTR {
				break
			}
		}
		if rerr == unix.EAGAIN {
			bufPool.Put(bp)
			bp = nil
			return false
		}
		return true
	})
	if bp == nil {
		bp = bufPool.Get().(*[]byte)
	}
	switch {
	case werr != nil:
		return bp, 0, werr
	case rerr != nil:
		return bp, 0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", rerr)}
	case n == 0:
		return bp, 0, io.EOF
	}
	return bp, n, nil
}

// awaitQueued blocks until src has bytes or reached its end, without
// holding anything, and returns how many bytes the kernel has queued (0 at
// EOF). Splicing exactly that many never waits inside splice(2), which
// holds a pipe (two descriptors) for as long as it waits: an idle tunnel
// then keeps its two sockets and nothing else. A source that is not a
// socket reports max, and the splice waits as usual.
func awaitQueued(src any, max int64) (int64, error) {
	raw := rawConn(src)
	if raw == nil {
		return max, nil
	}
	var queued int
	var perr error
	werr := raw.Read(func(fd uintptr) bool {
		// Most calls in a bulk transfer find bytes queued: one ioctl.
		if q, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ); err == nil && q > 0 {
			queued = q
			return true
		}
		// Nothing queued: EOF, a pending error, or simply nothing yet.
		var one [1]byte
		m, _, err := unix.Recvfrom(int(fd), one[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		switch {
		case err == unix.EAGAIN || err == unix.EINTR:
			return false
		case err != nil:
			// Reporting a socket error clears it: keep it, or the splice
			// would see a plain EOF where the peer sent a reset.
			perr = err
		case m > 0:
			// Bytes arrived between the two calls.
			queued = 1
			if q, err := unix.IoctlGetInt(int(fd), unix.SIOCINQ); err == nil && q > 0 {
				queued = q
			}
		}
		return true
	})
	if werr != nil {
		return 0, werr
	}
	if perr != nil {
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("recvfrom", perr)}
	}
	return min(int64(queued), max), nil
}

func rawConn(src any) syscall.RawConn {
	sc, ok := src.(syscall.Conn)
	if !ok {
		return nil
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return raw
}
