// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build !linux

package host

import (
	"errors"

	"golang.org/x/sys/unix"
)

// newSocket makes a socket, non-blocking and close-on-exec.
func newSocket(family, typ int) (int, error) {
	fd, err := unix.Socket(family, typ, 0)
	if err != nil {
		return -1, err
	}
	unix.CloseOnExec(fd)
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

// nsThread: network namespaces exist only on Linux.
type nsThread struct{}

func newNSThread(string) (*nsThread, error) {
	return nil, errors.New("network namespaces (bridge networking) need Linux")
}

func (*nsThread) do(f func()) { f() }
func (*nsThread) close()      {}
