// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"os"
	"syscall"
)

// viewFile returns f's content: a read-only private mapping of it when it
// can be mapped (mapped is true; unmap ends it, and the bytes must not be
// used after), else a copy read into memory.
func viewFile(f *os.File) (b []byte, mapped bool, unmap func(), err error) {
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > 0 && st.Size() == int64(int(st.Size())) {
		if m, err := syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ, syscall.MAP_PRIVATE|mapPopulate); err == nil {
			return m, true, func() { _ = syscall.Munmap(m) }, nil
		}
	}
	b, err = readAll(f)
	return b, false, func() {}, err
}
