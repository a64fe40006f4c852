// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// shutdownGuestSockets shuts down the guest's sockets (see guestSockets).
// That wakes a guest blocked in accept or in a read on one of them: the
// host call returns an error, and the stopped guest ends at its next step.
func shutdownGuestSockets(ls []*proto.Listener) {
	for _, fd := range guestSockets(ls) {
		_ = unix.Shutdown(fd, unix.SHUT_RDWR)
	}
}

// pollGuestSockets waits up to timeout for one of the guest's sockets to
// be ready to read (or, with write, to write), and says whether one is.
func pollGuestSockets(ls []*proto.Listener, write bool, timeout time.Duration) bool {
	fds := guestSockets(ls)
	if len(fds) == 0 {
		time.Sleep(timeout)
		return false
	}
	events := int16(unix.POLLIN)
	if write {
		events |= unix.POLLOUT
	}
	pfds := make([]unix.PollFd, len(fds))
	for i, fd := range fds {
		pfds[i] = unix.PollFd{Fd: int32(fd), Events: events}
	}
	n, err := unix.Poll(pfds, int(timeout.Milliseconds()))
	return err != nil || n > 0
}

// guestSockets returns the TCP sockets of the process bound to the guest's
// listeners ls: the listeners and the connections accepted on them.
// wazero keeps the guest's sockets to itself, so they are found by their
// local address among the process's descriptors.
func guestSockets(ls []*proto.Listener) []int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	var fds []int
	for _, e := range entries {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if typ, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE); err != nil || typ != unix.SOCK_STREAM {
			continue
		}
		sa, err := unix.Getsockname(fd)
		if err != nil {
			continue
		}
		var ip net.IP
		var port int
		switch a := sa.(type) {
		case *unix.SockaddrInet4:
			ip, port = a.Addr[:], a.Port
		case *unix.SockaddrInet6:
			ip, port = a.Addr[:], a.Port
		default:
			continue
		}
		for _, l := range ls {
			lip := net.ParseIP(l.Address)
			if int(l.Port) == port && (lip == nil || lip.IsUnspecified() || lip.Equal(ip)) {
				fds = append(fds, fd)
				break
			}
		}
	}
	return fds
}
