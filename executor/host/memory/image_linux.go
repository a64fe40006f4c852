// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package memory

import (
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// imageFile is a sealed memfd of size bytes holding parts (the rest
// zero): nothing can write, grow or shrink it once made.
func imageFile(size int, parts []Part) (*os.File, error) {
	fd, err := unix.MemfdCreate("wasm-memory-image", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "wasm-memory-image")
	err = func() error {
		if err := f.Truncate(int64(size)); err != nil {
			return err
		}
		for _, p := range parts {
			if _, err := f.WriteAt(p.Data, int64(p.Offset)); err != nil {
				return err
			}
		}
		_, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE)
		return err
	}()
	if err != nil {
		_ = f.Close()
		return nil, err
	}
	return f, nil
}

// mapImage maps f over mem (which it covers exactly), private and
// writable, in place of what was mapped there.
func mapImage(f *os.File, mem []byte) error {
	_, err := unix.MmapPtr(int(f.Fd()), 0, unsafe.Pointer(&mem[0]), uintptr(len(mem)),
		unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_FIXED)
	return err
}
