// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build linux

package cgroups

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver/cgroups/cgroupstest"
)

// TestMake: without cgroups of Nomad's, a task's are the driver's own
// under Root, named after its allocation and name, with the limits set
// and no swap; Remove removes them.
func TestMake(t *testing.T) {
	t.Parallel()
	v := cgroupstest.Require(t, Version)
	alloc, task := fmt.Sprintf("cgroups-test.%d", os.Getpid()), "a/task"
	cg, err := Make(alloc, task, Limits{CPUShares: 300, MemoryBytes: 96 << 20, MemoryLow: 64 << 20})
	must.NoError(t, err)
	t.Cleanup(func() { Remove(cg.Made) })

	name := Name(alloc, task)
	must.Eq(t, fmt.Sprintf("cgroups-test_%d.a_task", os.Getpid()), name)
	hard, soft := strconv.Itoa(96<<20), strconv.Itoa(64<<20)
	switch v {
	case "v1":
		cpu, memory := filepath.Join(Mount, "cpu", Root, name), filepath.Join(Mount, "memory", Root, name)
		must.Eq(t, []string{cpu, memory}, cg.Join)
		must.Eq(t, cg.Join, cg.Made)
		must.Eq(t, memory, cg.Memory)
		must.Eq(t, memory, MemoryAmong(cg.Made))
		must.Eq(t, "300", cgroupstest.Read(t, cpu, "cpu.shares"))
		must.Eq(t, hard, cgroupstest.Read(t, memory, "memory.limit_in_bytes"))
		must.Eq(t, soft, cgroupstest.Read(t, memory, "memory.soft_limit_in_bytes"))
		must.Eq(t, "0", cgroupstest.Read(t, memory, "memory.swappiness"))
	case "v2":
		dir := filepath.Join(Mount, Root, name)
		must.Eq(t, []string{dir}, cg.Join)
		must.Eq(t, cg.Join, cg.Made)
		must.Eq(t, dir, cg.Memory)
		must.Eq(t, strconv.FormatUint(cpuWeight(300), 10), cgroupstest.Read(t, dir, "cpu.weight"))
		must.Eq(t, hard, cgroupstest.Read(t, dir, "memory.max"))
		must.Eq(t, soft, cgroupstest.Read(t, dir, "memory.low"))
	}
	must.Zero(t, cg.OOMKillsBefore)

	Remove(cg.Made)
	for _, dir := range cg.Made {
		must.DirNotExists(t, dir)
	}
}

// TestAccounting: what a memory cgroup's files say, on v2 and v1, and
// nothing for no cgroup.
func TestAccounting(t *testing.T) {
	t.Parallel()
	v2, v1 := t.TempDir(), t.TempDir()
	write := func(dir, file, content string) {
		must.NoError(t, os.WriteFile(filepath.Join(dir, file), []byte(content), 0o644))
	}
	write(v2, "memory.current", "1234\n")
	write(v2, "memory.events", "low 0\nhigh 0\nmax 4\noom 3\noom_kill 3\noom_group_kill 0\n")
	write(v1, "memory.usage_in_bytes", "5678\n")
	write(v1, "memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
	must.Eq(t, 1234, MemoryUsage(v2))
	must.Eq(t, 3, OOMKills(v2))
	must.Eq(t, 5678, MemoryUsage(v1))
	must.Eq(t, 2, OOMKills(v1))
	must.Zero(t, MemoryUsage(""))
	must.Zero(t, OOMKills(""))
	must.Eq(t, "", MemoryAmong([]string{filepath.Join(Mount, "cpu", Root, "x")}))
}

// TestCPUWeight: cpu.weight from cpu.shares on Nomad's curve.
func TestCPUWeight(t *testing.T) {
	for shares, weight := range map[int64]uint64{0: 0, 2: 1, 100: 17, 300: 39, 500: 58, 1024: 100, 4096: 303, 262144: 10000, 1 << 20: 10000} {
		must.Eq(t, weight, cpuWeight(shares), must.Sprintf("shares %d", shares))
	}
}
