// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"bufio"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// trimBinaryPages drops this process's mappings of the read-only pages of
// its own executable (code, read-only data).
//
// Starting the plugin binary runs the init functions of every package it
// links, Nomad's included, touching code scattered across the binary, and
// the kernel maps 64 KiB around each fault: an executor ends up with about
// 16 MB of the binary mapped, of which it later uses a fraction. The pages
// stay in the page cache, shared by every executor on the node;
// MADV_DONTNEED only unmaps them from this process, and what the executor
// goes on to use is faulted back in. Writable mappings are never touched:
// dropping them would reset modified data.
func trimBinaryPages() {
	exe, err := os.Executable()
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/maps")
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// start-end perms offset dev inode path
		fields := strings.Fields(sc.Text())
		if len(fields) < 6 || fields[5] != exe || strings.Contains(fields[1], "w") {
			continue
		}
		lo, hi, ok := strings.Cut(fields[0], "-")
		if !ok {
			continue
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			continue
		}
		// The range is not Go memory, so it is passed as numbers rather
		// than as a slice.
		_, _, _ = unix.Syscall(unix.SYS_MADVISE, uintptr(start), uintptr(end-start), unix.MADV_DONTNEED)
	}
}
