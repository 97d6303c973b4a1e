package cli

import (
	"os"
	"syscall"
	"time"
)

var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

// stopLimit: after closing the console window (and at logoff and shutdown,
// which Go also delivers as SIGTERM) Windows ends the process about 5 s
// after asking (SetConsoleCtrlHandler: CTRL_CLOSE_EVENT). One second for
// open exchanges leaves the rest to restore the proxy settings, print the
// summary and flush the logs.
func stopLimit(sig os.Signal) time.Duration {
	if sig == syscall.SIGTERM {
		return time.Second
	}
	return 0
}
