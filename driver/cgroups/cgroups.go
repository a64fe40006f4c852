// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package cgroups makes the Linux cgroups that limit one task's executor,
// sets their limits, reads what they account (memory, OOM kills) and
// removes them when the task is done.
//
// It must not import the driver, nor decide any limit: the driver turns
// the task's resources into Limits. It must not move a process into a
// cgroup either: the executor joins the cgroups itself (Task.Join), before
// it reads and compiles the module, so that compiling counts against the
// task's memory.
//
//   - cgroup v1: the freezer, cpu (cpu.shares) and memory
//     (memory.limit_in_bytes, memory.soft_limit_in_bytes) cgroups Nomad's
//     client makes for every task (<controller>/<cgroup_parent>/<alloc>.<task>,
//     found beside the cpuset cgroup it passes as CpusetCgroupPath) and
//     removes after it, and that cpuset cgroup. Without Nomad's, cpu and
//     memory cgroups of the driver's own under Root.
//   - cgroup v2: the one cgroup Nomad made for the task (CpusetCgroupPath:
//     nomad.slice/<partition>.slice/<alloc>.<task>.scope), with cpu.weight
//     (cpu.shares converted as Nomad does), memory.max, memory.low and
//     cpuset.cpus; Nomad removes it after the task. Without one of Nomad's,
//     a cgroup of the driver's own under Root.
//
// Where neither works (not root, cgroups without the cpu and memory
// controllers) Make says why, and the task runs unlimited.
package cgroups

import "strings"

// Mount is where the cgroup hierarchies are mounted.
const Mount = "/sys/fs/cgroup"

// Root is the directory under each v1 controller, or in the v2 hierarchy,
// that holds the tasks' cgroups of the driver's own.
const Root = "nomad-driver-wasm"

// Limits is what a task's cgroups enforce, and which cgroups Nomad made
// for the task.
type Limits struct {
	// CPUShares is the v1 cpu.shares (v2: its cpu.weight), 0 for unset.
	CPUShares int64
	// MemoryBytes is the hard memory limit, 0 for none.
	MemoryBytes int64
	// MemoryLow is the soft limit, where memory_max raises the hard one
	// above memory; 0 for none.
	MemoryLow int64
	// CpusetPath is the cpuset cgroup Nomad made for the task (for
	// resources.cores, or the shared cores; v2: the task's one cgroup),
	// or empty.
	CpusetPath string
	// Cpus is the task's cpuset when Nomad made no cgroup for it.
	Cpus string
}

// Task are the cgroups of a task's executor.
type Task struct {
	// Join are the cgroups the executor joins.
	Join []string
	// Made are those Make made, to Remove when the task is done.
	Made []string
	// Memory is the cgroup whose memory accounting is the task's: v1 its
	// memory cgroup, v2 its cgroup.
	Memory string
	// OOMKillsBefore is Memory's count of OOM kills before the task.
	OOMKillsBefore int
}

// Name is a task's cgroup directory name under Root: its allocation and
// its name.
func Name(allocID, task string) string {
	return strings.NewReplacer("/", "_", ".", "_").Replace(allocID) + "." + strings.NewReplacer("/", "_").Replace(task)
}

// nomadScope is the name of the cgroups Nomad's client makes for a task:
// <alloc_id>.<task>.
func nomadScope(allocID, task string) string { return allocID + "." + task }
