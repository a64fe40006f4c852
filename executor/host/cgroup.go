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
// (directories the driver made and limited), before it reads the task's
// module: loading or compiling it, and everything after, counts against
// the task's memory. Where it can, each thread moves itself
// (joinByThread): on cgroup v1 that costs no wait for the kernel's
// threadgroup lock.
func joinCgroups(dirs []string) error {
	byThread := joinEachThread()
	for _, dir := range dirs {
		if err := joinCgroup(dir, byThread); err != nil {
			return fmt.Errorf("join the task's cgroup %s: %w", dir, err)
		}
	}
	return nil
}

// joinCgroup moves the process into the cgroup dir: thread by thread where
// byThread and the cgroup has a tasks file (v1), else by its cgroup.procs.
func joinCgroup(dir string, byThread bool) error {
	if byThread {
		done, err := joinByThread(dir)
		if done || err != nil {
			return err
		}
	}
	return os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0o644)
}
