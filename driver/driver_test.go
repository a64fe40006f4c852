// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
)

func TestHelloStdoutStderrAndLoadEvent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	events := h.events(t)
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"hello"}})
	res := h.run(t, tk)
	must.True(t, res.Successful(), must.Sprintf("result: %+v", res))
	tk.waitLog(t, "stdout", "hello from wasm\n")
	tk.waitLog(t, "stderr", "a line on stderr\n")
	ev := waitEvent(t, events, tk.cfg.ID, "compiled in")
	must.Eq(t, "false", ev.Annotations["cache_hit"])
}

func TestArgvAndArgs(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"args", "two words", "--flag=x"}})
	must.Zero(t, h.run(t, tk).ExitCode)
	out := tk.waitLog(t, "stdout", "argv[3]=")
	must.Eq(t, "argv[0]=probe.wasm\nargv[1]=args\nargv[2]=two words\nargv[3]=--flag=x\n", out)
}

func TestEnvironmentIsTheTaskEnvOnly(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"env"}})
	tk.cfg.Env["JOB_ENV_VAR"] = "from the job's env block"
	must.Zero(t, h.run(t, tk).ExitCode)

	var want []string
	for k, v := range tk.cfg.Env {
		want = append(want, k+"="+v)
	}
	slices.Sort(want)
	out := tk.waitLog(t, "stdout", want[len(want)-1]+"\n")
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	must.Eq(t, want, got)
	must.StrNotContains(t, out, hostSecret)
	// Paths in the environment are the guest's, not the host's.
	must.SliceContains(t, got, "NOMAD_TASK_DIR=/local")
	must.SliceContains(t, got, "NOMAD_ALLOC_DIR=/alloc")
	must.SliceContains(t, got, "NOMAD_SECRETS_DIR=/secrets")
}

func TestExitCodes(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	cases := []struct {
		args []string
		code int
	}{
		{[]string{"exit", "0"}, 0},
		{[]string{"exit", "3"}, 3},
		{[]string{"exit", "255"}, 255},
		{[]string{"hello"}, 0},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, "_"), func(t *testing.T) {
			tk := h.newTask(t, "probe", 64, TaskConfig{Args: c.args})
			res := h.run(t, tk)
			must.Eq(t, c.code, res.ExitCode)
			must.Zero(t, res.Signal)
			must.NoError(t, res.Err)
		})
	}
}

func TestTrapIsNonZeroWithMessageOnStderrAndEvent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	events := h.events(t)
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"trap"}})
	res := h.run(t, tk)
	must.Eq(t, executor.TrapExitCode, res.ExitCode)
	must.ErrorContains(t, res.Err, "wasm trap: unreachable")
	// The exit message and the event say the cause in one line; the stack
	// trace is on the task's stderr.
	must.StrNotContains(t, res.Err.Error(), "\n")
	must.StrNotContains(t, res.Err.Error(), "stack trace")
	tk.waitLog(t, "stdout", "about to trap\n")
	tk.waitLog(t, "stderr", "wasm stack trace:")
	ev := waitEvent(t, events, tk.cfg.ID, "Guest trapped: wasm trap: unreachable")
	must.StrNotContains(t, ev.Message, "\n")
}

func TestClocksAreReal(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"clock"}})
	must.Zero(t, h.run(t, tk).ExitCode)
	out := tk.waitLog(t, "stdout", "slept_ns=")
	vals := map[string]int64{}
	for _, line := range strings.Fields(out) {
		k, v, _ := strings.Cut(line, "=")
		vals[k], _ = strconv.ParseInt(v, 10, 64)
	}
	// wazero's defaults would report 2022-01-01 and a fake monotonic clock.
	must.Less(t, int64(5), max(time.Now().Unix()-vals["realtime"], vals["realtime"]-time.Now().Unix()))
	must.GreaterEq(t, int64(20*time.Millisecond), vals["slept_ns"])
}

func TestRandomnessIsReal(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	var outputs []string
	for range 2 {
		tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"random"}})
		must.Zero(t, h.run(t, tk).ExitCode)
		out := tk.waitLines(t, "stdout", 2)
		lines := strings.Fields(out)
		must.NotEq(t, lines[0], lines[1])
		outputs = append(outputs, out)
	}
	// wazero's default source is a fixed seed: two runs would agree.
	must.NotEq(t, outputs[0], outputs[1])
}

func TestStdinIsEmpty(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"stdin"}})
	must.Zero(t, h.run(t, tk).ExitCode)
	must.Eq(t, "stdin read=0\n", tk.waitLog(t, "stdout", "\n"))
}

func TestMountsLocalAllocSecrets(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"write", "/alloc/data/out.txt", "shared"}})
	must.Zero(t, h.run(t, tk).ExitCode)
	b, err := os.ReadFile(filepath.Join(tk.cfg.TaskDir().SharedAllocDir, "data", "out.txt"))
	must.NoError(t, err)
	must.Eq(t, "shared", string(b))

	// local/ is writable and relative paths resolve from /.
	tk = h.newTask(t, "probe", 64, TaskConfig{Args: []string{"write", "local/note.txt", "mine"}})
	must.Zero(t, h.run(t, tk).ExitCode)
	b, err = os.ReadFile(filepath.Join(tk.cfg.TaskDir().LocalDir, "note.txt"))
	must.NoError(t, err)
	must.Eq(t, "mine", string(b))

	// secrets/ is readable, not writable.
	tk = h.newTask(t, "probe", 64, TaskConfig{Args: []string{"cat", "/secrets/token"}})
	must.NoError(t, os.WriteFile(filepath.Join(tk.cfg.TaskDir().SecretsDir, "token"), []byte("s3cr3t"), 0o644)) // Nomad writes secrets readable by the task's user
	must.Zero(t, h.run(t, tk).ExitCode)
	must.Eq(t, "s3cr3t", tk.waitLog(t, "stdout", "s3cr3t"))
}

func TestConfinement(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"escape"}})
	local := tk.cfg.TaskDir().LocalDir
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.txt")
	must.NoError(t, os.WriteFile(secret, []byte("host secret"), 0o644))
	must.NoError(t, os.Symlink(secret, filepath.Join(local, "abs-link")))
	rel, err := filepath.Rel(local, secret)
	must.NoError(t, err)
	must.NoError(t, os.Symlink(rel, filepath.Join(local, "rel-link")))
	must.NoError(t, os.Symlink(outside, filepath.Join(local, "dir-link")))
	must.NoError(t, os.WriteFile(filepath.Join(local, "inside.txt"), []byte("inside"), 0o644))
	must.NoError(t, os.Symlink("inside.txt", filepath.Join(local, "inner-link")))

	must.Zero(t, h.run(t, tk).ExitCode)
	out := tk.waitLog(t, "stdout", "secrets-readonly:")
	for _, route := range []string{
		"dotdot", "relative-dotdot", "host-absolute",
		"found-absolute-symlink", "found-relative-symlink", "found-dir-symlink",
		"made-absolute-symlink", "made-relative-symlink",
		"create-through-symlink-dir", "create-dotdot", "secrets-readonly",
	} {
		must.StrContains(t, out, route+": denied", must.Sprintf("route %s escaped:\n%s", route, out))
	}
	must.StrContains(t, out, "rename-out: denied")
	// A symlink that stays inside its mount still works.
	must.StrContains(t, out, "inner-symlink: OPENED")
	// Nothing was planted outside.
	entries, err := os.ReadDir(outside)
	must.NoError(t, err)
	must.Len(t, 1, entries)
	_, err = os.Stat(filepath.Join(tk.cfg.TaskDir().Dir, "planted.txt"))
	must.True(t, os.IsNotExist(err))
}

func TestLogsStreamWhileRunning(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"ticker"}})
	h.start(t, tk)
	tk.waitLog(t, "stdout", "tick 3\n")
	status, err := h.InspectTask(tk.cfg.ID)
	must.NoError(t, err)
	must.Eq(t, drivers.TaskStateRunning, status.State)
}

func TestStopTightLoop(t *testing.T) {
	t.Parallel()
	stopSpinningGuest(t, newHarness(t, ""))
}

// stopSpinningGuest starts a guest spinning in a tight loop, stops it with
// SIGINT and checks that it stopped at its next loop iteration, without its
// executor being killed.
func stopSpinningGuest(t *testing.T, h *harness) {
	t.Helper()
	tk, _ := h.startProbe(t, "spinning", "spin")
	must.NoError(t, h.StopTask(tk.cfg.ID, 10*time.Second, "SIGINT"))
	res := h.wait(t, tk.cfg.ID)
	must.Eq(t, 2, res.Signal)
	must.Eq(t, 130, res.ExitCode)
	must.NoError(t, res.Err)
}

func TestStopCutsSleepShort(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"sleep", "3600"}})
	h.start(t, tk)
	tk.waitLog(t, "stdout", "sleeping")
	must.NoError(t, h.StopTask(tk.cfg.ID, 10*time.Second, "SIGTERM"))
	res := h.wait(t, tk.cfg.ID)
	must.Eq(t, 15, res.Signal)
	must.Eq(t, 143, res.ExitCode)
}

// TestStopKillsAGuestThatCannotStop: a guest blocked inside a host call
// (opening a FIFO that no one ever writes to, which waits in the kernel)
// cannot see the stop request, so after the timeout its executor is killed
// and the task ends as SIGKILLed.
func TestStopKillsAGuestThatCannotStop(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"cat", "/local/fifo"}})
	// Open to the task's user (nobody) as well.
	must.NoError(t, syscall.Mkfifo(filepath.Join(tk.cfg.TaskDir().LocalDir, "fifo"), 0o600))
	must.NoError(t, os.Chmod(filepath.Join(tk.cfg.TaskDir().LocalDir, "fifo"), 0o666))
	h.start(t, tk)
	status, err := h.InspectTask(tk.cfg.ID)
	must.NoError(t, err)
	pid := status.DriverAttributes["executor_pid"]

	// The kernel shows a thread blocked in a FIFO open as waiting in
	// wait_for_partner.
	deadline := time.Now().Add(20 * time.Second)
	for !threadWaitsIn(pid, "wait_for_partner") {
		if time.Now().After(deadline) {
			t.Fatalf("the guest never blocked opening the FIFO (executor pid %s)", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}

	must.NoError(t, h.StopTask(tk.cfg.ID, 300*time.Millisecond, "SIGTERM"))
	res := h.wait(t, tk.cfg.ID)
	must.Eq(t, 137, res.ExitCode)
	must.Eq(t, 9, res.Signal)
	must.ErrorContains(t, res.Err, "did not stop within the kill timeout")
	status, err = h.InspectTask(tk.cfg.ID)
	must.NoError(t, err)
	must.Eq(t, drivers.TaskStateExited, status.State)
}

// threadWaitsIn reports whether a thread of process pid is blocked in the
// kernel function wchan.
func threadWaitsIn(pid, wchan string) bool {
	tasks, _ := filepath.Glob(filepath.Join("/proc", pid, "task", "*", "wchan"))
	for _, f := range tasks {
		if b, err := os.ReadFile(f); err == nil && string(b) == wchan {
			return true
		}
	}
	return false
}

func TestSignalTask(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"ticker"}})
	h.start(t, tk)
	tk.waitLog(t, "stdout", "tick 1\n")
	err := h.SignalTask(tk.cfg.ID, "SIGHUP")
	must.ErrorContains(t, err, `signal "SIGHUP" cannot be delivered to a wasm task`)
	must.ErrorContains(t, err, "SIGINT and SIGTERM stop it gracefully")
	must.ErrorContains(t, h.SignalTask(tk.cfg.ID, "SIGUSR1"), "WASI preview 1 has no signals")
	must.NoError(t, h.SignalTask(tk.cfg.ID, "SIGTERM"))
	res := h.wait(t, tk.cfg.ID)
	must.Eq(t, 15, res.Signal)
}

// TestSignalTaskExecutorGone: a signal whose executor goes away before it
// answers (a stopped guest's executor exits as soon as its status is
// collected, which can come before the answer) is not an error: the
// task's wait reports how it ended, here the executor's loss. The
// executor is held stopped until the signal's request is waiting in its
// socket (ss shows it queued), then killed.
func TestSignalTaskExecutorGone(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("ss"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ss (iproute2) is needed")
		}
		t.Skip("ss (iproute2) is needed")
	}
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"ticker"}})
	h.start(t, tk)
	tk.waitLog(t, "stdout", "tick 1\n")
	status, err := h.InspectTask(tk.cfg.ID)
	must.NoError(t, err)
	pid, err := strconv.Atoi(status.DriverAttributes["executor_pid"])
	must.NoError(t, err)
	must.NoError(t, syscall.Kill(pid, syscall.SIGSTOP))
	signalled := make(chan error, 1)
	go func() { signalled <- h.SignalTask(tk.cfg.ID, "SIGTERM") }()
	// Generous: on a loaded machine each ss over every socket is slow.
	deadline := time.Now().Add(30 * time.Second)
	for !requestQueued(t, pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the signal's request never reached executor %d's socket", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	must.NoError(t, syscall.Kill(pid, syscall.SIGKILL))
	must.NoError(t, <-signalled)
	res := h.wait(t, tk.cfg.ID)
	must.ErrorContains(t, res.Err, "executor")
}

// requestQueued says whether a Unix socket of process pid has bytes
// waiting to be read (ss's Recv-Q).
func requestQueued(t *testing.T, pid int) bool {
	out, err := exec.Command("ss", "-xpnH").Output()
	must.NoError(t, err)
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && strings.Contains(line, fmt.Sprintf("pid=%d,", pid)) && f[2] != "0" {
			return true
		}
	}
	return false
}

func TestWaitTaskChannels(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"sleep", "3600"}})
	h.start(t, tk)

	// A cancelled wait closes its channel without a result. (Called on the
	// driver itself: Nomad's gRPC client turns a cancelled wait into a
	// result carrying the context's error.)
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := h.driver.WaitTask(ctx, tk.cfg.ID)
	must.NoError(t, err)
	cancel()
	select {
	case res, ok := <-ch:
		must.False(t, ok, must.Sprintf("got %+v", res))
	case <-time.After(10 * time.Second):
		t.Fatal("cancelled WaitTask channel was not closed")
	}

	// Every call gets its own channel, each sent one result then closed.
	ch1, err := h.driver.WaitTask(context.Background(), tk.cfg.ID)
	must.NoError(t, err)
	ch2, err := h.driver.WaitTask(context.Background(), tk.cfg.ID)
	must.NoError(t, err)
	must.NoError(t, h.StopTask(tk.cfg.ID, 10*time.Second, "SIGINT"))
	for _, ch := range []<-chan *drivers.ExitResult{ch1, ch2} {
		res := <-ch
		must.NotNil(t, res)
		must.Eq(t, 2, res.Signal)
		_, ok := <-ch
		must.False(t, ok)
	}
	_, err = h.driver.WaitTask(context.Background(), "no-such-task")
	must.ErrorIs(t, err, drivers.ErrTaskNotFound)
}

func TestDestroyTask(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"ticker"}})
	h.start(t, tk)
	tk.waitLog(t, "stdout", "tick 0")
	err := h.DestroyTask(tk.cfg.ID, false)
	must.ErrorContains(t, err, "cannot destroy running task")
	must.NoError(t, h.DestroyTask(tk.cfg.ID, true))
	must.NoError(t, h.DestroyTask(tk.cfg.ID, true))
	must.NoError(t, h.DestroyTask(tk.cfg.ID, false))
	_, err = h.driver.InspectTask(tk.cfg.ID)
	must.ErrorIs(t, err, drivers.ErrTaskNotFound)
}

func TestEntrypointOfReactor(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk := h.newTask(t, "reactor", 64, TaskConfig{Entrypoint: "run"})
	must.Zero(t, h.run(t, tk).ExitCode)
	tk.waitLog(t, "stdout", "reactor run called\n")
}

func TestGoModule(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk := h.newTask(t, "hello-go", goModuleMemoryMB, TaskConfig{})
	must.Zero(t, h.run(t, tk).ExitCode)
	tk.waitLog(t, "stdout", "hello from go wasm\n")
}

func TestMemoryGrowthStopsAtTheCap(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 32, TaskConfig{Args: []string{"grow"}})
	must.Zero(t, h.run(t, tk).ExitCode)
	out := tk.waitLog(t, "stdout", "before malloc failed")
	var mb int
	_, err := fmt.Sscanf(out, "allocated %d MiB", &mb)
	must.NoError(t, err)
	must.Between(t, 20, mb, 31)
}

func TestMemoryMaxRaisesTheCap(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 16, TaskConfig{Args: []string{"grow"}})
	tk.cfg.Resources.NomadResources.Memory.MemoryMaxMB = 48
	must.Zero(t, h.run(t, tk).ExitCode)
	out := tk.waitLog(t, "stdout", "before malloc failed")
	var mb int
	_, err := fmt.Sscanf(out, "allocated %d MiB", &mb)
	must.NoError(t, err)
	must.Between(t, 36, mb, 47)
}

func TestStats(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk, _ := h.startProbe(t, "spinning", "spin")
	// Called on the driver itself: Nomad's gRPC client closes the stream on
	// a cancelled context by itself, which would hide a driver that does not.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := h.driver.TaskStats(ctx, tk.cfg.ID, 100*time.Millisecond)
	must.NoError(t, err)
	var got int
	for s := range ch {
		must.Positive(t, s.ResourceUsage.MemoryStats.RSS)
		cpu := s.ResourceUsage.CpuStats
		must.Positive(t, cpu.Percent)
		must.Positive(t, cpu.UserMode+cpu.SystemMode)
		must.Positive(t, cpu.TotalTicks)
		lin := s.Pids["wasm-linear-memory"].MemoryStats.Usage
		must.Positive(t, lin)
		must.LessEq(t, uint64(64<<20), lin)
		if got++; got == 3 {
			cancel()
			break
		}
	}
	// The stream ends once its context does.
	deadline := time.After(10 * time.Second)
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		case <-deadline:
			t.Fatal("TaskStats channel not closed after its context ended")
		}
	}
}

func TestCompileOncePerNode(t *testing.T) {
	t.Parallel()
	cache := t.TempDir()
	const n = 4
	h := newHarness(t, cache)
	events := h.events(t)
	tasks := make([]*task, n)
	for i := range tasks {
		tasks[i] = h.newTask(t, "hello-go", goModuleMemoryMB, TaskConfig{})
	}
	// Started concurrently; failures are reported from the test's own
	// goroutine, where FailNow is allowed.
	errs := make([]error, len(tasks))
	var wg sync.WaitGroup
	for i, tk := range tasks {
		wg.Go(func() { errs[i] = h.startErr(t, tk) })
	}
	wg.Wait()
	for _, err := range errs {
		must.NoError(t, err)
	}
	compiled := 0
	for _, tk := range tasks {
		ev := waitEvent(t, events, tk.cfg.ID, "Module ")
		if ev.Annotations["cache_hit"] == "false" {
			compiled++
		}
	}
	must.Eq(t, 1, compiled)

	// The cache outlives the driver: a new driver on the node hits it.
	h2 := newHarness(t, cache)
	events2 := h2.events(t)
	tk := h2.newTask(t, "hello-go", goModuleMemoryMB, TaskConfig{})
	h2.start(t, tk)
	ev := waitEvent(t, events2, tk.cfg.ID, "loaded from the compiled-module cache")
	must.Eq(t, "true", ev.Annotations["cache_hit"])
}

// TestInterpreterEngine runs tasks with engine = "interpreter": no compile
// step and no cache, the same guest semantics, and a tight loop still stops.
func TestInterpreterEngine(t *testing.T) {
	t.Parallel()
	h := newHarnessConfig(t, Config{Engine: EngineInterpreter})
	events := h.events(t)

	tk := h.newTask(t, "probe", 64, TaskConfig{})
	must.Zero(t, h.run(t, tk).ExitCode)
	tk.waitLog(t, "stdout", "hello from wasm\n")
	ev := waitEvent(t, events, tk.cfg.ID, "prepared for the interpreter")
	must.Eq(t, EngineInterpreter, ev.Annotations["engine"])
	must.Eq(t, "false", ev.Annotations["cache_hit"])
	must.SliceEmpty(t, cacheEntries(t, h.cacheDir), must.Sprint("the interpreter compiles nothing into the cache"))

	stopSpinningGuest(t, h)
}

// TestExecutorSocketRemoved: once a task's executor is gone, so is the
// socket it served its protocol on, which an executor that became its
// task's user could not remove itself (root's, in the sticky temporary
// directory): one would be left behind per task.
func TestExecutorSocketRemoved(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"sleep", "3600"}})
	h.start(t, tk)
	th, ok := h.driver.tasks.Get(tk.cfg.ID)
	must.True(t, ok)
	rc := th.exec.Client().ReattachConfig()
	must.NotNil(t, rc)
	must.Eq(t, "unix", rc.Addr.Network())
	socket := rc.Addr.String()
	_, err := os.Lstat(socket)
	must.NoError(t, err)
	must.NoError(t, h.StopTask(tk.cfg.ID, 10*time.Second, "SIGTERM"))
	h.wait(t, tk.cfg.ID)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Lstat(socket); errors.Is(err, os.ErrNotExist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the executor's socket %s is still there after the task ended", socket)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
