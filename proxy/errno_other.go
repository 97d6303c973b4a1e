//go:build !windows

package proxy

// sysFaults is the table of the system the tap runs on.
var sysFaults = &unixFaults
