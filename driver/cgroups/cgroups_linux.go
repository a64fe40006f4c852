// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Version says which cgroups the node has: "v1", "v2", or "" with the
// reason there are none the driver can use.
func Version() (string, error) {
	if b, err := os.ReadFile(filepath.Join(Mount, "cgroup.controllers")); err == nil {
		have := strings.Fields(string(b))
		for _, c := range []string{"cpu", "memory"} {
			if !slices.Contains(have, c) {
				return "", fmt.Errorf("the cgroup v2 hierarchy at %s has no %s controller (it has %q)", Mount, c, have)
			}
		}
		return "v2", nil
	}
	for _, c := range []string{"cpu", "memory"} {
		if _, err := os.Stat(filepath.Join(Mount, c, "cgroup.procs")); err != nil {
			return "", fmt.Errorf("no cgroup v1 %s controller at %s", c, filepath.Join(Mount, c))
		}
	}
	return "v1", nil
}

// target is what Make makes: the limits, the task's allocation (which
// tells the cpuset cgroup Nomad made for this task from its shared one),
// the name of the v1 cgroups Nomad's client makes for it, and that of
// the driver's own.
type target struct {
	Limits
	allocID, nomadScope, name string
}

// Make makes the cgroups of task (of allocation allocID), or prepares
// those Nomad made for it, and sets l in them. On error the Task is empty
// and what Make made is removed again.
func Make(allocID, task string, l Limits) (Task, error) {
	cg, err := makeTask(target{Limits: l, allocID: allocID, nomadScope: nomadScope(allocID, task), name: Name(allocID, task)})
	cg.OOMKillsBefore = OOMKills(cg.Memory)
	return cg, err
}

func makeTask(l target) (Task, error) {
	v, err := Version()
	if err != nil {
		return Task{}, err
	}
	if l.CpusetPath != "" && !nomadMadeCgroup(l.CpusetPath, v) {
		// Nomad passes the path whether or not it manages cgroups (it does
		// not where its own needs are not met): without its cgroups, the
		// driver's own.
		l.CpusetPath = ""
	}
	if v == "v2" {
		return makeV2(l)
	}
	cg, err := nomadCgroupsV1(l)
	if err != nil {
		return Task{}, err
	}
	if cg.Memory == "" {
		made, err := makeV1(l)
		if err != nil {
			return Task{}, err
		}
		cg = Task{Join: append([]string(nil), made...), Made: made, Memory: MemoryAmong(made)}
	}
	if l.CpusetPath != "" {
		// Nomad makes the task's cpuset cgroup, but on v1 may not have set
		// its cpus and mems yet, and a process cannot join a cpuset
		// without them (ENOSPC): set what is empty, from the task's cores
		// and the parent's memory nodes.
		if err := fillCpuset(l.CpusetPath, l.Cpus); err != nil {
			Remove(cg.Made)
			return Task{}, fmt.Errorf("prepare Nomad's cpuset cgroup %s: %w", l.CpusetPath, err)
		}
		cg.Join = append(cg.Join, l.CpusetPath)
		// A cgroup of the task's own (its reserved cores; not Nomad's
		// shared one, which every task without cores joins) the driver
		// removes when the task is done, as Nomad's own drivers' container
		// runtime does: Nomad cannot hand the cores back (shrink its
		// reserve cpuset) while it exists.
		if name := filepath.Base(l.CpusetPath); l.allocID != "" && strings.Contains(name, l.allocID) {
			cg.Made = append(cg.Made, l.CpusetPath)
		}
	}
	return cg, nil
}

// nomadMadeCgroup says whether Nomad made the cgroups it passes as
// CpusetCgroupPath: on v2 the task's scope's partition (Nomad makes the
// scope itself just before the task starts), on v1 the cpuset.
func nomadMadeCgroup(path, version string) bool {
	if version == "v2" {
		path = filepath.Dir(path)
	}
	_, err := os.Stat(filepath.Join(path, "cgroup.procs"))
	return err == nil
}

// nomadCgroupsV1 are the v1 cgroups Nomad's client made for the task
// (its process wrangler, before the task starts: freezer, cpu and memory,
// <controller>/<cgroup_parent>/<alloc>.<task>), with the limits set in
// them; none (a zero Task) where Nomad made none. The cgroup
// parent, a client setting, is read off the cpuset cgroup Nomad passes
// (cpuset/<parent>/share or cpuset/<parent>/reserve/<alloc>.<task>).
func nomadCgroupsV1(l target) (Task, error) {
	rel, ok := strings.CutPrefix(l.CpusetPath, filepath.Join(Mount, "cpuset")+"/")
	if !ok {
		return Task{}, nil
	}
	parent := filepath.Dir(rel)
	if filepath.Base(parent) == "reserve" {
		parent = filepath.Dir(parent)
	}
	var cg Task
	for _, controller := range []string{"freezer", "cpu", "memory"} {
		dir := filepath.Join(Mount, controller, parent, l.nomadScope)
		if _, err := os.Stat(dir); err != nil {
			if controller == "freezer" {
				continue
			}
			return Task{}, nil
		}
		cg.Join = append(cg.Join, dir)
	}
	cpu, memory := cg.Join[len(cg.Join)-2], cg.Join[len(cg.Join)-1]
	if err := setLimitsV1(cpu, memory, l); err != nil {
		return Task{}, err
	}
	cg.Memory = memory
	return cg, nil
}

// setLimitsV1 writes l into a task's v1 cpu and memory cgroups: the CPU
// share, the hard and soft memory limits, and no swap.
func setLimitsV1(cpu, memory string, l target) error {
	set := func(dir, file string, v int64) error {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(strconv.FormatInt(v, 10)), 0o644); err != nil {
			return fmt.Errorf("set %s of cgroup %s to %d: %w", file, dir, v, err)
		}
		return nil
	}
	if l.CPUShares > 0 {
		if err := set(cpu, "cpu.shares", l.CPUShares); err != nil {
			return err
		}
	}
	if l.MemoryBytes > 0 {
		if err := set(memory, "memory.limit_in_bytes", l.MemoryBytes); err != nil {
			return err
		}
	}
	if l.MemoryLow > 0 {
		if err := set(memory, "memory.soft_limit_in_bytes", l.MemoryLow); err != nil {
			return err
		}
	}
	disableSwapV1(memory)
	return nil
}

// v2Controllers are the controllers a task's v2 cgroup uses.
var v2Controllers = []string{"cpu", "memory", "cpuset"}

// makeV2 prepares the task's one v2 cgroup: the one Nomad made for
// it (nomad.slice/<partition>.slice/<alloc>.<task>.scope, passed as
// CpusetCgroupPath, which Nomad removes after the task, killing what is
// left in it), else one of the driver's own under Root. It writes
// cpu.weight, memory.max (memory.low under memory_max) and, for reserved
// cores, cpuset.cpus, as Nomad's own executor does.
func makeV2(l target) (Task, error) {
	dir, own := l.CpusetPath, l.CpusetPath == ""
	if own {
		parent := filepath.Join(Mount, Root)
		if err := enableControllers(Mount); err != nil {
			return Task{}, err
		}
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return Task{}, fmt.Errorf("create cgroup %s: %w", parent, err)
		}
		if err := enableControllers(parent); err != nil {
			return Task{}, err
		}
		dir = filepath.Join(parent, l.name)
	}
	var cg Task
	err := os.Mkdir(dir, 0o755)
	if err != nil && !errors.Is(err, fs.ErrExist) {
		return Task{}, fmt.Errorf("create cgroup %s: %w", dir, err)
	}
	if own || err == nil {
		// Nomad makes its task's scope before the task starts; where it
		// did not, or under Root (one a task of the same name left
		// included), the cgroup is the driver's to remove.
		cg.Made = []string{dir}
	}
	cg.Join, cg.Memory = []string{dir}, dir
	set := func(file, v string) error {
		if err := os.WriteFile(filepath.Join(dir, file), []byte(v), 0o644); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				err = fmt.Errorf("%w: the controller is not enabled in the cgroup.subtree_control of %s", err, filepath.Dir(dir))
			}
			return fmt.Errorf("set %s of cgroup %s to %s: %w", file, dir, v, err)
		}
		return nil
	}
	err = func() error {
		if w := cpuWeight(l.CPUShares); w > 0 {
			if err := set("cpu.weight", strconv.FormatUint(w, 10)); err != nil {
				return err
			}
		}
		if l.MemoryBytes > 0 {
			if err := set("memory.max", strconv.FormatInt(l.MemoryBytes, 10)); err != nil {
				return err
			}
		}
		if l.MemoryLow > 0 {
			if err := set("memory.low", strconv.FormatInt(l.MemoryLow, 10)); err != nil {
				return err
			}
		}
		// No swap: past its limit the executor is killed, as the limit
		// says, not slowed down by swapping (there is no memory.swap.max
		// where the kernel does not account swap).
		if err := set("memory.swap.max", "0"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if l.Cpus != "" {
			return set("cpuset.cpus", l.Cpus)
		}
		return nil
	}()
	if err != nil {
		Remove(cg.Made)
		return Task{}, err
	}
	return cg, nil
}

// enableControllers enables v2Controllers, those dir has, for its
// children (cgroup.subtree_control); cpu and memory must be among them.
func enableControllers(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
	if err != nil {
		return fmt.Errorf("read the controllers of cgroup %s: %w", dir, err)
	}
	have := strings.Fields(string(b))
	b, err = os.ReadFile(filepath.Join(dir, "cgroup.subtree_control"))
	if err != nil {
		return fmt.Errorf("read the subtree controllers of cgroup %s: %w", dir, err)
	}
	enabled := strings.Fields(string(b))
	var add []string
	for _, c := range v2Controllers {
		switch {
		case slices.Contains(enabled, c):
		case slices.Contains(have, c):
			add = append(add, "+"+c)
		case c != "cpuset":
			return fmt.Errorf("cgroup %s has no %s controller (it has %q)", dir, c, have)
		}
	}
	if len(add) == 0 {
		return nil
	}
	if err := os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(strings.Join(add, " ")), 0o644); err != nil {
		return fmt.Errorf("enable %s for the children of cgroup %s: %w", strings.Join(add, " "), dir, err)
	}
	return nil
}

// cpuWeight is the v2 cpu.weight of v1 cpu.shares (0: unset), on the
// curve Nomad's own drivers use (that of the OCI runtimes since 2025):
// 2 gives 1, 1024 the default 100, 262144 the maximum 10000, with
// log2(shares) mapped quadratically onto log10(weight) in between.
func cpuWeight(shares int64) uint64 {
	switch {
	case shares <= 0:
		return 0
	case shares <= 2:
		return 1
	case shares >= 262144:
		return 10000
	}
	l := math.Log2(float64(shares))
	return uint64(math.Ceil(math.Pow(10, (l*l+125*l)/612-7.0/34)))
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

// makeV1 makes the task's v1 cgroups of the driver's own.
func makeV1(l target) ([]string, error) {
	var made []string
	mkdir := func(controller string) (string, error) {
		dir := filepath.Join(Mount, controller, Root, l.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", fmt.Errorf("create cgroup %s: %w", dir, err)
		}
		made = append(made, dir)
		return dir, nil
	}
	err := func() error {
		if l.CpusetPath == "" && l.Cpus != "" {
			// cpuset.cpus and .mems must be set, in every cgroup down the
			// path, before a process may join.
			if err := ensureCpusetDir(filepath.Join(Mount, "cpuset", Root)); err != nil {
				return err
			}
			dir, err := mkdir("cpuset")
			if err != nil {
				return err
			}
			if err := fillCpuset(dir, l.Cpus); err != nil {
				return err
			}
		}
		cpu, err := mkdir("cpu")
		if err != nil {
			return err
		}
		memory, err := mkdir("memory")
		if err != nil {
			return err
		}
		return setLimitsV1(cpu, memory, l)
	}()
	if err != nil {
		Remove(made)
		return nil, err
	}
	return made, nil
}

// disableSwapV1 sets the swappiness of the v1 memory cgroup dir to 0, so
// that past its limit the executor is killed rather than swapped, as
// Nomad's exec does, and like it leaves swap as it is where the kernel
// refuses (a cgroup whose parent has use_hierarchy and children of its
// own, on some kernels).
func disableSwapV1(dir string) {
	_ = os.WriteFile(filepath.Join(dir, "memory.swappiness"), []byte("0"), 0o644)
}

// ensureCpusetDir makes dir, a cpuset cgroup, with its parent's cpus and
// mems.
func ensureCpusetDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return fillCpuset(dir, "")
}

// Remove removes the task's cgroups (Task.Made) once the executor has
// left them (it exits): a cgroup with a process in it cannot be removed,
// so it retries for a moment.
func Remove(dirs []string) {
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

// MemoryAmong is the v1 memory cgroup among dirs, or "".
func MemoryAmong(dirs []string) string {
	for _, dir := range dirs {
		if filepath.Base(filepath.Dir(filepath.Dir(dir))) == "memory" {
			return dir
		}
	}
	return ""
}

// MemoryUsage is the memory the task's memory cgroup dir accounts (v2
// memory.current, v1 memory.usage_in_bytes), or 0.
func MemoryUsage(dir string) uint64 {
	if dir == "" {
		return 0
	}
	for _, f := range []string{"memory.current", "memory.usage_in_bytes"} {
		if b, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
			n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
			return n
		}
	}
	return 0
}

// OOMKills is the count of OOM kills in the task's memory cgroup dir: the
// oom_kill of v2 memory.events, of v1 memory.oom_control.
func OOMKills(dir string) int {
	if dir == "" {
		return 0
	}
	for _, f := range []string{"memory.events", "memory.oom_control"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if n, ok := strings.CutPrefix(line, "oom_kill "); ok {
				k, _ := strconv.Atoi(strings.TrimSpace(n))
				return k
			}
		}
		return 0
	}
	return 0
}
