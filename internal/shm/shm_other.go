//go:build !linux

package shm

import (
	"net"
	"syscall"
)

func supported() error                                          { return ErrNotSupported }
func closeFD(int)                                               {}
func closeFDs([]int)                                            {}
func dupFD(int) (int, error)                                    { return -1, ErrNotSupported }
func isAgain(error) bool                                        { return false }
func samePeerProcess(syscall.RawConn) bool                      { return false }
func peerUID(*net.UnixConn) (uint32, bool)                      { return 0, false }
func sendRaw(int, []byte, int) error                            { return ErrNotSupported }
func (l *link) trySend(msg, int) error                          { return ErrNotSupported }
func readMsg(*net.UnixConn, []byte, []byte) (int, []int, error) { return 0, nil, ErrNotSupported }
func selfPidfdIno() uint64                                      { return 0 }
func peerPidfdIno(*net.UnixConn) uint64                         { return 0 }
func unreachable(error) bool                                    { return false }
func newSegment(uint16, int, int) (*segment, error)             { return nil, ErrNotSupported }
func mapPeerSegment(int, uint16, int, int) (*segment, error)    { return nil, ErrNotSupported }
func (g *segment) closeFD()                                     {}
func (g *segment) unmap()                                       {}
func (g *segment) unmapPeer()                                   {}
func populate([]byte)                                           {}
func discard([]byte)                                            {}

var oobSpace = 0
