// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build !linux

package memory

import "syscall"

// mapMemory reserves n bytes of zeroed, private memory, committed as it is
// touched.
func mapMemory(n int) ([]byte, error) {
	return syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
}

// populate does nothing here: pages are faulted in as they are touched.
func populate([]byte) {}

// discard zeroes b; elsewhere than on Linux, handing pages back does not
// promise zeroes.
func discard(b []byte) error {
	clear(b)
	return nil
}
