package proxy

import (
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"

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

// sockReader reads one direction of a tunnel from its source socket
// inside the poller's callback, so that waiting holds nothing: no read
// buffer during the handshake, no splice pipe afterwards. Its callbacks are
// made once per direction, so a read allocates nothing.
type sockReader struct {
	src    io.Reader
	raw    syscall.RawConn // nil: src is not a socket, read it the plain way
	bp     *[]byte
	n      uintptr
	max    uintptr
	errno  syscall.Errno
	readFn func(uintptr) bool
	peekFn func(uintptr) bool
}

func (r *sockReader) init(src io.Reader) {
	r.src = src
	if sc, ok := src.(syscall.Conn); ok {
		if raw, err := sc.SyscallConn(); err == nil {
			r.raw = raw
			r.readFn, r.peekFn = r.readCB, r.peekCB
		}
	}
}

// read waits until the source is readable and only then takes a buffer
// from bufPool and reads into it: one system call per read. The caller
// returns the buffer with bufPool.Put.
func (r *sockReader) read() (*[]byte, int, error) {
	if r.raw == nil {
		bp := bufPool.Get().(*[]byte)
		n, err := r.src.Read(*bp)
		return bp, n, err
	}
	r.bp, r.n, r.errno = nil, 0, 0
	werr := r.raw.Read(r.readFn)
	bp := r.bp
	r.bp = nil
	if bp == nil {
		bp = bufPool.Get().(*[]byte)
	}
	switch {
	case werr != nil:
		return bp, 0, werr
	case r.errno != 0:
		return bp, 0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", r.errno)}
	case r.n == 0:
		return bp, 0, io.EOF
	}
	return bp, int(r.n), nil
}

func (r *sockReader) readCB(fd uintptr) bool {
	r.bp = bufPool.Get().(*[]byte)
	buf := *r.bp
	for {
		n, _, errno := syscall.Syscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
		switch errno {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			bufPool.Put(r.bp)
			r.bp = nil
			return false
		}
		r.n, r.errno = n, errno
		return true
	}
}

// queued blocks until the source has bytes or reached its end, holding
// nothing, and returns how many bytes the kernel has queued, at most max
// (0 at EOF). Splicing exactly that many never waits inside splice(2),
// which holds a pipe (two descriptors) for as long as it waits: an idle
// tunnel then keeps its two sockets and nothing else. A source that is not
// a socket reports max, and the copy waits as usual.
func (r *sockReader) queued(max int64) (int64, error) {
	if r.raw == nil {
		return max, nil
	}
	r.n, r.max, r.errno = 0, uintptr(max), 0
	if werr := r.raw.Read(r.peekFn); werr != nil {
		return 0, werr
	}
	if r.errno != 0 {
		return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("recvfrom", r.errno)}
	}
	return int64(r.n), nil
}

func (r *sockReader) peekCB(fd uintptr) bool {
	// One call answers everything: MSG_PEEK|MSG_TRUNC makes TCP count the
	// queued bytes (up to max) without copying or taking them, 0 is EOF,
	// and a pending error (a reset) is reported, and cleared, here; it is
	// kept for the caller, or the splice would see a plain EOF.
	n, _, errno := syscall.Syscall6(syscall.SYS_RECVFROM, fd, 0, r.max,
		unix.MSG_PEEK|unix.MSG_TRUNC|unix.MSG_DONTWAIT, 0, 0)
	switch errno {
	case syscall.EAGAIN, syscall.EINTR:
		return false
	}
	r.n, r.errno = n, errno
	return true
}
