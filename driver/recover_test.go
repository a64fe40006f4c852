// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"context"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"
)

func executorPid(t testing.TB, handle *drivers.TaskHandle) int {
	t.Helper()
	var state TaskState
	must.NoError(t, handle.GetDriverState(&state))
	must.Positive(t, state.ExecutorPid)
	return state.ExecutorPid
}

// ticks returns the number of the last tick line in the log.
func lastTick(t *testing.T, tk *task) int {
	t.Helper()
	out := tk.waitLog(t, "stdout", "tick ")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	n, err := strconv.Atoi(strings.TrimPrefix(lines[len(lines)-1], "tick "))
	must.NoError(t, err)
	return n
}

func TestRecoverReattachesToTheRunningExecutor(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"ticker"}})
	handle := h.start(t, tk)
	tk.waitLog(t, "stdout", "tick 2\n")
	pid := executorPid(t, handle)

	// A new driver, as after the plugin or the client restarted, gets the
	// handle Nomad persisted.
	h2 := newHarness(t, h.cacheDir)
	must.NoError(t, h2.RecoverTask(handle))
	must.NoError(t, h2.RecoverTask(handle)) // recovering twice is harmless
	status, err := h2.InspectTask(tk.cfg.ID)
	must.NoError(t, err)
	must.Eq(t, drivers.TaskStateRunning, status.State)
	must.Eq(t, strconv.Itoa(pid), status.DriverAttributes["executor_pid"])
	must.NoError(t, syscall.Kill(pid, 0), must.Sprint("the same executor process is still alive"))

	// The guest never stopped: its log goes on.
	n := lastTick(t, tk)
	tk.waitLog(t, "stdout", "tick "+strconv.Itoa(n+5)+"\n")

	// And the new driver controls it.
	must.NoError(t, h2.StopTask(tk.cfg.ID, 10*time.Second, "SIGTERM"))
	res := h2.wait(t, tk.cfg.ID)
	must.Eq(t, 15, res.Signal)
	must.NoError(t, h2.DestroyTask(tk.cfg.ID, false))
}

func TestRecoverReadsTheRecordedExitStatus(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"exit", "7"}})
	handle := h.start(t, tk)
	must.Eq(t, 7, h.wait(t, tk.cfg.ID).ExitCode)
	pid := executorPid(t, handle)
	waitGone(t, pid)

	// The executor is gone; the status it wrote down is what a restarted
	// driver reports.
	h2 := newHarness(t, h.cacheDir)
	must.NoError(t, h2.RecoverTask(handle))
	res := h2.wait(t, tk.cfg.ID)
	must.Eq(t, 7, res.ExitCode)
	must.NoError(t, res.Err)
}

func TestExecutorLossFailsTheTask(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	events := h.events(t)
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"ticker"}})
	handle := h.start(t, tk)
	tk.waitLog(t, "stdout", "tick 1\n")
	pid := executorPid(t, handle)
	must.NoError(t, syscall.Kill(pid, syscall.SIGKILL))

	res := h.wait(t, tk.cfg.ID)
	must.False(t, res.Successful())
	must.ErrorContains(t, res.Err, "exited without recording the guest's exit status")
	waitEvent(t, events, tk.cfg.ID, "Executor lost")

	// A restarted driver that finds the executor gone reports the same.
	h2 := newHarness(t, h.cacheDir)
	must.NoError(t, h2.RecoverTask(handle))
	res = h2.wait(t, tk.cfg.ID)
	must.ErrorContains(t, res.Err, "it was killed or crashed")
}

// TestStopUnresponsiveExecutor: an executor that answers nothing (here
// stopped by SIGSTOP; a frozen one is the same to the driver) cannot hold
// up a stop: the driver kills it once the stop's timeout has passed, and
// the task reports that.
func TestStopUnresponsiveExecutor(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"sleep", "600"}})
	pid := executorPid(t, h.start(t, tk))
	tk.waitLog(t, "stdout", "sleeping")
	must.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))

	stopped := make(chan error, 1)
	go func() { stopped <- h.StopTask(tk.cfg.ID, time.Second, "SIGTERM") }()
	select {
	case err := <-stopped:
		must.NoError(t, err)
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Fatal("StopTask did not return for an executor that does not answer")
	}
	res := h.wait(t, tk.cfg.ID)
	must.Eq(t, 137, res.ExitCode, must.Sprint(res))
	must.ErrorContains(t, res.Err, "executor was killed")
	waitGone(t, pid)
}

func TestRecoverRefusesAnotherHandleVersion(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"exit", "0"}})
	handle := h.start(t, tk)
	handle.Version = taskHandleVersion + 1
	err := newHarness(t, "").driver.RecoverTask(handle)
	must.ErrorContains(t, err, "task handle version 2 is not supported by this driver (it reads version 1)")
}

// TestRecoverRefusesIncompleteHandles: a handle without Nomad's task config,
// or whose driver state lacks the task config, is an error, not a panic.
func TestRecoverRefusesIncompleteHandles(t *testing.T) {
	t.Parallel()
	d := newHarness(t, "").driver
	must.ErrorContains(t, d.RecoverTask(nil), "handle cannot be nil")
	must.ErrorContains(t, d.RecoverTask(&drivers.TaskHandle{Version: taskHandleVersion}), "must carry the task's config")

	handle := drivers.NewTaskHandle(taskHandleVersion)
	handle.Config = &drivers.TaskConfig{ID: "no-state"}
	must.NoError(t, handle.SetDriverState(&TaskState{}))
	must.ErrorContains(t, d.RecoverTask(handle), "task no-state: its driver state holds no task config")
}

// waitGone polls until the process has exited.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for syscall.Kill(pid, 0) == nil {
		select {
		case <-ctx.Done():
			t.Fatalf("executor %d still running", pid)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
