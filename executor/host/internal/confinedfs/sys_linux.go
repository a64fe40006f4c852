// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build linux

package confinedfs

import (
	"os"
	"syscall"
	"unsafe"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// kernelAppend is true because Linux lets fcntl(F_SETFL) switch O_APPEND on
// an open descriptor, which keeps appends atomic without re-opening by path.
const kernelAppend = true

// utimeOmit is Linux's UTIME_OMIT, which the syscall package does not export.
const utimeOmit = (1 << 30) - 2

// setAppendFlag sets or clears O_APPEND on the descriptor.
func setAppendFlag(f *os.File, enable bool) error {
	return controlFd(f, func(fd uintptr) error {
		flags, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_GETFL, 0)
		if e != 0 {
			return e
		}
		if enable {
			flags |= syscall.O_APPEND
		} else {
			flags &^= syscall.O_APPEND
		}
		if _, _, e := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_SETFL, flags); e != 0 {
			return e
		}
		return nil
	})
}

// futimens sets the times on the descriptor itself: utimensat with a NULL
// path acts on dirfd, so no name is resolved and a renamed file still works.
func (f *file) futimens(atim, mtim int64) experimentalsys.Errno {
	times := [2]syscall.Timespec{nanosToTimespec(atim), nanosToTimespec(mtim)}
	err := controlFd(f.f, func(fd uintptr) error {
		_, _, e := syscall.Syscall6(syscall.SYS_UTIMENSAT, fd, 0, uintptr(unsafe.Pointer(&times)), 0, 0, 0)
		if e != 0 {
			return e
		}
		return nil
	})
	return experimentalsys.UnwrapOSError(err)
}

func nanosToTimespec(nanos int64) syscall.Timespec {
	if nanos == experimentalsys.UTIME_OMIT {
		return syscall.Timespec{Nsec: utimeOmit}
	}
	return syscall.NsecToTimespec(nanos)
}
