//go:build !windows

package cli

import (
	"os"
	"syscall"
	"time"
)

var stopSignals = []os.Signal{syscall.SIGINT, syscall.SIGTERM}

// stopLimit: nothing here ends the tap on a clock after asking it to stop.
func stopLimit(os.Signal) time.Duration { return 0 }
