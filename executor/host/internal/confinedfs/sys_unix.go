// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build unix

package confinedfs

import (
	"os"
	"syscall"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// platformOpenFlags returns the open flags Go's os package has no portable
// name for. O_DIRECTORY makes the kernel refuse non-directories before
// anything is opened (a FIFO would otherwise block); O_NONBLOCK keeps the
// open itself from blocking on a FIFO.
func platformOpenFlags(flag experimentalsys.Oflag) int {
	var osFlag int
	if flag&experimentalsys.O_DIRECTORY != 0 {
		osFlag |= syscall.O_DIRECTORY
	}
	if flag&experimentalsys.O_NONBLOCK != 0 {
		osFlag |= syscall.O_NONBLOCK
	}
	return osFlag
}

// setNonblockFlag sets or clears O_NONBLOCK on the descriptor. Control is
// used instead of Fd, which would force the descriptor into blocking mode.
func setNonblockFlag(f *os.File, enable bool) error {
	return controlFd(f, func(fd uintptr) error {
		return syscall.SetNonblock(int(fd), enable)
	})
}

// controlFd runs fn with f's descriptor, returning fn's error or the one
// from reaching the descriptor.
func controlFd(f *os.File, fn func(fd uintptr) error) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var fnErr error
	if err := rc.Control(func(fd uintptr) { fnErr = fn(fd) }); err != nil {
		return err
	}
	return fnErr
}
