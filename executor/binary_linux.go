// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// runnable copies program r into a sealed memfd that this process keeps
// open, and returns a path that executes it. The seals make its content
// final (no write, no resize), so what every executor runs is what the
// plugin binary carried. The path names this process's descriptor
// (/proc/<pid>/fd/N), not /proc/self: a child resolves it whatever its own
// descriptors are when it executes it.
func runnable(r io.Reader) (string, error) {
	// MFD_EXEC (Linux 6.3+) keeps it executable where vm.memfd_noexec = 1
	// would make it not; an older kernel refuses the flag.
	fd, err := unix.MemfdCreate("nomad-driver-wasm-executor", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING|unix.MFD_EXEC)
	if err == unix.EINVAL {
		fd, err = unix.MemfdCreate("nomad-driver-wasm-executor", unix.MFD_CLOEXEC|unix.MFD_ALLOW_SEALING)
	}
	if err != nil {
		return "", fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "nomad-driver-wasm-executor")
	if _, err := io.Copy(f, r); err != nil {
		_ = f.Close()
		return "", fmt.Errorf("write the memfd: %w", err)
	}
	if _, err := unix.FcntlInt(f.Fd(), unix.F_ADD_SEALS, unix.F_SEAL_SEAL|unix.F_SEAL_SHRINK|unix.F_SEAL_GROW|unix.F_SEAL_WRITE); err != nil {
		_ = f.Close()
		return "", fmt.Errorf("seal the memfd: %w", err)
	}
	if err := unix.Fchmod(int(f.Fd()), 0o500); err != nil {
		_ = f.Close()
		return "", fmt.Errorf("chmod the memfd: %w", err)
	}
	// f stays open, and referenced, for the life of the process.
	memfd = f
	return fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd()), nil
}

// memfd is the embedded program's file, kept open.
var memfd *os.File
