// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
)

// processUser reads the effective uid and gid and the supplementary groups
// (sorted; the kernel lists each once) of process pid.
func processUser(pid int) (uid, gid uint32, groups []uint32, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, nil, err
	}
	var seen int
	for _, line := range strings.Split(string(b), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		fields := strings.Fields(value)
		switch name {
		case "Uid", "Gid":
			// Real, effective, saved, filesystem.
			if len(fields) < 2 {
				return 0, 0, nil, fmt.Errorf("/proc/%d/status: %q", pid, line)
			}
			n, err := strconv.ParseUint(fields[1], 10, 32)
			if err != nil {
				return 0, 0, nil, fmt.Errorf("/proc/%d/status: %q", pid, line)
			}
			if name == "Uid" {
				uid = uint32(n)
			} else {
				gid = uint32(n)
			}
			seen++
		case "Groups":
			for _, f := range fields {
				n, err := strconv.ParseUint(f, 10, 32)
				if err != nil {
					return 0, 0, nil, fmt.Errorf("/proc/%d/status: %q", pid, line)
				}
				groups = append(groups, uint32(n))
			}
			seen++
		}
	}
	if seen != 3 {
		return 0, 0, nil, fmt.Errorf("/proc/%d/status has no Uid, Gid or Groups line", pid)
	}
	slices.Sort(groups)
	return uid, gid, groups, nil
}

// errNoProcessUser is never returned on Linux (see procuser_other.go).
var errNoProcessUser = errors.New("a process's user is read on Linux only")
