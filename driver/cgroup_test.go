// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build linux

package driver

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoenig/test/must"
)

// requireCgroupV1 skips a test where the driver cannot make cgroups v1
// (not root, or another cgroup version), except in CI, where that fails.
func requireCgroupV1(t *testing.T) {
	t.Helper()
	v, err := cgroupVersion()
	if v == "v1" && err == nil && os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI must run the cgroup tests: cgroups %q (%v), uid %d", v, err, os.Geteuid())
	}
	t.Skipf("cgroups v1 as root are needed: cgroups %q (%v), uid %d", v, err, os.Geteuid())
}

// procCPU is the CPU time process pid has used.
func procCPU(t testing.TB, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	must.NoError(t, err)
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

// TestCgroupLimits: an executor of its own runs, with its guest, in
// cgroups made for its task: cpu.shares from resources.cpu, a memory limit
// of the task's memory plus the executor's overhead; the cgroups go with
// the task.
func TestCgroupLimits(t *testing.T) {
	t.Parallel()
	requireCgroupV1(t)
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"sleep", "600"}})
	tk.cfg.Resources.LinuxResources.CPUShares = 300
	pid := executorPid(t, h.start(t, tk))
	tk.waitLog(t, "stdout", "sleeping")

	name := cgroupName(tk.cfg)
	cg, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	must.NoError(t, err)
	for _, controller := range []string{"cpu", "memory"} {
		must.StrContains(t, string(cg), controller)
		must.StrContains(t, string(cg), "/"+cgroupRoot+"/"+name+"\n")
	}
	read := func(controller, file string) string {
		b, err := os.ReadFile(filepath.Join(cgroupMount, controller, cgroupRoot, name, file))
		must.NoError(t, err)
		return strings.TrimSpace(string(b))
	}
	must.Eq(t, "300", read("cpu", "cpu.shares"))
	must.Eq(t, strconv.Itoa(64<<20+executorOverhead), read("memory", "memory.limit_in_bytes"))

	must.NoError(t, h.StopTask(tk.cfg.ID, 10*time.Second, "SIGTERM"))
	h.wait(t, tk.cfg.ID)
	must.NoError(t, h.DestroyTask(tk.cfg.ID, false))
	for _, controller := range []string{"cpu", "memory"} {
		must.DirNotExists(t, filepath.Join(cgroupMount, controller, cgroupRoot, name))
	}
}

// TestCgroupCPUShares: two CPU-bound guests on one core get it in the
// ratio of their resources.cpu.
func TestCgroupCPUShares(t *testing.T) {
	t.Parallel()
	requireCgroupV1(t)
	h := newHarness(t, "")
	spin := func(shares int64) int {
		tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"spin"}})
		tk.cfg.Resources.LinuxResources.CPUShares = shares
		tk.cfg.Resources.LinuxResources.CpusetCpus = "0"
		pid := executorPid(t, h.start(t, tk))
		tk.waitLog(t, "stdout", "spinning")
		return pid
	}
	small, large := spin(200), spin(800)
	s0, l0 := procCPU(t, small), procCPU(t, large)
	time.Sleep(3 * time.Second) // a span to measure over, not a wait for an event
	s, l := procCPU(t, small)-s0, procCPU(t, large)-l0
	t.Logf("over 3 s on one core: cpu = 200 used %v, cpu = 800 used %v", s, l)
	must.Positive(t, s)
	must.Greater(t, 2.0, float64(l)/float64(s), must.Sprintf("shares 800 against 200 on one core: %v against %v", l, s))
}
