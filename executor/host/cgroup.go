// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// joinCgroups moves the executor, all its threads, into the task's cgroups
// (v1 directories the driver made and limited), once the program is
// loaded: compiling a module is the node's work, and needs more memory
// than the task's limit allows.
func joinCgroups(dirs []string) error {
	pid := strconv.Itoa(os.Getpid())
	for _, dir := range dirs {
		if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(pid), 0o644); err != nil {
			return fmt.Errorf("join the task's cgroup %s: %w", dir, err)
		}
	}
	return nil
}
