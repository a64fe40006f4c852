// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// execHelp says what nomad alloc exec can run in a wasm task.
const execHelp = "nomad alloc exec runs a WebAssembly command module from the task's view in the task's sandbox, e.g. nomad alloc exec -task NAME ALLOC /local/tool.wasm ARGS..."

// Exit codes of a command that cannot run, as shells use them.
const (
	execNotExecutable = 126
	execNotFound      = 127
)

// ExecTaskStreaming runs a command module from the task's view (the first
// element of the command, e.g. /local/tool.wasm) in the task's sandbox:
// the task's mounts, environment and memory cap. WASI has no terminals, so
// a TTY request runs the module without one.
//
// A command that is not a module in the task's view fails as it would in a
// shell: the reason on stderr and exit code 127 (not found) or 126 (not
// runnable). Nomad does not pass a driver's error text on to the user of
// nomad alloc exec; stderr reaches them.
func (d *Driver) ExecTaskStreaming(ctx context.Context, taskID string, opts *drivers.ExecOptions) (*drivers.ExitResult, error) {
	h, ok := d.tasks.Get(taskID)
	if !ok {
		return nil, drivers.ErrTaskNotFound
	}
	if !h.IsRunning() || h.exec == nil {
		return nil, fmt.Errorf("task %s is not running", taskID)
	}
	if len(opts.Command) == 0 {
		return nil, fmt.Errorf("no command given: %s", execHelp)
	}
	defer func() {
		_ = opts.Stdout.Close()
		_ = opts.Stderr.Close()
	}()
	// WASI has no terminal to resize; the sizes are read and dropped, because
	// Nomad's stream buffers only two and then stops reading stdin.
	if opts.ResizeCh != nil {
		done := make(chan struct{})
		defer close(done)
		go func() {
			for {
				select {
				case <-done:
					return
				case _, ok := <-opts.ResizeCh:
					if !ok {
						return
					}
				}
			}
		}()
	}
	var stdin io.ReadCloser
	if opts.Stdin != nil {
		stdin = opts.Stdin
	}
	err := d.compileForExec(ctx, h, opts.Command[0])
	var status *proto.ExitStatus
	if err == nil {
		status, err = h.exec.Exec(ctx, opts.Command[0], opts.Command[1:], stdin, opts.Stdout, opts.Stderr)
	}
	var failed *executor.Error
	if errors.As(err, &failed) {
		code := execNotExecutable
		switch failed.Class {
		case executor.ClassJob:
			fmt.Fprintf(opts.Stderr, "%s\n%s\n", failed.Msg, execHelp)
			if failed.NotFound {
				code = execNotFound
			}
		default:
			// Not the user's to fix: they see why, and the task's events
			// say it once for whoever must fix it.
			fmt.Fprintf(opts.Stderr, "the wasm driver could not run %s (a problem of the node, not of the command): %s\n", opts.Command[0], failed.Msg)
			h.execFailed(failed)
		}
		return &drivers.ExitResult{ExitCode: code}, nil
	}
	if err != nil {
		return nil, err
	}
	result := &drivers.ExitResult{ExitCode: int(status.ExitCode), Signal: int(status.Signal)}
	if status.Error != "" {
		result.Err = fmt.Errorf("%s", status.Error)
	}
	return result, nil
}

// ExecTask runs a command module as ExecTaskStreaming does and returns its
// output; Nomad uses it for script checks.
func (d *Driver) ExecTask(taskID string, cmd []string, timeout time.Duration) (*drivers.ExecTaskResult, error) {
	ctx, cancel := context.WithTimeout(d.ctx, timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	result, err := d.ExecTaskStreaming(ctx, taskID, &drivers.ExecOptions{
		Command: cmd,
		Stdout:  nopWriteCloser{&stdout},
		Stderr:  nopWriteCloser{&stderr},
	})
	if err != nil {
		return nil, err
	}
	return &drivers.ExecTaskResult{Stdout: stdout.Bytes(), Stderr: stderr.Bytes(), ExitResult: result}, nil
}

// compileForExec has the module an exec runs compiled into the node's
// cache first, when the task runs in the shared executor: that executor
// compiles nothing (see compileInTask), and an exec's stdin streams from
// its start, so an exec cannot be sent again after a compile as a Start
// is. The task's own module is compiled already (its program runs it), and
// a module compiled for an earlier exec of the task is not compiled again
// while its file is unchanged. What cannot be opened, is not a file or is
// larger than max_module_bytes is left for the exec to report as it does.
// The task's compiles run one at a time: each makes and removes cgroups
// of the task.
func (d *Driver) compileForExec(ctx context.Context, h *taskHandle, module string) error {
	if !h.state.SharedExecutor {
		return nil
	}
	cfg, tc := h.taskConfig, h.state.DriverConfig
	mounts, err := d.taskMounts(cfg, &tc)
	if err != nil {
		return nil //nolint:nilerr // the exec reports what is wrong with the task's view
	}
	if m, rel, err := executor.ResolveGuestPath(mounts, module); err != nil || (tc.Module != "" && rel != "" && path.Join(m.GuestPath, rel) == path.Clean("/"+tc.Module)) {
		return nil //nolint:nilerr // not in the view (the exec says so), or the task's own module
	}
	f, err := openModule(mounts, module, "")
	if err != nil {
		return nil //nolint:nilerr // the exec reports it
	}
	st, err := f.Stat()
	_ = f.Close()
	if err != nil || !st.Mode().IsRegular() || (d.config.MaxModuleBytes > 0 && st.Size() > d.config.MaxModuleBytes) {
		return nil //nolint:nilerr // the exec reports it
	}
	h.compileMu.Lock()
	defer h.compileMu.Unlock()
	seen := fmt.Sprintf("%d-%d", st.Size(), st.ModTime().UnixNano())
	if prev, ok := h.compiled.Load(module); ok && prev == seen {
		return nil
	}
	_, limitSource := memoryLimit(cfg)
	if err := d.compileInTask(ctx, cfg, mounts, module, "", limitSource, false); err != nil {
		return err
	}
	h.compiled.Store(module, seen)
	return nil
}

// execFailed reports, once per distinct message, an exec that failed for
// a reason of the node or its operator: a task event, so that whoever must
// fix it sees it beside the task.
func (h *taskHandle) execFailed(err *executor.Error) {
	if _, seen := h.execFailures.LoadOrStore(err.Msg, true); seen {
		return
	}
	what := "nomad alloc exec failed on the node (the restart policy does not apply)"
	if err.Class == executor.ClassOperator {
		what = "nomad alloc exec failed: the node's wasm driver is misconfigured (its operator must fix it)"
	}
	h.emit(what+": "+err.Msg, map[string]string{"error_class": err.Class.String()})
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }
