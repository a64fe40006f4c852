// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver/cgroups"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// taskHandle is one task's live state in the driver.
type taskHandle struct {
	logger     hclog.Logger
	exec       *executor.Task // nil when the executor was already gone at recovery
	taskConfig *drivers.TaskConfig
	state      TaskState
	// emit reports a task event.
	emit func(msg string, annotations map[string]string)
	// execFailures holds the messages of failed execs already reported
	// (see execFailed).
	execFailures sync.Map
	// compileMu orders the compiles of exec'd modules of a task in the
	// shared executor, and compiled holds, by module path, the size and
	// modification time of the file last compiled (see compileForExec).
	compileMu sync.Mutex
	compiled  sync.Map
	// started is how long the task's start took, step by step (empty for
	// a recovered task).
	started startTrace

	mu          sync.RWMutex
	procState   drivers.TaskState
	completedAt time.Time
	exitResult  *drivers.ExitResult
	// killed is set when the driver ended the task itself (killed its
	// executor, or released it from the shared executor), so that its end
	// is not reported as a crash.
	killed bool

	doneCh chan struct{}
}

// run waits for the guest to exit and records how it ended.
func (h *taskHandle) run() {
	status, err := h.exec.Wait(context.Background())
	if err != nil {
		// The executor went away before answering: it exited after its
		// guest (and wrote the status down), or it was killed.
		status, err = executor.ReadExitStatus(h.taskConfig.TaskDir().Dir, h.state.ExecutorPid)
	}
	h.finish(status, err)
	// The status is collected: the executor has nothing left to do for
	// the task.
	h.exec.End()
	cgroups.Remove(h.state.Cgroups)
}

// relayNotices reports what the executor asks to be reported (an outbound
// connection refused, say) as the task's events, until the task ends.
// Independent of stats, which Nomad collects only when its telemetry
// publishes allocation metrics.
func (h *taskHandle) relayNotices() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		<-h.doneCh
		cancel()
	}()
	notices, err := h.exec.Notices(ctx)
	if err != nil {
		h.logger.Debug("the executor sends no notices", "error", err)
		return
	}
	for n := range notices {
		h.emit(n.Message, n.Annotations)
	}
}

// finish records the exit. status is nil when err says why it is unknown.
func (h *taskHandle) finish(status *proto.ExitStatus, err error) {
	h.mu.Lock()
	result := &drivers.ExitResult{}
	switch {
	case status != nil:
		result.ExitCode = int(status.ExitCode)
		result.Signal = int(status.Signal)
		if status.Error != "" {
			result.Err = errors.New(status.Error)
		}
	case h.killed:
		result.ExitCode = 128 + 9
		result.Signal = 9
		result.Err = errors.New("the guest did not stop within the kill timeout, so its executor was killed")
	case cgroups.OOMKills(h.state.memoryCgroup()) > h.state.OOMKillsBefore:
		result.ExitCode = 128 + 9
		result.Signal = 9
		result.OOMKilled = true
		result.Err = fmt.Errorf("the kernel killed the task's executor (pid %d) for exceeding its memory cgroup's limit: the task's memory plus %d MiB for the executor; a guest's linear memory cannot grow past its cap, so the executor itself grew (a guest recursing without end makes wazero grow its stack up to 400 MB, for one)", h.state.ExecutorPid, executorOverhead>>20)
	case h.state.SharedExecutor:
		result.ExitCode = -1
		result.Err = fmt.Errorf("the node's shared executor (pid %d), which ran this task beside others, exited without recording the guest's exit status: it was killed or crashed (%w); its log is %s in the plugin's cache_dir, the task's part of it wasm-executor.log in the task directory", h.state.ExecutorPid, err, filepath.Join("shared", sharedLogFile))
	default:
		result.ExitCode = -1
		result.Err = fmt.Errorf("the task's executor (pid %d) exited without recording the guest's exit status: it was killed or crashed (%w); its log is wasm-executor.log in the task directory", h.state.ExecutorPid, err)
	}
	killed := h.killed
	h.exitResult = result
	h.procState = drivers.TaskStateExited
	h.completedAt = time.Now()
	h.mu.Unlock()

	if status != nil && status.Error != "" {
		h.emit("Guest trapped: "+firstLine(status.Error), map[string]string{"exit_code": strconv.Itoa(result.ExitCode)})
	} else if status == nil && !killed && result.OOMKilled {
		// The task's memory (its resources) was too small for it: the
		// job's to fix.
		h.emit("OOM killed: "+result.Err.Error(), map[string]string{"error_class": executor.ClassJob.String()})
	} else if status == nil && !killed {
		h.emit("Executor lost: "+result.Err.Error(), map[string]string{"error_class": executor.ClassNode.String()})
	}
	close(h.doneCh)
}

func firstLine(s string) string {
	for i, c := range s {
		if c == '\n' {
			return s[:i]
		}
	}
	return s
}

func (h *taskHandle) IsRunning() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.procState == drivers.TaskStateRunning
}

func (h *taskHandle) result() *drivers.ExitResult {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.exitResult.Copy()
}

func (h *taskHandle) markKilled() {
	h.mu.Lock()
	h.killed = true
	h.mu.Unlock()
}

func (h *taskHandle) TaskStatus() *drivers.TaskStatus {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return &drivers.TaskStatus{
		ID:          h.taskConfig.ID,
		Name:        h.taskConfig.Name,
		State:       h.procState,
		StartedAt:   h.state.StartedAt,
		CompletedAt: h.completedAt,
		ExitResult:  h.exitResult.Copy(),
		DriverAttributes: map[string]string{
			"executor_pid":    strconv.Itoa(h.state.ExecutorPid),
			"shared_executor": strconv.FormatBool(h.state.SharedExecutor),
			"module":          h.state.DriverConfig.Module,
			"module_sha256":   h.state.ModuleSha256,
			"module_manifest": h.state.ModuleManifest,
		},
	}
}
