//go:build !linux

package upstream

import "net"

func peerClosed(tc *net.TCPConn) bool { return peerClosedDeadline(tc) }
