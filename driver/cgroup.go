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
// The driver puts the executor, with its guest, into cgroups of its own
// for the task: cpu (cpu.shares from resources.cpu), memory
// (memory.limit_in_bytes: the task's memory, memory_max when set, plus
// executorOverhead for the executor itself) and, for resources.cores,
// the cpuset cgroup Nomad made for the task (CpusetCgroupPath). Only
// cgroup v1 is implemented; on v2 the limits are not enforced, and the
// task's events say so.

// executorOverhead is what the cgroup memory limit allows beyond the
// task's memory: the executor's own runtime, compiled code and buffers.
const executorOverhead = 64 << 20

// cgroupRoot is the directory under each v1 controller that holds the
// tasks' cgroups.
const cgroupRoot = "nomad-driver-wasm"

// cgroupLimits is what a task's cgroups enforce.
type cgroupLimits struct {
	cpuShares   int64
	memoryBytes int64
	// cpusetPath is the cpuset cgroup Nomad made for the task (for
	// resources.cores, or the shared cores), or empty.
	cpusetPath string
	// cpus is the task's cpuset when Nomad made no cgroup for it.
	cpus string
	// allocID tells the cpuset cgroup Nomad made for this task (named
	// after its allocation) from Nomad's shared one.
	allocID string
}

func limitsFor(cfg *drivers.TaskConfig) cgroupLimits {
	l := cgroupLimits{allocID: cfg.AllocID}
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
	}
	if l.memoryBytes > 0 {
		l.memoryBytes += executorOverhead
	}
	return l
}

// cgroupName is a task's cgroup directory name: its allocation and name.
func cgroupName(cfg *drivers.TaskConfig) string {
	return strings.NewReplacer("/", "_", ".", "_").Replace(cfg.AllocID) + "." + strings.NewReplacer("/", "_").Replace(cfg.Name)
}
