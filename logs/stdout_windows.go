package logs

import "syscall"

// Win32 codes (winerror.h): Go's syscall names for EPIPE and EINVAL are
// invented numbers on Windows that no write or FlushFileBuffers returns.
var (
	closedPipeErrnos = []syscall.Errno{
		109, // ERROR_BROKEN_PIPE
		232, // ERROR_NO_DATA: "The pipe is being closed."
		233, // ERROR_PIPE_NOT_CONNECTED
	}
	unsyncableErrnos = []syscall.Errno{
		1,  // ERROR_INVALID_FUNCTION
		6,  // ERROR_INVALID_HANDLE: a console
		87, // ERROR_INVALID_PARAMETER: a pipe, NUL
	}
)
