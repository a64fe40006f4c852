// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"os"
	"syscall"
)

// dupFD duplicates f's descriptor, as a child inherits one.
func dupFD(f *os.File) (int, error) { return syscall.Dup(int(f.Fd())) }
