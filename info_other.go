//go:build !linux

package smc

import "net"

// tcpCounts knows no TCP counters outside Linux.
func tcpCounts(c *net.TCPConn) (sent, received, sendQ, recvQ uint64) { return }
