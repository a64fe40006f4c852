// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"net"
	"os"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// shutdownGuestSockets shuts down the TCP sockets of the process bound to
// the guest's listeners ls: the listeners and the connections accepted on
// them. That wakes a guest blocked in accept or in a read on one of them:
// the host call returns an error, and the stopped guest ends at its next
// step.
//
// wazero keeps the guest's sockets to itself, and a stop does not close
// them while a host call may use them, so they are found by their local
// address among the process's descriptors.
func shutdownGuestSockets(ls []*proto.Listener) {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return
	}
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
				_ = unix.Shutdown(fd, unix.SHUT_RDWR)
				break
			}
		}
	}
}
