// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build linux

package confinedfs

import (
	"os"
	"path"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

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

// Lutimens sets the access and modification times of p itself, like
// Utimens, but of a symlink rather than of what it points at: the name's
// directory is opened through the os.Root, and utimensat acts on the last
// name in it without following it, so nothing is resolved outside the
// mount. A path that ends in a slash, or whose last name is "." or "..",
// names a directory, whose times Utimens sets.
func (f *FS) Lutimens(p string, atim, mtim int64) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	name := mountRel(p)
	dir, base := path.Split(name)
	if base == "" || base == "." || base == ".." {
		return f.Utimens(p, atim, mtim)
	}
	if dir == "" {
		dir = "."
	}
	d, err := f.root.Open(dir)
	if err != nil {
		return f.toErrno(err)
	}
	defer d.Close()
	ts := []unix.Timespec{unix.Timespec(nanosToTimespec(atim)), unix.Timespec(nanosToTimespec(mtim))}
	return experimentalsys.UnwrapOSError(controlFd(d, func(fd uintptr) error {
		return unix.UtimesNanoAt(int(fd), base, ts, unix.AT_SYMLINK_NOFOLLOW)
	}))
}
