// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

type closingBuffer struct{ bytes.Buffer }

func (*closingBuffer) Close() error { return nil }

func TestExecRunsAModuleInTheTaskSandbox(t *testing.T) {
	t.Parallel()
	t.Run("executor of its own", func(t *testing.T) {
		t.Parallel()
		execInTheTaskSandbox(t, newHarness(t, ""))
	})
	// The shared executor, as nobody, compiles nothing: the driver has the
	// exec's module (another than the task's) compiled first.
	t.Run("shared executor", func(t *testing.T) {
		t.Parallel()
		execInTheTaskSandbox(t, newSharedHarness(t, ""))
	})
}

func execInTheTaskSandbox(t *testing.T, h *harness) {
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"ticker"}})
	tk.cfg.Env["JOB_ENV_VAR"] = "task env"
	testmodule.Install(t, "probe", tk.cfg.TaskDir().LocalDir, "tool.wasm")
	// Another module than the task's: the probe with a custom section.
	tool := filepath.Join(tk.cfg.TaskDir().LocalDir, "tool.wasm")
	b, err := os.ReadFile(tool)
	must.NoError(t, err)
	must.NoError(t, os.WriteFile(tool, append(b, 0, 3, 1, 'x', 1), 0o644))
	h.start(t, tk)
	tk.waitLog(t, "stdout", "tick 0")

	run := func(cmd []string, stdin string) (*drivers.ExitResult, string, string) {
		var stdout, stderr closingBuffer
		opts := &drivers.ExecOptions{Command: cmd, Stdout: &stdout, Stderr: &stderr}
		if stdin != "" {
			opts.Stdin = io.NopCloser(strings.NewReader(stdin))
		}
		res, err := h.driver.ExecTaskStreaming(context.Background(), tk.cfg.ID, opts)
		must.NoError(t, err)
		return res, stdout.String(), stderr.String()
	}

	// Same environment and mounts as the task.
	res, out, _ := run([]string{"/local/tool.wasm", "env"}, "")
	must.Zero(t, res.ExitCode)
	must.StrContains(t, out, "JOB_ENV_VAR=task env\n")
	must.StrNotContains(t, out, hostSecret)
	res, out, _ = run([]string{"local/tool.wasm", "escape"}, "")
	must.Zero(t, res.ExitCode)
	must.StrContains(t, out, "made-relative-symlink: denied")
	must.StrContains(t, out, "secrets-readonly: denied")

	// stdout, stderr, stdin and the exit code come back.
	res, out, errOut := run([]string{"/local/tool.wasm", "hello"}, "")
	must.Zero(t, res.ExitCode)
	must.Eq(t, "hello from wasm\n", out)
	must.Eq(t, "a line on stderr\n", errOut)
	res, out, _ = run([]string{"/local/tool.wasm", "stdin"}, "twelve bytes")
	must.Zero(t, res.ExitCode)
	must.Eq(t, "stdin read=12\n", out)
	res, _, _ = run([]string{"/local/tool.wasm", "exit", "9"}, "")
	must.Eq(t, 9, res.ExitCode)

	// Terminal resizes are consumed: Nomad's stream sends them on the same
	// path as stdin, so a driver that left them unread would stall stdin.
	resize := make(chan drivers.TerminalSize)
	stdinR, stdinW := io.Pipe()
	go func() {
		for i := range 5 {
			resize <- drivers.TerminalSize{Height: 24 + i, Width: 80}
		}
		_, _ = stdinW.Write([]byte("twelve bytes"))
		_ = stdinW.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var stdout, stderr closingBuffer
	res, err = h.driver.ExecTaskStreaming(ctx, tk.cfg.ID, &drivers.ExecOptions{
		Command: []string{"/local/tool.wasm", "stdin"}, Tty: true, ResizeCh: resize,
		Stdin: stdinR, Stdout: &stdout, Stderr: &stderr,
	})
	must.NoError(t, err)
	must.Zero(t, res.ExitCode)
	must.Eq(t, "stdin read=12\n", stdout.String())

	// Same memory cap as the task (64 MiB).
	_, out, _ = run([]string{"/local/tool.wasm", "grow"}, "")
	must.StrContains(t, out, "before malloc failed")

	// The task itself was not disturbed.
	status, err := h.InspectTask(tk.cfg.ID)
	must.NoError(t, err)
	must.Eq(t, drivers.TaskStateRunning, status.State)

	// ExecTask, as script checks use it.
	er, err := h.driver.ExecTask(tk.cfg.ID, []string{"/local/tool.wasm", "exit", "2"}, 10*time.Second)
	must.NoError(t, err)
	must.Eq(t, 2, er.ExitResult.ExitCode)
}

func TestExecRejectsWhatIsNotAModule(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"ticker"}})
	local := tk.cfg.TaskDir().LocalDir
	must.NoError(t, os.WriteFile(filepath.Join(local, "script.sh"), []byte("#!/bin/sh\necho hi\n"), 0o755))
	must.NoError(t, os.Symlink("/etc/hostname", filepath.Join(local, "out.wasm")))
	must.NoError(t, os.Mkdir(filepath.Join(local, "dir.wasm"), 0o755))
	h.start(t, tk)
	tk.waitLog(t, "stdout", "tick 0")
	cases := []struct {
		cmd  string
		code int
		want string
	}{
		{"/bin/sh", 127, `path "/bin/sh" is outside the task's view`},
		{"/local/nope", 127, "module /local/nope does not exist in the task's view"},
		{"/local/../etc/passwd", 127, `must not contain ".."`},
		{"/local/out.wasm", 127, "module /local/out.wasm resolves outside the task's view through a symlink"},
		{"/local/script.sh", 126, `it is a script (starts with "#!/bin/sh")`},
		{"/local/dir.wasm", 126, "module /local/dir.wasm is a directory, not a .wasm file"},
	}
	for _, c := range cases {
		var stdout, stderr closingBuffer
		res, err := h.driver.ExecTaskStreaming(context.Background(), tk.cfg.ID, &drivers.ExecOptions{Command: []string{c.cmd}, Stdout: &stdout, Stderr: &stderr})
		must.NoError(t, err)
		must.Eq(t, c.code, res.ExitCode)
		must.StrContains(t, stderr.String(), c.want)
		must.StrContains(t, stderr.String(), "nomad alloc exec runs a WebAssembly command module")
	}
	_, err := h.driver.ExecTaskStreaming(context.Background(), tk.cfg.ID, &drivers.ExecOptions{Stdout: &closingBuffer{}, Stderr: &closingBuffer{}})
	must.ErrorContains(t, err, "no command given")
}

// TestExecFailedReportsOnce: an exec that fails for a reason of the node
// or its operator is a task event once per distinct message, which says
// who must act.
func TestExecFailedReportsOnce(t *testing.T) {
	t.Parallel()
	var events []string
	h := &taskHandle{emit: func(msg string, _ map[string]string) { events = append(events, msg) }}
	h.execFailed(executor.OperatorErrorf("cannot open /data/alloc/x/local: permission denied"))
	h.execFailed(executor.OperatorErrorf("cannot open /data/alloc/x/local: permission denied"))
	h.execFailed(executor.NodeErrorf("too many open files"))
	must.Eq(t, []string{
		"nomad alloc exec failed: the node's wasm driver is misconfigured (its operator must fix it): cannot open /data/alloc/x/local: permission denied",
		"nomad alloc exec failed on the node (the restart policy does not apply): too many open files",
	}, events)
}

// TestHandOverErrorClasses: a task's path the driver is refused when it
// hands it to the shared executor is the operator's, naming the path; any
// other failure the node's.
func TestHandOverErrorClasses(t *testing.T) {
	t.Parallel()
	err := handOverError("/data/alloc/a/t/local", &os.PathError{Op: "open", Path: "/data/alloc/a/t/local", Err: syscall.EACCES})
	must.Eq(t, executor.ClassOperator, executor.ClassOf(err))
	must.StrContains(t, err.Error(), "the wasm driver cannot open /data/alloc/a/t/local to hand it to the node's shared executor")
	err = handOverError("/data/alloc/a/t/local", &os.PathError{Op: "open", Path: "/data/alloc/a/t/local", Err: syscall.ENOENT})
	must.Eq(t, executor.ClassNode, executor.ClassOf(err))
}
