// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build !linux

package confinedfs

import (
	"errors"
	"os"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// kernelAppend is false because not every platform can switch O_APPEND on an
// open descriptor, and Go's os package offers no portable way to; Write
// emulates append mode instead.
const kernelAppend = false

func setAppendFlag(*os.File, bool) error {
	return errors.ErrUnsupported
}

// futimens has no descriptor-based call to use here, so it goes through the
// os.Root by the name the file was opened under, and only while that name
// still refers to this file: a stale name must not touch some other file.
func (f *file) futimens(atim, mtim int64) experimentalsys.Errno {
	byName, err := f.fsys.root.Stat(f.name)
	if err != nil {
		return f.fsys.toErrno(err)
	}
	own, err := f.f.Stat()
	if err != nil {
		return experimentalsys.UnwrapOSError(err)
	}
	if !os.SameFile(byName, own) {
		return experimentalsys.ENOENT
	}
	return f.fsys.toErrno(f.fsys.root.Chtimes(f.name, nanosToTime(atim), nanosToTime(mtim)))
}
