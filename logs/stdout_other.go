//go:build !windows

package logs

import "syscall"

var (
	closedPipeErrnos = []syscall.Errno{syscall.EPIPE}
	unsyncableErrnos = []syscall.Errno{syscall.EINVAL, syscall.ENOTSUP}
)
