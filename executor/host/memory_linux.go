// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import "syscall"

// mapMemory reserves n bytes of zeroed, private memory; MAP_NORESERVE keeps
// a reservation up to the cap from counting against the node's overcommit
// until it is touched.
func mapMemory(n int) ([]byte, error) {
	return syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
}

// mapPopulate maps a file's pages at once rather than one fault at a time.
const mapPopulate = syscall.MAP_POPULATE
