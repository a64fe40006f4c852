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
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
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

// waitPreparedModule polls until the spare executor holds a prepared
// module and returns their digests.
func waitPreparedModule(t *testing.T, d *Driver) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		v, err := d.executors.version(ctx, &proto.VersionRequest{})
		must.NoError(t, err)
		if len(v.PreparedModules) > 0 {
			return v.PreparedModules
		}
		select {
		case <-ctx.Done():
			t.Fatal("the spare executor prepared no module")
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestRepeatedStartIsPrepared: a module that started on the node recently
// is prepared by the spare, and the next start of it uses that; a module
// whose content changed is never served from what was prepared.
func TestRepeatedStartIsPrepared(t *testing.T) {
	t.Parallel()
	h := newHarnessConfig(t, Config{Engine: EngineAuto, WarmModules: 4})
	events := h.events(t)
	_, sha := runUnprepared(t, h, events, "probe", TaskConfig{Args: []string{"hello"}}, nil)
	must.Eq(t, []string{sha}, waitPreparedModule(t, h.driver))

	again := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"hello"}})
	must.Zero(t, h.run(t, again).ExitCode)
	again.waitLog(t, "stdout", "hello from wasm\n")
	ev := waitEvent(t, events, again.cfg.ID, "was ready: the spare executor had prepared it")
	must.Eq(t, "true", ev.Annotations["prepared"])
	must.Eq(t, sha, ev.Annotations["module_sha256"])

	// Another module under the same name: its own digest, compiled anew.
	waitPreparedModule(t, h.driver)
	runChangedModule(t, h, events, sha)
}

// runUnprepared runs module (installed by install when set) with cfg,
// which must exit 0 with a module that nothing had ready, and returns the
// task and the module's digest.
func runUnprepared(t *testing.T, h *harness, events func(string) []*drivers.TaskEvent, module string, cfg TaskConfig, install func(*task)) (*task, string) {
	t.Helper()
	tk := h.newTask(t, module, 64, cfg)
	if install != nil {
		install(tk)
	}
	must.Zero(t, h.run(t, tk).ExitCode)
	ev := waitEvent(t, events, tk.cfg.ID, "Module ")
	must.Eq(t, "false", ev.Annotations["prepared"])
	return tk, ev.Annotations["module_sha256"]
}

// runChangedModule runs another module under the name of the one whose
// digest is sha: it is never served from what was prepared or kept.
func runChangedModule(t *testing.T, h *harness, events func(string) []*drivers.TaskEvent, sha string) {
	t.Helper()
	_, changed := runUnprepared(t, h, events, "reactor", TaskConfig{Module: "local/probe.wasm", Entrypoint: "run"}, func(tk *task) {
		testmodule.Install(t, "reactor", tk.cfg.TaskDir().LocalDir, "probe.wasm")
	})
	must.NotEq(t, sha, changed)
}
