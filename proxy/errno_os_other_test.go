//go:build !windows

package proxy

func osTable() string { return "unix" }
