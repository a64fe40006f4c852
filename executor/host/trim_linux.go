// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"bufio"
	"io"
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
// goes on to use is faulted back in from the file.
//
// Only mappings whose pages all still equal the file are dropped: writable
// mappings are never touched, and neither is a read-only mapping holding
// anonymous (copied-on-write) pages, such as the RELRO segment of a
// dynamically linked or PIE build, where the loader wrote relocations
// before making it read-only. Dropping those would bring back the file's
// unrelocated bytes.
func trimBinaryPages() {
	exe, err := os.Executable()
	if err != nil {
		return
	}
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return
	}
	defer f.Close()
	mappings, err := readSmaps(f)
	if err != nil {
		return
	}
	for _, m := range droppableMappings(mappings, exe) {
		// The range is not Go memory, so it is passed as numbers rather
		// than as a slice.
		_, _, _ = unix.Syscall(unix.SYS_MADVISE, uintptr(m.start), uintptr(m.end-m.start), unix.MADV_DONTNEED)
	}
}

// mapping is one mapping of /proc/self/smaps.
type mapping struct {
	start, end  uint64
	path, perms string
	rssKB       int
	anonymousKB int
}

// readSmaps parses /proc/<pid>/smaps. A size it cannot read counts as 1 kB,
// so that an unreadable mapping is never taken for an unmodified one.
func readSmaps(smaps io.Reader) ([]mapping, error) {
	var all []mapping
	sc := bufio.NewScanner(smaps)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 {
			continue
		}
		// A mapping starts with "start-end perms offset dev inode [path]";
		// its details follow as "Key: value kB" lines.
		if lo, hi, ok := strings.Cut(fields[0], "-"); ok && !strings.HasSuffix(fields[0], ":") && len(fields) >= 5 {
			start, err1 := strconv.ParseUint(lo, 16, 64)
			end, err2 := strconv.ParseUint(hi, 16, 64)
			if err1 != nil || err2 != nil || end <= start {
				continue
			}
			m := mapping{start: start, end: end, perms: fields[1]}
			if len(fields) >= 6 {
				m.path = fields[5]
			}
			all = append(all, m)
			continue
		}
		if len(fields) < 2 || len(all) == 0 {
			continue
		}
		kb, err := strconv.Atoi(fields[1])
		if err != nil {
			kb = 1
		}
		switch fields[0] {
		case "Rss:":
			all[len(all)-1].rssKB = kb
		case "Anonymous:":
			all[len(all)-1].anonymousKB = kb
		}
	}
	return all, sc.Err()
}

// droppableMappings returns the read-only mappings of exe that hold no
// anonymous pages.
func droppableMappings(all []mapping, exe string) []mapping {
	var keep []mapping
	for _, m := range all {
		if m.path == exe && !strings.Contains(m.perms, "w") && m.anonymousKB == 0 {
			keep = append(keep, m)
		}
	}
	return keep
}
