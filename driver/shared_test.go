// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

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

	cstructs "github.com/hashicorp/nomad/client/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"
	"github.com/shoenig/test/wait"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

func newSharedHarness(t *testing.T, cacheDir string) *harness {
	t.Helper()
	return newHarnessConfig(t, Config{CacheDir: cacheDir, Engine: EngineAuto, SharedExecutor: true})
}

func sharedState(t *testing.T, handle *drivers.TaskHandle) TaskState {
	t.Helper()
	var state TaskState
	must.NoError(t, handle.GetDriverState(&state))
	return state
}

// TestSharedExecutorIsolatesTasks: with shared_executor = true the tasks
// of the node are programs of one process, and each keeps its own exit,
// stop, memory cap, logs, stats and exec: a trap, a memory-limit failure
// and the stop of a guest spinning in its own code each end one task
// while the others run on.
func TestSharedExecutorIsolatesTasks(t *testing.T) {
	t.Parallel()
	h := newSharedHarness(t, "")
	events := h.events(t)
	ticker, tickerHandle := h.startProbe(t, "tick 1\n", "ticker")
	spinner, spinnerHandle := h.startProbe(t, "spinning", "spin")
	pid := executorPid(t, tickerHandle)
	must.Eq(t, pid, executorPid(t, spinnerHandle), must.Sprint("both tasks must run in the one shared executor"))
	must.True(t, sharedState(t, tickerHandle).SharedExecutor)
	status, err := h.InspectTask(ticker.cfg.ID)
	must.NoError(t, err)
	must.Eq(t, "true", status.DriverAttributes["shared_executor"])

	// A trap ends its task only.
	trapper := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"trap"}})
	res := h.run(t, trapper)
	must.Eq(t, executor.TrapExitCode, res.ExitCode)
	must.ErrorContains(t, res.Err, "wasm trap")
	waitEvent(t, events, trapper.cfg.ID, "Guest trapped")

	// The memory cap is the task's own: 16 MiB here, beside tasks of 64.
	grower := h.newTask(t, "probe", 16, TaskConfig{Args: []string{"grow"}})
	res = h.run(t, grower)
	must.Eq(t, 0, res.ExitCode)
	out := grower.waitLog(t, "stdout", "before malloc failed")
	mb, err := strconv.Atoi(strings.Fields(strings.TrimPrefix(out, "allocated "))[0])
	must.NoError(t, err)
	must.Between(t, 1, mb, 16)

	// Each task's stats are its own: the spinner's guest burns a core, the
	// ticker's next to nothing, although they share the process. A task's
	// memory is its linear memory; the process's RSS is reported apart,
	// as shared.
	// (Relative figures: on a busy test machine the spinner gets a share
	// of a core, not all of it; the process's CPU, reported for both,
	// would be the same for both.)
	spin := taskUsage(t, h, spinner.cfg.ID)
	tick := taskUsage(t, h, ticker.cfg.ID)
	must.Greater(t, 10, spin.ResourceUsage.CpuStats.Percent)
	must.Less(t, spin.ResourceUsage.CpuStats.Percent/4, tick.ResourceUsage.CpuStats.Percent)
	must.Positive(t, spin.ResourceUsage.MemoryStats.Usage)
	must.Eq(t, 0, spin.ResourceUsage.MemoryStats.RSS)
	must.Eq(t, spin.Pids["wasm-linear-memory"].MemoryStats.Usage, spin.ResourceUsage.MemoryStats.Usage)
	must.Positive(t, spin.Pids["shared-executor-"+strconv.Itoa(pid)].MemoryStats.RSS)

	// alloc exec runs in its task's sandbox.
	var stdout lockedBuffer
	exit, err := h.driver.ExecTaskStreaming(context.Background(), ticker.cfg.ID, &drivers.ExecOptions{
		Command: []string{"/local/probe.wasm", "hello"}, Stdout: &stdout, Stderr: &closingBuffer{},
	})
	must.NoError(t, err)
	must.Eq(t, 0, exit.ExitCode)
	must.StrContains(t, stdout.String(), "hello")

	// A guest spinning in its own code is stopped alone, by the per-loop
	// check, well within its timeout and without a kill.
	began := time.Now()
	must.NoError(t, h.StopTask(spinner.cfg.ID, 30*time.Second, "SIGTERM"))
	res = h.wait(t, spinner.cfg.ID)
	must.Less(t, 10*time.Second, time.Since(began))
	must.Eq(t, 143, res.ExitCode)
	must.Eq(t, 15, res.Signal)
	must.NoError(t, res.Err)
	must.NoError(t, h.DestroyTask(spinner.cfg.ID, false))
	// Released, it holds none of its task's files any more.
	waitClosedUnder(t, pid, spinner.cfg.AllocDir)

	// The ticker never noticed.
	n := lastTick(t, ticker)
	ticker.waitLog(t, "stdout", "tick "+strconv.Itoa(n+2)+"\n")
	status, err = h.InspectTask(ticker.cfg.ID)
	must.NoError(t, err)
	must.Eq(t, drivers.TaskStateRunning, status.State)
	must.NoError(t, syscall.Kill(pid, 0), must.Sprint("the shared executor must outlive the tasks that ended in it"))
	// Each task's part of the executor log is in its own task directory.
	must.StrContains(t, executorLog(t, trapper), "guest exited")
}

// taskUsage is a task's third stats sample (the first CPU figure has no
// base).
func taskUsage(t *testing.T, h *harness, id string) *cstructs.TaskResourceUsage {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := h.TaskStats(ctx, id, 500*time.Millisecond)
	must.NoError(t, err)
	var last *cstructs.TaskResourceUsage
	for range 3 {
		select {
		case last = <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("no stats for task %s", id)
		}
	}
	must.NotNil(t, last)
	return last
}

// TestSharedExecutorOutlivesItsDriver: the shared executor is found again
// by a restarted driver (through the tasks it recovers and through the
// record in the cache directory), takes its new tasks, and exits once it
// holds no task and no driver.
func TestSharedExecutorOutlivesItsDriver(t *testing.T) {
	t.Parallel()
	h := newSharedHarness(t, "")
	tk, handle := h.startProbe(t, "tick 1\n", "ticker")
	pid := executorPid(t, handle)
	// The driver that launched it goes away (its watch pipe closes, as it
	// does when the plugin is killed).
	h.driver.shared.current.Claimed()

	h2 := newSharedHarness(t, h.cacheDir)
	must.NoError(t, h2.RecoverTask(handle))
	n := lastTick(t, tk)
	tk.waitLog(t, "stdout", "tick "+strconv.Itoa(n+2)+"\n")
	tk2, handle2 := h2.startProbe(t, "tick 1\n", "ticker")
	must.Eq(t, pid, executorPid(t, handle2), must.Sprint("a restarted driver must start tasks in the running shared executor"))

	for _, id := range []string{tk.cfg.ID, tk2.cfg.ID} {
		must.NoError(t, h2.StopTask(id, 10*time.Second, "SIGTERM"))
		must.Eq(t, 15, h2.wait(t, id).Signal)
		must.NoError(t, h2.DestroyTask(id, false))
	}
	waitClosedUnder(t, pid, tk.cfg.AllocDir)
	waitClosedUnder(t, pid, tk2.cfg.AllocDir)
	// No task left, but a driver holds it.
	must.NoError(t, syscall.Kill(pid, 0), must.Sprint("the shared executor exited while a driver held it"))
	// And the last driver goes away.
	h2.driver.shared.current.Close()
	waitGone(t, pid)
	// The restarted driver forgets the executor it had reattached to.
	must.Wait(t, wait.InitialSuccess(wait.BoolFunc(func() bool {
		h2.driver.shared.mu.Lock()
		defer h2.driver.shared.mu.Unlock()
		return len(h2.driver.shared.known) == 0 && h2.driver.shared.current == nil
	}), wait.Timeout(10*time.Second), wait.Gap(10*time.Millisecond)))
}

// TestSharedExecutorLossFailsEveryTask: when the shared executor dies,
// every task in it fails as a node failure, and the next task starts a new
// one.
func TestSharedExecutorLossFailsEveryTask(t *testing.T) {
	t.Parallel()
	h := newSharedHarness(t, "")
	events := h.events(t)
	a, handle := h.startProbe(t, "tick 1\n", "ticker")
	b, _ := h.startProbe(t, "tick 1\n", "ticker")
	pid := executorPid(t, handle)
	must.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	for _, tk := range []*task{a, b} {
		res := h.wait(t, tk.cfg.ID)
		must.False(t, res.Successful())
		must.ErrorContains(t, res.Err, "the node's shared executor")
		ev := waitEvent(t, events, tk.cfg.ID, "Executor lost")
		must.Eq(t, executor.ClassNode.String(), ev.Annotations["error_class"])
	}
	_, handle3 := h.startProbe(t, "tick 1\n", "ticker")
	must.NotEq(t, pid, executorPid(t, handle3))
}

// TestSharedExecutorConfig: the shared executor writes every task's logs,
// so Nomad's logmon cannot be asked for beside it.
func TestSharedExecutorConfig(t *testing.T) {
	t.Parallel()
	c := Config{SharedExecutor: true, Logs: LogsConfig{Collector: LogsByNomad}}
	must.ErrorContains(t, c.Validate(), "shared_executor = true conflicts with logs.collector")
}

// waitClosedUnder waits until process pid has no file open under dir: a
// released task's files are closed once its guest has ended, which on a
// loaded machine can come after the release returns.
func waitClosedUnder(t *testing.T, pid int, dir string) {
	t.Helper()
	must.Wait(t, wait.InitialSuccess(wait.BoolFunc(func() bool {
		return len(openUnder(t, pid, dir)) == 0
	}), wait.Timeout(10*time.Second), wait.Gap(10*time.Millisecond)), must.Func(func() string {
		return fmt.Sprintf("files still open under %s: %v", dir, openUnder(t, pid, dir))
	}))
}

// openUnder lists the files process pid has open under dir.
func openUnder(t *testing.T, pid int, dir string) []string {
	t.Helper()
	fds := fmt.Sprintf("/proc/%d/fd", pid)
	entries, err := os.ReadDir(fds)
	must.NoError(t, err)
	var open []string
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join(fds, e.Name())); err == nil && strings.HasPrefix(target, dir) {
			open = append(open, target)
		}
	}
	return open
}

// TestSharedExecutorKeepsPrograms: the shared executor keeps the compiled
// program of a task that ended (up to warm_modules of them), and the next
// task of the same module starts from it, in an instance of its own; a
// module with other content is never served from it.
func TestSharedExecutorKeepsPrograms(t *testing.T) {
	t.Parallel()
	h := newHarnessConfig(t, Config{Engine: EngineAuto, SharedExecutor: true, WarmModules: 4})
	events := h.events(t)
	first, sha := runUnprepared(t, h, events, "probe", TaskConfig{Args: []string{"hello"}}, nil)
	must.NoError(t, h.DestroyTask(first.cfg.ID, true))
	// Kept once the task's program is released.
	waitKept(t, h.driver, sha)

	// A guest that leaves its memory changed, then the module again: a
	// fresh instance, which prints what a fresh one prints.
	grower := h.newTask(t, "probe", 16, TaskConfig{Args: []string{"grow"}})
	must.Zero(t, h.run(t, grower).ExitCode)
	ev := waitEvent(t, events, grower.cfg.ID, "was ready: the shared executor had kept it")
	must.Eq(t, "true", ev.Annotations["prepared"])
	must.Eq(t, sha, ev.Annotations["module_sha256"])
	must.NoError(t, h.DestroyTask(grower.cfg.ID, true))
	waitKept(t, h.driver, sha)
	again := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"hello"}})
	must.Zero(t, h.run(t, again).ExitCode)
	again.waitLog(t, "stdout", "hello from wasm\n")
	ev = waitEvent(t, events, again.cfg.ID, "was ready: the shared executor had kept it")
	must.Eq(t, sha, ev.Annotations["module_sha256"])

	// Another module under the same name: its own digest, loaded anew.
	runChangedModule(t, h, events, sha)
}

// sharedPrepared lists the digests of the programs the node's shared
// executor keeps.
func sharedPrepared(t *testing.T, d *Driver) []string {
	t.Helper()
	c, err := d.shared.get()
	must.NoError(t, err)
	v, err := c.Version(context.Background(), &proto.VersionRequest{})
	must.NoError(t, err)
	return v.PreparedModules
}

// waitKept waits until the shared executor keeps the program of module
// digest.
func waitKept(t *testing.T, d *Driver, digest string) {
	t.Helper()
	must.Wait(t, wait.InitialSuccess(wait.BoolFunc(func() bool {
		return slices.Contains(sharedPrepared(t, d), digest)
	}), wait.Timeout(30*time.Second), wait.Gap(10*time.Millisecond)))
}
