package logs

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// stdoutSink is standard output as an event sink. What it is connected to
// varies: a console, a pipe, NUL or /dev/null, a file, or a pipe whose
// reader has gone. Only a file can usefully be synced: syncing a console
// or pipe fails on every system (EINVAL on Linux, uber-go/zap#328;
// "Invalid handle." for a console and "Invalid parameter." for a pipe or
// NUL on Windows, which made every Ctrl-C end in an error and exit status
// 1, issue 12), and on Windows FlushFileBuffers on a pipe waits for the
// reader. A reader that closes the pipe ends what can be written there,
// not the tap: the other outputs go on, and stderr says so once.
type stdoutSink struct {
	w        io.Writer
	syncable bool // a regular file, or a writer of the caller's with Sync
	gone     bool // the reader closed the pipe
	stderr   io.Writer
}

// newStdoutSink wraps w; zapcore.Lock around it serialises Write and Sync.
func newStdoutSink(w, stderr io.Writer) *stdoutSink {
	s := &stdoutSink{w: w, stderr: stderr}
	if f, ok := w.(*os.File); ok {
		fi, err := f.Stat()
		s.syncable = err == nil && fi.Mode().IsRegular()
	} else {
		_, s.syncable = w.(interface{ Sync() error })
	}
	return s
}

func (s *stdoutSink) Write(p []byte) (int, error) {
	if s.gone {
		return len(p), nil
	}
	n, err := s.w.Write(p)
	if err != nil && isClosedPipe(err) {
		s.gone = true
		fmt.Fprintln(s.stderr, "m365tap: standard output was closed by its reader; events now go only to the other log outputs (log.file, log.sinks)")
		return len(p), nil
	}
	return n, err
}

func (s *stdoutSink) Sync() error {
	if s.gone || !s.syncable {
		return nil
	}
	err := s.w.(interface{ Sync() error }).Sync()
	if err != nil && isUnsyncable(err) {
		return nil
	}
	return err
}

// isClosedPipe reports a write to a pipe whose reader has gone.
func isClosedPipe(err error) bool {
	var errno syscall.Errno
	return errors.As(err, &errno) && inErrnos(errno, closedPipeErrnos)
}

// isUnsyncable reports a sync refused because the handle is not a file,
// which says nothing about lost events.
func isUnsyncable(err error) bool {
	var errno syscall.Errno
	return errors.As(err, &errno) && inErrnos(errno, unsyncableErrnos)
}

func inErrnos(e syscall.Errno, list []syscall.Errno) bool {
	for _, x := range list {
		if e == x {
			return true
		}
	}
	return false
}
