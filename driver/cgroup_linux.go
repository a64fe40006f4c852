// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cgroupMount is where the cgroup hierarchies are mounted.
var cgroupMount = "/sys/fs/cgroup"

// cgroupVersion says which cgroups the node has: "v1", "v2", or "" with
// the reason there are none the driver can use.
func cgroupVersion() (string, error) {
	if _, err := os.Stat(filepath.Join(cgroupMount, "cgroup.controllers")); err == nil {
		return "v2", errors.New("cgroup v2 (unified) is not supported yet: the task's CPU and memory are not limited by cgroups")
	}
	for _, c := range []string{"cpu", "memory"} {
		if _, err := os.Stat(filepath.Join(cgroupMount, c, "cgroup.procs")); err != nil {
			return "", fmt.Errorf("no cgroup v1 %s controller at %s", c, filepath.Join(cgroupMount, c))
		}
	}
	return "v1", nil
}

// makeCgroups makes the task's v1 cgroups and sets l in them. It returns
// the cgroups the executor is to join (with the cpuset cgroup Nomad made
// for the task), and those it made, for removeCgroups.
func makeCgroups(name string, l cgroupLimits) (join, made []string, err error) {
	made, err = makeCgroupDirs(name, l)
	if err != nil {
		return nil, nil, err
	}
	join = append([]string(nil), made...)
	if l.cpusetPath != "" {
		// Nomad makes the task's cpuset cgroup, but on v1 may not have set
		// its cpus and mems yet, and a process cannot join a cpuset
		// without them (ENOSPC): set what is empty, from the task's cores
		// and the parent's memory nodes.
		if err := fillCpuset(l.cpusetPath, l.cpus); err != nil {
			removeCgroups(made)
			return nil, nil, fmt.Errorf("prepare Nomad's cpuset cgroup %s: %w", l.cpusetPath, err)
		}
		join = append(join, l.cpusetPath)
		// A cgroup of the task's own (its reserved cores; not Nomad's
		// shared one, which every task without cores joins) the driver
		// removes when the task is done, as Nomad's own drivers' container
		// runtime does: Nomad cannot hand the cores back (shrink its
		// reserve cpuset) while it exists.
		if name := filepath.Base(l.cpusetPath); l.allocID != "" && strings.Contains(name, l.allocID) {
			made = append(made, l.cpusetPath)
		}
	}
	return join, made, nil
}

// fillCpuset sets the cpuset.cpus (to cpus, else the parent's) and
// cpuset.mems (the parent's) of cgroup dir where they are empty.
func fillCpuset(dir, cpus string) error {
	for _, f := range []string{"cpuset.mems", "cpuset.cpus"} {
		cur, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			return err
		}
		if len(strings.TrimSpace(string(cur))) > 0 {
			continue
		}
		v := []byte(cpus)
		if f == "cpuset.mems" || cpus == "" {
			if v, err = os.ReadFile(filepath.Join(filepath.Dir(dir), f)); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(dir, f), v, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func makeCgroupDirs(name string, l cgroupLimits) ([]string, error) {
	if _, err := cgroupVersion(); err != nil {
		return nil, err
	}
	var made []string
	mkdir := func(controller string) (string, error) {
		dir := filepath.Join(cgroupMount, controller, cgroupRoot, name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		made = append(made, dir)
		return dir, nil
	}
	set := func(dir, file string, v int64) error {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(strconv.FormatInt(v, 10)), 0o644); err != nil {
			return fmt.Errorf("set %s of cgroup %s to %d: %w", file, dir, v, err)
		}
		return nil
	}
	err := func() error {
		if l.cpusetPath == "" && l.cpus != "" {
			// cpuset.cpus and .mems must be set, in every cgroup down the
			// path, before a process may join.
			if err := ensureCpusetDir(filepath.Join(cgroupMount, "cpuset", cgroupRoot)); err != nil {
				return err
			}
			dir, err := mkdir("cpuset")
			if err != nil {
				return err
			}
			if err := fillCpuset(dir, l.cpus); err != nil {
				return err
			}
		}
		dir, err := mkdir("cpu")
		if err != nil {
			return err
		}
		if l.cpuShares > 0 {
			if err := set(dir, "cpu.shares", l.cpuShares); err != nil {
				return err
			}
		}
		if dir, err = mkdir("memory"); err != nil {
			return err
		}
		if l.memoryBytes > 0 {
			return set(dir, "memory.limit_in_bytes", l.memoryBytes)
		}
		return nil
	}()
	if err != nil {
		removeCgroups(made)
		return nil, err
	}
	return made, nil
}

// ensureCpusetDir makes dir, a cpuset cgroup, with its parent's cpus and
// mems.
func ensureCpusetDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return fillCpuset(dir, "")
}

// removeCgroups removes the task's cgroups once the executor has left
// them (it exits): a cgroup with a process in it cannot be removed, so it
// retries for a moment.
func removeCgroups(dirs []string) {
	for _, dir := range dirs {
		for i := 0; ; i++ {
			err := syscall.Rmdir(dir)
			if err == nil || errors.Is(err, syscall.ENOENT) || i == 50 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// memoryCgroup is the task's memory cgroup among dirs, or "".
func memoryCgroup(dirs []string) string {
	for _, dir := range dirs {
		if filepath.Base(filepath.Dir(filepath.Dir(dir))) == "memory" {
			return dir
		}
	}
	return ""
}

// cgroupMemoryUsage is the memory the task's memory cgroup accounts, or 0.
func cgroupMemoryUsage(dirs []string) uint64 {
	dir := memoryCgroup(dirs)
	if dir == "" {
		return 0
	}
	b, err := os.ReadFile(filepath.Join(dir, "memory.usage_in_bytes"))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// cgroupOOMKilled says whether the kernel killed a process of the task's
// memory cgroup for exceeding its limit.
func cgroupOOMKilled(dirs []string) bool {
	dir := memoryCgroup(dirs)
	if dir == "" {
		return false
	}
	b, err := os.ReadFile(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if n, ok := strings.CutPrefix(line, "oom_kill "); ok {
			k, _ := strconv.Atoi(strings.TrimSpace(n))
			return k > 0
		}
	}
	return false
}
