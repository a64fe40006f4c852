// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/shoenig/test/must"
)

// TestCgroups: on the real node, a task's executor runs in the cgroups
// Nomad's client made for the task (freezer, cpu, memory, and with
// resources.cores its reserved cpuset), with the task's limits; the
// driver's attribute says which cgroups it uses.
func TestCgroups(t *testing.T) {
	c := StartCluster(t)
	nodes, _, err := c.Nomad.Nodes().List(nil)
	must.NoError(t, err)
	node, _, err := c.Nomad.Nodes().Info(nodes[0].ID, nil)
	must.NoError(t, err)
	must.Eq(t, "v1", node.Attributes["driver.wasm.cgroups"])

	job := c.serviceJob(t, "cgroups", 1, "")
	job.TaskGroups[0].Tasks[0].Resources.CPU = nil
	cores := 1
	job.TaskGroups[0].Tasks[0].Resources.Cores = &cores
	c.register(t, job)
	alloc := c.waitAllocs(t, *job.ID, 1, status("running"))[0]
	c.waitLogs(t, alloc, "ticker", "stdout", "tick 3\n")
	pid := executorPid(t, c, alloc)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	must.NoError(t, err)
	nomads := "/nomad/" + alloc.ID + ".ticker"
	var cpuset string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		switch parts[1] {
		case "cpu", "cpu,cpuacct", "memory", "freezer":
			must.Eq(t, nomads, parts[2], must.Sprintf("controller %s", parts[1]))
		case "cpuset":
			cpuset = parts[2]
		}
	}
	// With the task's limits: its 32 MiB of memory plus the executor's 64.
	limit, err := os.ReadFile("/sys/fs/cgroup/memory" + nomads + "/memory.limit_in_bytes")
	must.NoError(t, err)
	must.Eq(t, strconv.Itoa(96<<20), strings.TrimSpace(string(limit)))
	// The cpuset cgroup Nomad reserved for the task's core.
	must.StrContains(t, cpuset, alloc.ID, must.Sprintf("/proc/%d/cgroup:\n%s", pid, b))
	must.StrContains(t, cpuset, "reserve")

	// Stopped, the task leaves no cgroup behind, Nomad's included: one left
	// in Nomad's reserve cpuset would keep Nomad from handing the core
	// back, and every later allocation of the node would fail.
	_, _, err = c.Nomad.Jobs().Deregister(*job.ID, false, nil)
	must.NoError(t, err)
	c.waitAllocs(t, *job.ID, 1, status("complete"))
	for _, dir := range []string{"/sys/fs/cgroup/cpuset" + cpuset, "/sys/fs/cgroup/cpu" + nomads, "/sys/fs/cgroup/memory" + nomads} {
		waitFor(t, func() bool { _, err := os.Stat(dir); return os.IsNotExist(err) }, func() string { return dir + " is still there" })
	}
	// A task without cores joins Nomad's shared cpuset cgroup, which stays
	// when the task is done: every such task of the node is in it.
	plain := c.serviceJob(t, "cgroups-shared", 1, "")
	c.register(t, plain)
	c.waitAllocs(t, *plain.ID, 1, status("running"))
	_, _, err = c.Nomad.Jobs().Deregister(*plain.ID, false, nil)
	must.NoError(t, err)
	c.waitAllocs(t, *plain.ID, 1, status("complete"))
	must.DirExists(t, "/sys/fs/cgroup/cpuset/nomad/share")

	// And the node runs the next task that reserves the core.
	job2 := c.serviceJob(t, "cgroups-again", 1, "")
	job2.TaskGroups[0].Tasks[0].Resources.CPU = nil
	job2.TaskGroups[0].Tasks[0].Resources.Cores = &cores
	c.register(t, job2)
	c.waitAllocs(t, *job2.ID, 1, status("running"))
	_, _, err = c.Nomad.Jobs().Deregister(*job2.ID, false, nil)
	must.NoError(t, err)
	c.waitAllocs(t, *job2.ID, 1, status("complete"))
}
