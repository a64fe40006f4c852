// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build linux

package driver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver/cgroups"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver/cgroups/cgroupstest"
)

// procCgroups is /proc/<pid>/cgroup: the cgroup of each controller
// (v1; combined ones, cpu,cpuacct, apart) or, under "", the v2 one.
func procCgroups(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	must.NoError(t, err)
	m := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		must.Eq(t, 3, len(f), must.Sprintf("/proc/%d/cgroup: %q", pid, line))
		for _, c := range strings.Split(f[1], ",") {
			m[c] = f[2]
		}
	}
	return m
}

// TestCgroupLimits: an executor of its own runs, with its guest, in
// cgroups made for its task: the CPU share from resources.cpu, a hard
// memory limit of memory_max plus the executor's overhead and a soft one
// of memory plus the overhead, no swap; the task's memory stats come from
// the cgroup; the cgroups go with the task.
func TestCgroupLimits(t *testing.T) {
	t.Parallel()
	v := cgroupstest.Require(t, cgroups.Version)
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"sleep", "600"}})
	tk.cfg.Resources.LinuxResources.CPUShares = 300
	tk.cfg.Resources.NomadResources.Memory.MemoryMaxMB = 96
	pid := executorPid(t, h.start(t, tk))
	tk.waitLog(t, "stdout", "sleeping")

	name := cgroups.Name(tk.cfg.AllocID, tk.cfg.Name)
	hard, soft := strconv.Itoa(96<<20+executorOverhead), strconv.Itoa(64<<20+executorOverhead)
	var dirs []string
	switch v {
	case "v1":
		for _, controller := range []string{"cpu", "memory"} {
			must.Eq(t, "/"+cgroups.Root+"/"+name, procCgroups(t, pid)[controller])
			dirs = append(dirs, filepath.Join(cgroups.Mount, controller, cgroups.Root, name))
		}
		must.Eq(t, "300", cgroupstest.Read(t, dirs[0], "cpu.shares"))
		must.Eq(t, hard, cgroupstest.Read(t, dirs[1], "memory.limit_in_bytes"))
		must.Eq(t, soft, cgroupstest.Read(t, dirs[1], "memory.soft_limit_in_bytes"))
		must.Eq(t, "0", cgroupstest.Read(t, dirs[1], "memory.swappiness"))
	case "v2":
		must.Eq(t, "/"+cgroups.Root+"/"+name, procCgroups(t, pid)[""])
		dirs = []string{filepath.Join(cgroups.Mount, cgroups.Root, name)}
		must.Eq(t, "39", cgroupstest.Read(t, dirs[0], "cpu.weight")) // 300 shares on Nomad's curve
		must.Eq(t, hard, cgroupstest.Read(t, dirs[0], "memory.max"))
		must.Eq(t, soft, cgroupstest.Read(t, dirs[0], "memory.low"))
		if _, err := os.Stat(filepath.Join(dirs[0], "memory.swap.max")); err == nil {
			must.Eq(t, "0", cgroupstest.Read(t, dirs[0], "memory.swap.max"))
		}
	}

	// The task's memory Usage is its cgroup's (which counts the page
	// cache and the kernel's memory for it), not the executor's RSS.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := h.driver.TaskStats(ctx, tk.cfg.ID, 100*time.Millisecond)
	must.NoError(t, err)
	u := <-ch
	must.Positive(t, u.ResourceUsage.MemoryStats.Usage)
	must.NotEq(t, u.ResourceUsage.MemoryStats.RSS, u.ResourceUsage.MemoryStats.Usage)

	must.NoError(t, h.StopTask(tk.cfg.ID, 10*time.Second, "SIGTERM"))
	h.wait(t, tk.cfg.ID)
	must.NoError(t, h.DestroyTask(tk.cfg.ID, false))
	for _, dir := range dirs {
		must.DirNotExists(t, dir)
	}
}

// TestCgroupNomadsOwn: where Nomad's client made cgroups for the task,
// the executor joins them, and the driver sets the limits in them. On v2
// that is the task's one cgroup (CpusetCgroupPath), which Nomad removes
// after the task. On v1 they are its freezer, cpu and memory cgroups,
// found beside the cpuset one Nomad passes, and Nomad removes them too;
// the cpuset cgroup of the task's reserved cores, whose cpus the driver
// sets if Nomad has not, the driver removes (Nomad cannot shrink its
// reserve while it exists).
func TestCgroupNomadsOwn(t *testing.T) {
	t.Parallel()
	v := cgroupstest.Require(t, cgroups.Version)
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"sleep", "600"}})
	tk.cfg.Resources.LinuxResources.CPUShares = 500
	tk.cfg.Resources.LinuxResources.CpusetCpus = "0"

	scope, nomads, slice := nomadCgroups(t, v, tk.cfg)
	tk.cfg.Resources.LinuxResources.CpusetCgroupPath = scope
	pid := executorPid(t, h.start(t, tk))
	tk.waitLog(t, "stdout", "sleeping")

	must.Eq(t, "0", cgroupstest.Read(t, scope, "cpuset.cpus"))
	own := strings.TrimPrefix(scope, cgroups.Mount)
	switch v {
	case "v1":
		cg := procCgroups(t, pid)
		must.Eq(t, strings.TrimPrefix(own, "/cpuset"), cg["cpuset"])
		for _, controller := range []string{"freezer", "cpu", "memory"} {
			must.Eq(t, "/"+slice+"/"+tk.cfg.AllocID+"."+tk.cfg.Name, cg[controller], must.Sprintf("controller %s", controller))
		}
		must.Eq(t, "500", cgroupstest.Read(t, nomads[1], "cpu.shares"))
		must.Eq(t, strconv.Itoa(64<<20+executorOverhead), cgroupstest.Read(t, nomads[2], "memory.limit_in_bytes"))
		for _, controller := range []string{"cpu", "memory"} {
			must.DirNotExists(t, filepath.Join(cgroups.Mount, controller, cgroups.Root, cgroups.Name(tk.cfg.AllocID, tk.cfg.Name)))
		}
	case "v2":
		must.Eq(t, own, procCgroups(t, pid)[""])
		must.Eq(t, "58", cgroupstest.Read(t, scope, "cpu.weight")) // 500 shares on Nomad's curve
		must.Eq(t, strconv.Itoa(64<<20+executorOverhead), cgroupstest.Read(t, scope, "memory.max"))
		must.DirNotExists(t, filepath.Join(cgroups.Mount, cgroups.Root, cgroups.Name(tk.cfg.AllocID, tk.cfg.Name)))
	}

	must.NoError(t, h.StopTask(tk.cfg.ID, 10*time.Second, "SIGTERM"))
	h.wait(t, tk.cfg.ID)
	must.NoError(t, h.DestroyTask(tk.cfg.ID, false))
	if v == "v2" {
		must.DirExists(t, scope)
	} else {
		must.DirNotExists(t, scope)
		for _, dir := range nomads {
			must.DirExists(t, dir)
		}
	}
}

// TestCgroupWithoutNomads: a client whose cgroup management is off (on v2
// where the root lacks a controller Nomad wants) still passes a
// CpusetCgroupPath, of cgroups it never made: the driver's own cgroups
// limit the task then.
func TestCgroupWithoutNomads(t *testing.T) {
	t.Parallel()
	v := cgroupstest.Require(t, cgroups.Version)
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"sleep", "600"}})
	absent := fmt.Sprintf("nomad-absent-%d", os.Getpid())
	want := "/" + cgroups.Root + "/" + cgroups.Name(tk.cfg.AllocID, tk.cfg.Name)
	key := ""
	switch v {
	case "v1":
		tk.cfg.Resources.LinuxResources.CpusetCgroupPath = filepath.Join(cgroups.Mount, "cpuset", absent, "share")
		key = "memory"
	case "v2":
		tk.cfg.Resources.LinuxResources.CpusetCgroupPath = filepath.Join(cgroups.Mount, absent+".slice", "share.slice", tk.cfg.AllocID+"."+tk.cfg.Name+".scope")
	}
	pid := executorPid(t, h.start(t, tk))
	tk.waitLog(t, "stdout", "sleeping")
	must.Eq(t, want, procCgroups(t, pid)[key])
	must.NoError(t, h.StopTask(tk.cfg.ID, 10*time.Second, "SIGTERM"))
	h.wait(t, tk.cfg.ID)
	must.NoError(t, h.DestroyTask(tk.cfg.ID, false))
}

// nomadCgroups makes the cgroups Nomad's client makes at its start
// (cgroupslib.Init) and for the task (its process wrangler), under a slice
// of the test's, and removes them, as Nomad does, when the test ends. It
// returns the cgroup Nomad passes as CpusetCgroupPath (v1 the task's
// reserved cpuset, v2 its scope), on v1 the task's freezer, cpu and
// memory cgroups, and the slice's name.
func nomadCgroups(t *testing.T, v string, cfg *drivers.TaskConfig) (scope string, nomads []string, slice string) {
	t.Helper()
	slice = fmt.Sprintf("nomad-test-%d-%s.slice", os.Getpid(), t.Name())
	var top string
	switch v {
	case "v1":
		top = filepath.Join(cgroups.Mount, "cpuset", slice)
		nomadCpuset(t, top)
		nomadCpuset(t, filepath.Join(top, "reserve"))
		scope = filepath.Join(top, "reserve", cfg.AllocID+"."+cfg.Name)
		must.NoError(t, os.Mkdir(scope, 0o755))
		for _, controller := range []string{"freezer", "cpu", "memory"} {
			dir := filepath.Join(cgroups.Mount, controller, slice, cfg.AllocID+"."+cfg.Name)
			must.NoError(t, os.MkdirAll(dir, 0o755))
			nomads = append(nomads, dir)
		}
	case "v2":
		top = filepath.Join(cgroups.Mount, slice)
		nomadSubtree(t, cgroups.Mount)
		must.NoError(t, os.Mkdir(top, 0o755))
		nomadSubtree(t, top)
		must.NoError(t, os.Mkdir(filepath.Join(top, "reserve.slice"), 0o755))
		nomadSubtree(t, filepath.Join(top, "reserve.slice"))
		scope = filepath.Join(top, "reserve.slice", cfg.AllocID+"."+cfg.Name+".scope")
		must.NoError(t, os.Mkdir(scope, 0o755))
	}
	t.Cleanup(func() {
		for _, dir := range nomads {
			_ = syscall.Rmdir(dir)
			_ = syscall.Rmdir(filepath.Dir(dir))
		}
		_ = syscall.Rmdir(scope)
		_ = syscall.Rmdir(filepath.Join(top, "reserve.slice"))
		_ = syscall.Rmdir(filepath.Join(top, "reserve"))
		_ = syscall.Rmdir(top)
	})
	return scope, nomads, slice
}

// nomadCpuset makes dir a cpuset cgroup with its parent's cpus and mems,
// as Nomad's client makes its own.
func nomadCpuset(t *testing.T, dir string) {
	t.Helper()
	must.NoError(t, os.MkdirAll(dir, 0o755))
	for _, f := range []string{"cpuset.mems", "cpuset.cpus"} {
		if cgroupstest.Read(t, dir, f) != "" {
			continue
		}
		must.NoError(t, os.WriteFile(filepath.Join(dir, f), []byte(cgroupstest.Read(t, filepath.Dir(dir), f)), 0o644))
	}
}

// nomadSubtree enables the cpu, memory and (where there is one) cpuset
// controllers for the children of the v2 cgroup dir, as Nomad's client
// does for its own.
func nomadSubtree(t *testing.T, dir string) {
	t.Helper()
	have := strings.Fields(cgroupstest.Read(t, dir, "cgroup.controllers"))
	var add []string
	for _, c := range []string{"cpu", "memory", "cpuset"} {
		if slices.Contains(have, c) {
			add = append(add, "+"+c)
		}
	}
	if len(add) == 0 {
		return
	}
	must.NoError(t, os.WriteFile(filepath.Join(dir, "cgroup.subtree_control"), []byte(strings.Join(add, " ")), 0o644))
}

// TestCgroupOOMKill: a guest that recurses without end makes wazero grow
// its stack up to 400 MB: in the task's memory cgroup the kernel ends the
// executor first, and the task says it was killed for its memory, in its
// result and in an event that puts it down to the job.
func TestCgroupOOMKill(t *testing.T) {
	t.Parallel()
	cgroupstest.Require(t, cgroups.Version)
	h := newHarness(t, "")
	events := h.events(t)
	tk := h.newTask(t, "", 64, TaskConfig{Module: "local/app.wasm"})
	must.NoError(t, os.WriteFile(filepath.Join(tk.cfg.TaskDir().LocalDir, "app.wasm"), recursingModule, 0o644))
	res := h.run(t, tk)
	must.True(t, res.OOMKilled, must.Sprint(res))
	must.ErrorContains(t, res.Err, "exceeding its memory cgroup's limit")
	ev := waitEvent(t, events, tk.cfg.ID, "OOM killed: ")
	must.Eq(t, "job", ev.Annotations["error_class"])
}

// TestCgroupOOMKillOncePerRun: Nomad's cgroups live as long as the
// allocation, across the task's restarts: after a run killed for its
// memory, a later run whose executor is lost otherwise is not reported as
// OOM killed.
func TestCgroupOOMKillOncePerRun(t *testing.T) {
	t.Parallel()
	v := cgroupstest.Require(t, cgroups.Version)
	h := newHarness(t, "")
	first := h.newTask(t, "", 64, TaskConfig{Module: "local/app.wasm"})
	must.NoError(t, os.WriteFile(filepath.Join(first.cfg.TaskDir().LocalDir, "app.wasm"), recursingModule, 0o644))
	scope, _, _ := nomadCgroups(t, v, first.cfg)
	first.cfg.Resources.LinuxResources.CpusetCgroupPath = scope
	must.True(t, h.run(t, first).OOMKilled)
	must.NoError(t, h.DestroyTask(first.cfg.ID, false))
	// Nomad's process wrangler makes the task's cgroups again before each
	// run (on v1 the driver removed its reserved cpuset).
	must.NoError(t, os.MkdirAll(scope, 0o755))

	// The next run of the same task (its allocation and name) in the same
	// cgroups, whose executor is killed.
	again := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"sleep", "600"}})
	again.cfg.AllocID, again.cfg.Name = first.cfg.AllocID, first.cfg.Name
	again.cfg.Resources.LinuxResources.CpusetCgroupPath = scope
	pid := executorPid(t, h.start(t, again))
	again.waitLog(t, "stdout", "sleeping")
	must.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	res := h.wait(t, again.cfg.ID)
	must.False(t, res.OOMKilled, must.Sprint(res))
	must.ErrorContains(t, res.Err, "exited without recording")
}

// TestCgroupCPUShares: two CPU-bound guests on one core get it in the
// ratio of their resources.cpu.
func TestCgroupCPUShares(t *testing.T) {
	t.Parallel()
	cgroupstest.Require(t, cgroups.Version)
	h := newHarness(t, "")
	// Both start, then both spin: a task starting on a core where another
	// guest already spins is not what this measures.
	spin := func(shares int64) (int, *task) {
		tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"spin-when", "/local/go"}})
		tk.cfg.Resources.LinuxResources.CPUShares = shares
		tk.cfg.Resources.LinuxResources.CpusetCpus = "0"
		pid := executorPid(t, h.start(t, tk))
		// Gone before the test ends: a spinner that outlived it would take
		// the core from the next test's tasks.
		t.Cleanup(func() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			waitGone(t, pid)
		})
		tk.waitLog(t, "stdout", "waiting")
		return pid, tk
	}
	small, smallTask := spin(200)
	large, largeTask := spin(800)
	for _, tk := range []*task{smallTask, largeTask} {
		must.NoError(t, os.WriteFile(filepath.Join(tk.cfg.TaskDir().LocalDir, "go"), nil, 0o644))
	}
	smallTask.waitLog(t, "stdout", "spinning")
	largeTask.waitLog(t, "stdout", "spinning")
	s0, l0 := procCPU(t, small), procCPU(t, large)
	time.Sleep(3 * time.Second) // a span to measure over, not a wait for an event
	s, l := procCPU(t, small)-s0, procCPU(t, large)-l0
	t.Logf("over 3 s on one core: cpu = 200 used %v, cpu = 800 used %v", s, l)
	must.Positive(t, s)
	must.Greater(t, 2.0, float64(l)/float64(s), must.Sprintf("shares 800 against 200 on one core: %v against %v", l, s))
}
