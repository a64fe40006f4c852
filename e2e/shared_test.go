// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// TestSharedExecutor: with shared_executor = true on the real node, the
// tasks of several allocations run in one executor process, each with its
// own logs, stats and alloc exec; they survive a kill -9 of the plugin and
// a restart of the client in that same process; and stopping the job ends
// them all, leaving the shared executor holding nothing.
func TestSharedExecutor(t *testing.T) {
	c := StartCluster(t, ClientOptions{Addr: "127.0.0.1", SharedExecutor: true})
	job := c.serviceJob(t, "shared", 3, "")
	c.register(t, job)
	allocs := c.waitAllocs(t, *job.ID, 3, status("running"))
	pid := executorPid(t, c, allocs[0])
	for _, a := range allocs {
		c.waitLogs(t, a, "ticker", "stdout", "tick 3\n")
		must.Eq(t, pid, executorPid(t, c, a), must.Sprint("every task must run in the one shared executor"))
	}
	must.Eq(t, pid, sharedExecutor(t, c).Pid)

	// Stats are the task's own: its linear memory and its guest's CPU; the
	// shared process's RSS is an entry apart.
	c.waitStats(t, allocs[1], "ticker", func(ts *nomadapi.TaskResourceUsage) bool {
		shared, ok := ts.Pids["shared-executor-"+strconv.Itoa(pid)]
		return ok && shared.MemoryStats.RSS > 0 && ts.ResourceUsage.MemoryStats.Usage > 0 && ts.ResourceUsage.MemoryStats.RSS == 0
	})

	code, out, _, err := c.exec(t, allocs[2], "ticker", "/local/probe.wasm", "env")
	must.NoError(t, err)
	must.Zero(t, code)
	must.StrContains(t, out, "NOMAD_ALLOC_ID="+allocs[2].ID+"\n")

	// The plugin dies and comes back; then the client restarts. The tasks
	// run on in the same process.
	killPlugin(t, c)
	ticksGoOn(t, c, allocs, pid)
	c.RestartClient(t, 0, syscall.SIGINT)
	c.waitNodes(t, 1, func(*nomadapi.Node) bool { return true })
	ticksGoOn(t, c, allocs, pid)
	for _, a := range allocs {
		ts := c.taskState(t, a.ID, "ticker")
		must.Eq(t, "running", ts.State)
		must.Eq(t, 0, int(ts.Restarts))
	}

	var last string
	// The shared executor dies: every task in it fails as a node failure,
	// and Nomad's restart policy starts each again, all in one new shared
	// executor.
	must.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	waitFor(t, func() bool {
		for _, a := range allocs {
			ts := c.taskState(t, a.ID, "ticker")
			if ts.State != "running" || ts.Restarts != 1 {
				last = fmt.Sprintf("allocation %s: task %s, %d restarts", a.ID, ts.State, ts.Restarts)
				return false
			}
		}
		return true
	}, func() string { return last })
	for _, a := range allocs {
		lost := false
		for _, e := range c.taskState(t, a.ID, "ticker").Events {
			lost = lost || strings.Contains(e.DisplayMessage, "shared executor") && e.Type == nomadapi.TaskTerminated
		}
		must.True(t, lost, must.Sprintf("allocation %s has no event of its task's loss with the shared executor", a.ID))
	}
	pid2 := executorPid(t, c, allocs[0])
	must.NotEq(t, pid, pid2)
	ticksGoOn(t, c, allocs, pid2)
	pid = pid2

	// Stopping the job ends every task in it; the shared executor, held by
	// the driver, holds no task.
	_, _, err = c.Nomad.Jobs().Deregister(*job.ID, false, nil)
	must.NoError(t, err)
	c.waitAllocs(t, *job.ID, 3, status("complete"))
	for _, a := range allocs {
		must.Eq(t, "dead", c.taskState(t, a.ID, "ticker").State)
	}
	waitFor(t, func() bool {
		v := sharedVersion(t, c)
		last = fmt.Sprintf("shared executor %d holds %d tasks", v.Pid, v.Tasks)
		return v.Tasks == 0
	}, func() string { return last })
	for _, a := range allocs {
		waitFor(t, func() bool { return !executorServes(pid, a.ID) }, func() string {
			fds, _ := readLinks(fmt.Sprintf("/proc/%d/fd", pid))
			return fmt.Sprintf("the shared executor still has files of allocation %s open: %v", a.ID, fds)
		})
	}
}

// ticksGoOn checks that each allocation's ticker goes on, in the shared
// executor pid.
func ticksGoOn(t *testing.T, c *Cluster, allocs []*nomadapi.Allocation, pid int) {
	t.Helper()
	for _, a := range allocs {
		n := lastTick(c.logs(t, a, "ticker", "stdout"))
		c.waitLogs(t, a, "ticker", "stdout", fmt.Sprintf("tick %d\n", n+5))
		must.Eq(t, pid, executorPid(t, c, a))
	}
}

// sharedExecutor reaches the client's shared executor through the record
// the driver keeps in its cache directory.
func sharedExecutor(t testing.TB, c *Cluster) *executor.Client {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(c.CacheDir, "shared", "executor.json"))
	must.NoError(t, err)
	var rc pstructs.ReattachConfig
	must.NoError(t, json.Unmarshal(b, &rc))
	grc, err := pstructs.ReattachConfigToGoPlugin(&rc)
	must.NoError(t, err)
	ex, err := executor.Reattach(grc)
	must.NoError(t, err)
	t.Cleanup(ex.Close)
	return ex
}

func sharedVersion(t testing.TB, c *Cluster) *proto.VersionResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := sharedExecutor(t, c).Version(ctx, &proto.VersionRequest{})
	must.NoError(t, err)
	must.True(t, v.Shared)
	return v
}
