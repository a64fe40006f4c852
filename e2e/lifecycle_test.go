// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/shoenig/test"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
)

// serviceJob is a service whose wasm task prints a numbered tick every
// 50 ms (the probe test module).
func (c *Cluster) serviceJob(t *testing.T, id string, count int, extra string) *nomadapi.Job {
	t.Helper()
	return c.parseJob(t, fmt.Sprintf(`
job %q {
  type = "service"
  group "svc" {
    count = %d
    %s
    restart {
      attempts = 3
      delay    = "1s"
      interval = "1m"
      mode     = "fail"
    }
    task "ticker" {
      driver = "wasm"
      kill_timeout = "5s"
      artifact {
        source      = "%s/probe.wasm"
        destination = "local/"
      }
      config {
        module = "local/probe.wasm"
        args   = ["ticker"]
      }
      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}`, id, count, extra, c.ArtifactURL), nil)
}

// runTicker starts a one-task ticker service on a new single-client
// cluster and returns the cluster and the running allocation, once the
// guest has written tick n.
func runTicker(t *testing.T, id string, n int) (*Cluster, *nomadapi.Allocation) {
	t.Helper()
	c := StartCluster(t)
	job := c.serviceJob(t, id, 1, "")
	c.register(t, job)
	alloc := c.waitAllocs(t, *job.ID, 1, status("running"))[0]
	c.waitLogs(t, alloc, "ticker", "stdout", fmt.Sprintf("tick %d\n", n))
	return c, alloc
}

func executorPid(t *testing.T, c *Cluster, alloc *nomadapi.Allocation) int {
	t.Helper()
	// The API does not expose the executor's pid (a driver attribute of
	// the task), so find the executor that has the allocation's files open.
	var pid int
	waitFor(t, func() bool {
		for _, p := range runProcesses(c.plugins) {
			if strings.Contains(p.cmdline, "wasm-executor") && executorServes(p.pid, alloc.ID) {
				pid = p.pid
				return true
			}
		}
		return false
	})
	return pid
}

// executorServes reports whether the executor process has a file of the
// allocation open (its log FIFOs, its log file).
func executorServes(pid int, allocID string) bool {
	fds, err := readLinks(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return false
	}
	for _, target := range fds {
		if strings.Contains(target, allocID) {
			return true
		}
	}
	return false
}

func lastTick(out string) int {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	n, _ := strconv.Atoi(strings.TrimPrefix(lines[len(lines)-1], "tick "))
	return n
}

// TestRestartSurvival: a running wasm service survives a kill -9 of the
// plugin and a restart of the Nomad client: same executor process, its log
// goes on, and stopping the job still works.
func TestRestartSurvival(t *testing.T) {
	c, alloc := runTicker(t, "survivor", 5)
	pid := executorPid(t, c, alloc)
	// It runs the executor program the plugin binary embeds (from a sealed
	// memfd), which outlives the plugin as the plugin binary's would.
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
	must.NoError(t, err)
	must.StrHasPrefix(t, "/memfd:nomad-driver-wasm-executor", exe)
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	must.NoError(t, err)
	must.Eq(t, "wasm-executor\n", string(comm))
	// The executor writes the logs: Nomad started no logmon for the task,
	// which would have made the log FIFOs.
	files, _, err := c.Nomad.AllocFS().List(alloc, "alloc/logs", nil)
	must.NoError(t, err)
	for _, f := range files {
		must.StrNotContains(t, f.Name, ".fifo", must.Sprint("Nomad ran a logmon for a wasm task"))
	}

	// (a) The plugin process dies; Nomad starts it again and it reattaches.
	killPluginAndRecover(t, c, alloc, pid, 20)

	// (b) The Nomad client restarts.
	c.RestartClient(t, 0, syscall.SIGINT)
	c.waitNodes(t, 1, func(*nomadapi.Node) bool { return true })
	n := lastTick(c.logs(t, alloc, "ticker", "stdout"))
	c.waitLogs(t, alloc, "ticker", "stdout", fmt.Sprintf("tick %d\n", n+20))
	must.Eq(t, pid, executorPid(t, c, alloc))
	ts := c.taskState(t, alloc.ID, "ticker")
	must.Eq(t, "running", ts.State)
	must.Eq(t, 0, int(ts.Restarts))

	// Stopping the job still stops the guest and its executor, as promptly
	// as if the plugin had never been replaced.
	c.stopPromptly(t, 0, alloc, pid)
}

// TestRestartSurvivalPluginKillStop: after a kill -9 of the plugin and the
// task's recovery by the new plugin, stopping the job is as prompt as
// without: the executor the new plugin reattached to is no child of it, and
// its exit must not cost go-plugin's 2 s graceful-exit wait and SIGKILL.
func TestRestartSurvivalPluginKillStop(t *testing.T) {
	c, alloc := runTicker(t, "orphan", 5)
	pid := executorPid(t, c, alloc)
	killPluginAndRecover(t, c, alloc, pid, 10)
	c.stopPromptly(t, 0, alloc, pid)
}

// killPlugin kills the plugin with SIGKILL and waits for Nomad to start a
// new one.
func killPlugin(t *testing.T, c *Cluster) {
	t.Helper()
	plugins := c.PluginPids(t)
	must.Len(t, 1, plugins)
	must.NoError(t, syscall.Kill(plugins[0], syscall.SIGKILL))
	waitFor(t, func() bool {
		ps := c.PluginPids(t)
		return len(ps) == 1 && ps[0] != plugins[0]
	})
}

// killPluginAndRecover kills the plugin (killPlugin) and checks that the
// task recovered: the same executor (pid), its log going on for ticks more
// ticks.
func killPluginAndRecover(t *testing.T, c *Cluster, alloc *nomadapi.Allocation, pid, ticks int) {
	t.Helper()
	killPlugin(t, c)
	n := lastTick(c.logs(t, alloc, "ticker", "stdout"))
	c.waitLogs(t, alloc, "ticker", "stdout", fmt.Sprintf("tick %d\n", n+ticks))
	must.Eq(t, pid, executorPid(t, c, alloc))
}

// TestStopPromptly: the baseline of TestRestartSurvivalPluginKillStop, a
// stop with the plugin that started the task: Killed within a second of
// Killing, and no gracefulExitWarning from the plugin.
func TestStopPromptly(t *testing.T) {
	c, alloc := runTicker(t, "prompt", 5)
	c.stopPromptly(t, 0, alloc, executorPid(t, c, alloc))
}

// gracefulExitWarning is what go-plugin logs when Kill gave up waiting for
// a plugin process (here an executor) to exit after closing its connection,
// and SIGKILLs it.
const gracefulExitWarning = "plugin failed to exit gracefully"

// stopPromptly deregisters alloc's job and checks that its task stopped
// promptly: Nomad's Killed event comes within a second of its Killing
// event, and the plugin's lines in client i's log have no
// gracefulExitWarning for this stop. It also waits for the executor (pid)
// to be gone.
func (c *Cluster) stopPromptly(t *testing.T, i int, alloc *nomadapi.Allocation, pid int) {
	t.Helper()
	logFile := c.clients[i].logFile
	fi, err := os.Stat(logFile)
	must.NoError(t, err)
	states := watchStates(pid)

	_, _, err = c.Nomad.Jobs().Deregister(alloc.JobID, false, nil)
	must.NoError(t, err)
	c.waitAllocs(t, alloc.JobID, 1, status("complete"))
	var killing, killed *nomadapi.TaskEvent
	waitFor(t, func() bool {
		killing, killed = nil, nil
		for _, e := range c.taskState(t, alloc.ID, "ticker").Events {
			switch {
			case e.Type == nomadapi.TaskKilling:
				killing, killed = e, nil
			case e.Type == nomadapi.TaskKilled && killing != nil:
				killed = e
			}
		}
		return killed != nil
	})
	waitFor(t, func() bool { return syscall.Kill(pid, 0) != nil })
	// go-plugin warns, then SIGKILLs, 2 s after closing the connection: once
	// the executor is gone, any warning of this stop has been logged.
	waitFor(t, func() bool { return executor.ProcessGone(pid) })
	changes := states()

	b, err := os.ReadFile(logFile)
	must.NoError(t, err)
	segment := string(b[min(fi.Size(), int64(len(b))):])
	var lines []string
	for _, l := range strings.Split(segment, "\n") {
		if strings.Contains(l, "nomad-driver-wasm") || strings.Contains(l, alloc.ID) {
			lines = append(lines, l)
		}
	}
	var events strings.Builder
	for _, e := range c.taskState(t, alloc.ID, "ticker").Events {
		fmt.Fprintf(&events, "%s %s: %s\n", time.Unix(0, e.Time).Format("15:04:05.000"), e.Type, e.DisplayMessage)
	}
	report := fmt.Sprintf("task events:\n%s\nexecutor %d states: %s\nclient log during the stop:\n%s",
		events.String(), pid, changes, strings.Join(lines, "\n"))
	t.Log(report)

	gap := time.Duration(killed.Time - killing.Time)
	test.Less(t, time.Second, gap, test.Sprintf("Killed came %s after Killing", gap))
	// Only the plugin's lines count: Nomad's own go-plugin clients (logmon,
	// reattached after a client restart) can log the same warning.
	var warned []string
	for _, l := range lines {
		if strings.Contains(l, gracefulExitWarning) && strings.Contains(l, "nomad-driver-wasm") {
			warned = append(warned, l)
		}
	}
	test.SliceEmpty(t, warned, test.Sprintf("the plugin logged %q during the stop", gracefulExitWarning))
}

// watchStates samples the state of process pid (/proc/PID/stat: R, S, Z
// for a zombie...) every 10 ms until the returned function is called, which
// returns each change with its time.
func watchStates(pid int) func() string {
	done := make(chan struct{})
	out := make(chan string)
	go func() {
		var b strings.Builder
		last := ""
		for {
			state := "gone"
			if stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
				// The state follows the command name, which is in parentheses.
				if f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:])); len(f) > 0 {
					state = f[0]
				}
			}
			if state != last {
				fmt.Fprintf(&b, "%s %s; ", time.Now().Format("15:04:05.000"), state)
				last = state
			}
			select {
			case <-done:
				out <- b.String()
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return func() string { close(done); return <-out }
}

// TestExecutorLoss: kill -9 of an executor fails the task with a clear
// event, and the restart policy starts it again.
func TestExecutorLoss(t *testing.T) {
	c, alloc := runTicker(t, "lossy", 2)
	pid := executorPid(t, c, alloc)
	must.NoError(t, syscall.Kill(pid, syscall.SIGKILL))

	waitFor(t, func() bool {
		ts := c.taskState(t, alloc.ID, "ticker")
		return ts.Restarts >= 1 && ts.State == "running"
	})
	ts := c.taskState(t, alloc.ID, "ticker")
	must.True(t, hasEvent(ts, "Executor lost"), must.Sprint(eventList(ts)))
	must.True(t, hasEvent(ts, "exited without recording the guest's exit status"), must.Sprint(eventList(ts)))
	must.NotEq(t, pid, executorPid(t, c, alloc))
}

// TestCluster: a job of four lands only on the clients with the driver,
// spread across them, and every allocation ran.
func TestCluster(t *testing.T) {
	c := StartCluster(t,
		ClientOptions{Addr: "127.0.0.2"},
		ClientOptions{Addr: "127.0.0.3"},
		ClientOptions{Addr: "127.0.0.4", NoPlugin: true},
	)
	nodes := c.waitNodes(t, 3, func(*nomadapi.Node) bool { return true })
	withDriver := map[string]bool{}
	for _, n := range nodes {
		if d, ok := n.Drivers["wasm"]; ok && d.Detected && d.Healthy {
			withDriver[n.ID] = true
		}
	}
	must.MapLen(t, 2, withDriver)

	job := c.serviceJob(t, "spread", 4, `spread {
      attribute = "${node.unique.id}"
      weight    = 100
    }`)
	c.register(t, job)
	allocs := c.waitAllocs(t, *job.ID, 4, status("running"))
	perNode := map[string]int{}
	for _, a := range allocs {
		must.True(t, withDriver[a.NodeID], must.Sprintf("alloc %s on node %s without the driver", a.ID, a.NodeID))
		perNode[a.NodeID]++
		c.waitLogs(t, a, "ticker", "stdout", "tick 3\n")
	}
	// Spread is a preference the scheduler weighs against bin packing, so
	// the test asks for what it guarantees: both nodes with the driver ran
	// allocations, and none ran elsewhere.
	must.MapLen(t, 2, perNode, must.Sprintf("allocations per node: %v", perNode))
}

// TestOperability: stats show memory and CPU; nomad alloc exec runs a
// module in the task's sandbox and refuses what is not one; SIGTERM through
// nomad alloc signal stops the task gracefully.
func TestOperability(t *testing.T) {
	c, alloc := runTicker(t, "operable", 3)

	c.waitStats(t, alloc, "ticker", func(ts *nomadapi.TaskResourceUsage) bool {
		return ts.ResourceUsage.MemoryStats.RSS > 0 && ts.ResourceUsage.CpuStats.Percent > 0
	})

	// The client runs as root; the task's executor runs as the plugin's
	// default_user, nobody.
	nobody, err := user.Lookup("nobody")
	must.NoError(t, err)
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", executorPid(t, c, alloc)))
	must.NoError(t, err)
	must.StrContains(t, string(status), fmt.Sprintf("\nUid:\t%s\t%s\t%s\t%s\n", nobody.Uid, nobody.Uid, nobody.Uid, nobody.Uid))

	// nomad alloc exec runs a command module from the task's view in the
	// task's sandbox and streams its output and exit code back.
	var code int
	var out, errOut string
	exec := func(cmd ...string) {
		t.Helper()
		code, out, errOut, err = c.exec(t, alloc, "ticker", cmd...)
		must.NoError(t, err, must.Sprintf("exec %v", cmd))
	}
	// What the last exec gave, for a failure's message.
	got := func() must.Setting { return must.Sprintf("exit code %d, stdout %q, stderr %q", code, out, errOut) }
	exec("/local/probe.wasm", "hello")
	must.Zero(t, code, got())
	must.Eq(t, "hello from wasm\n", out, got())
	must.Eq(t, "a line on stderr\n", errOut, got())
	exec("/local/probe.wasm", "env")
	must.Zero(t, code, got())
	must.StrContains(t, out, "NOMAD_ALLOC_ID="+alloc.ID+"\n", got())
	exec("/local/probe.wasm", "exit", "3")
	must.Eq(t, 3, code, got())
	exec("/bin/sh", "-c", "id")
	must.Eq(t, 127, code, got())
	must.StrContains(t, errOut, `path "/bin/sh" is outside the task's view`, got())
	// A file in the view that is not a module: 126, and what it is instead.
	exec("/alloc/logs/ticker.stdout.0")
	must.Eq(t, 126, code, got())
	must.StrContains(t, errOut, "not a WebAssembly module: it looks like text", got())
	// The task's memory cap (32 MiB) bounds the exec'd module too.
	exec("/local/probe.wasm", "grow")
	must.Zero(t, code, got())
	var mb int
	_, err = fmt.Sscanf(out, "allocated %d MiB", &mb)
	must.NoError(t, err, got())
	must.Between(t, 16, mb, 31, got())

	err = c.Nomad.Allocations().Signal(alloc, nil, "ticker", "SIGHUP")
	must.ErrorContains(t, err, "SIGINT and SIGTERM stop it gracefully")
	must.NoError(t, c.Nomad.Allocations().Signal(alloc, nil, "ticker", "SIGTERM"))
	waitFor(t, func() bool {
		ts := c.taskState(t, alloc.ID, "ticker")
		for _, e := range ts.Events {
			if e.Type == nomadapi.TaskTerminated && e.Signal == 15 {
				return true
			}
		}
		return false
	})
}

// waitStats polls the stats of a task of alloc until ok accepts them.
func (c *Cluster) waitStats(t *testing.T, alloc *nomadapi.Allocation, task string, ok func(*nomadapi.TaskResourceUsage) bool) {
	t.Helper()
	var last string
	waitFor(t, func() bool {
		stats, err := c.Nomad.Allocations().Stats(alloc, nil)
		if err != nil {
			last = err.Error()
			return false
		}
		ts, found := stats.Tasks[task]
		if !found {
			last = fmt.Sprintf("no %s in %+v", task, stats.Tasks)
			return false
		}
		last = fmt.Sprintf("memory %+v cpu %+v pids %+v", ts.ResourceUsage.MemoryStats, ts.ResourceUsage.CpuStats, ts.Pids)
		return ok(ts)
	}, func() string { return last })
}
