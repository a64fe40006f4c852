// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"strings"

	"github.com/hashicorp/nomad/plugins/drivers"
)

// Cgroup limits of a task's executor (an executor of its own; the shared
// executor's tasks share its process and are not limited one by one).
//
// The executor, with its guest, joins the task's cgroups once it has
// loaded the program (compiling is the node's work). The limits are those
// of Nomad's own exec driver: the CPU share from resources.cpu, a hard
// memory limit of the task's memory (memory_max when set, with memory as
// the soft limit) plus executorOverhead for the executor itself, and
// resources.cores as a cpuset.
//
//   - cgroup v1: the freezer, cpu (cpu.shares) and memory
//     (memory.limit_in_bytes, memory.soft_limit_in_bytes) cgroups Nomad's
//     client makes for every task (<controller>/<cgroup_parent>/<alloc>.<task>,
//     found beside the cpuset cgroup it passes as CpusetCgroupPath) and
//     removes after it, and that cpuset cgroup. Without Nomad's, cpu and
//     memory cgroups of the driver's own under cgroupRoot.
//   - cgroup v2: the one cgroup Nomad made for the task (CpusetCgroupPath:
//     nomad.slice/<partition>.slice/<alloc>.<task>.scope), with cpu.weight
//     (cpu.shares converted as Nomad does), memory.max, memory.low and
//     cpuset.cpus; Nomad removes it after the task. Without one of Nomad's,
//     a cgroup of the driver's own under cgroupRoot.
//
// Where neither works (not root, cgroups without the cpu and memory
// controllers) the task runs unlimited, and its events say so.

// executorOverhead is what the cgroup memory limit allows beyond the
// task's memory: the executor's own runtime, compiled code and buffers.
const executorOverhead = 64 << 20

// cgroupRoot is the directory under each v1 controller, or in the v2
// hierarchy, that holds the tasks' cgroups of the driver's own.
const cgroupRoot = "nomad-driver-wasm"

// cgroupLimits is what a task's cgroups enforce.
type cgroupLimits struct {
	cpuShares   int64
	memoryBytes int64
	// memoryLow is the soft limit, where memory_max raises the hard one
	// above memory.
	memoryLow int64
	// cpusetPath is the cpuset cgroup Nomad made for the task (for
	// resources.cores, or the shared cores), or empty.
	cpusetPath string
	// cpus is the task's cpuset when Nomad made no cgroup for it.
	cpus string
	// allocID tells the cpuset cgroup Nomad made for this task (named
	// after its allocation) from Nomad's shared one.
	allocID string
	// nomadScope is the name of the v1 cgroups Nomad's client makes for
	// the task: <alloc_id>.<task>.
	nomadScope string
}

func limitsFor(cfg *drivers.TaskConfig) cgroupLimits {
	l := cgroupLimits{allocID: cfg.AllocID, nomadScope: cfg.AllocID + "." + cfg.Name}
	if cfg.Resources == nil {
		return l
	}
	if lr := cfg.Resources.LinuxResources; lr != nil {
		l.cpuShares = max(lr.CPUShares, 2)
		l.memoryBytes = lr.MemoryLimitBytes
		l.cpusetPath = lr.CpusetCgroupPath
		l.cpus = lr.CpusetCpus
	}
	if nr := cfg.Resources.NomadResources; nr != nil {
		l.memoryBytes = max(l.memoryBytes, nr.Memory.MemoryMB<<20, nr.Memory.MemoryMaxMB<<20)
		if nr.Memory.MemoryMaxMB > nr.Memory.MemoryMB && nr.Memory.MemoryMB > 0 {
			l.memoryLow = nr.Memory.MemoryMB<<20 + executorOverhead
		}
	}
	if l.memoryBytes > 0 {
		l.memoryBytes += executorOverhead
	}
	return l
}

// taskCgroups are the cgroups of a task's executor.
type taskCgroups struct {
	// join are the cgroups the executor joins.
	join []string
	// made are those the driver made, to remove when the task is done.
	made []string
	// memory is the cgroup whose memory accounting is the task's: v1 its
	// memory cgroup, v2 its cgroup.
	memory string
	// oomKillsBefore is memory's count of OOM kills before the task.
	oomKillsBefore int
}

// cgroupName is a task's cgroup directory name: its allocation and name.
func cgroupName(cfg *drivers.TaskConfig) string {
	return strings.NewReplacer("/", "_", ".", "_").Replace(cfg.AllocID) + "." + strings.NewReplacer("/", "_").Replace(cfg.Name)
}
