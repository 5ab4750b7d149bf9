//go:build !linux

package shm

import (
	"net"
	"syscall"
)

func supported() error                                      { return ErrNotSupported }
func closeFD(int)                                           {}
func newDMB(int) (*dmb, error)                              { return nil, ErrNotSupported }
func newSegment(uint16, int, int) (*segment, error)         { return nil, ErrNotSupported }
func (g *segment) unmap()                                   {}
func mapPeerDMB(int, int) (*dmb, error)                     { return nil, ErrNotSupported }
func (d *dmb) closeFD()                                     {}
func (d *dmb) release()                                     {}
func (d *dmb) prefault(uint64, bool)                        {}
func (s *Stream) wake(byte)                                 {}
func (s *Stream) readWakeups(func(bool) bool) (bool, error) { return true, ErrNotSupported }
func readHello(*net.UnixConn) (hello, int, error)           { return hello{}, -1, ErrNotSupported }
func writeHello(*net.UnixConn, hello, int) error            { return ErrNotSupported }
func samePeerProcess(syscall.RawConn) bool                  { return false }
