// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package memory

import (
	"syscall"
	"unsafe"
)

// mapMemory reserves n bytes of zeroed, private memory; MAP_NORESERVE keeps
// a reservation up to the cap from counting against the node's overcommit
// until it is touched.
func mapMemory(n int) ([]byte, error) {
	return syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
}

// madvPopulateWrite is MADV_POPULATE_WRITE (Linux 5.14): fault a range in,
// writable, in one call.
const madvPopulateWrite = 23

// populate faults b in at once: one call instead of a page fault per page,
// which is costly in a virtual machine. An older kernel refuses the advice,
// and the pages are faulted in as they are touched, as without it.
func populate(b []byte) {
	if len(b) == 0 {
		return
	}
	_, _, _ = syscall.Syscall(syscall.SYS_MADVISE, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), madvPopulateWrite)
}

// discard hands b's pages back to the kernel; they read as zero after.
func discard(b []byte) error {
	return syscall.Madvise(b, syscall.MADV_DONTNEED)
}
