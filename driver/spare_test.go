// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"context"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/helper/testlog"
	"github.com/shoenig/test/must"
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
