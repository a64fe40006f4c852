// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/helper/testlog"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
)

// waitReady polls until the driver has a spare executor and returns it.
func waitReady(t *testing.T, d *Driver) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if pid := d.executors.sparePid(); pid != 0 {
			return pid
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no spare executor")
	return 0
}

func TestTaskTakesTheSpareExecutor(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	spare := waitReady(t, h.driver)
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"ticker"}})
	handle := h.start(t, tk)
	must.Eq(t, spare, executorPid(t, handle))
	// A new spare takes its place.
	must.NotEq(t, spare, waitReady(t, h.driver))
}

func TestDeadSpareIsReplaced(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	spare := waitReady(t, h.driver)
	must.NoError(t, syscall.Kill(spare, syscall.SIGKILL))
	waitGone(t, spare)
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"exit", "4"}})
	handle := h.start(t, tk)
	must.NotEq(t, spare, executorPid(t, handle))
	must.Eq(t, 4, h.wait(t, tk.cfg.ID).ExitCode)
}

func TestSpareDiesWithTheDriver(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := New(ctx, testlog.HCLogger(t))
	d.executors.fill()
	spare := waitReady(t, d)
	cancel()
	waitGone(t, spare)
}

// TestSpareExitsWhenItsDriverIsKilled: an executor no task has claimed
// exits within 5 s of the driver that launched it being killed with
// SIGKILL, which gives the driver no chance to clean up.
func TestSpareExitsWhenItsDriverIsKilled(t *testing.T) {
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), launchSpareEnv+"=1")
	out, err := cmd.StdoutPipe()
	must.NoError(t, err)
	must.NoError(t, cmd.Start())
	line, err := bufio.NewReader(out).ReadString('\n')
	must.NoError(t, err)
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	must.NoError(t, err)
	t.Cleanup(func() { _ = syscall.Kill(pid, syscall.SIGKILL) })
	must.False(t, executor.ProcessGone(pid))

	must.NoError(t, cmd.Process.Kill())
	_ = cmd.Wait()
	killed := time.Now()
	for !executor.ProcessGone(pid) {
		if time.Since(killed) > 5*time.Second {
			t.Fatalf("the unclaimed executor %d outlived its killed driver by 5 s", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
