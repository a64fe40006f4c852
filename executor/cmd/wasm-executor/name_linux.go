// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package main

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// nameProcess names the process in ps and top (its comm, the main
// thread's name): run from a memfd (/proc/<pid>/fd/N), it would be named N.
func nameProcess() {
	if name, err := unix.BytePtrFromString("wasm-executor"); err == nil {
		_ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(name)), 0, 0, 0)
	}
}
