// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"
)

// abandonLog is what the executor logs when it ends a guest spinning in
// its own code by exiting.
const abandonLog = "the guest was stopped while it ran its own code"

// TestCommandTaskRunsWithoutTheCheck: a command task's module is compiled
// without wazero's per-loop check (its entry is the cache's uninterruptible
// code), so a guest spinning in its own code is out of reach of the stop's
// cancelled context. The stop still ends it as the check did, 128+signal
// and no kill, by recording the exit and ending the executor, which is
// then gone.
func TestCommandTaskRunsWithoutTheCheck(t *testing.T) {
	t.Parallel()
	h := newHarnessConfig(t, Config{Engine: EngineCompiler})
	tk, handle := h.startProbe(t, "spinning", "spin")
	pid := executorPid(t, handle)
	entries := cacheEntries(t, h.cacheDir)
	must.Len(t, 1, entries)
	must.StrContains(t, entries[0], string(filepath.Separator)+"uninterruptible"+string(filepath.Separator))

	must.NoError(t, h.StopTask(tk.cfg.ID, 10*time.Second, "SIGTERM"))
	res := h.wait(t, tk.cfg.ID)
	must.Eq(t, 143, res.ExitCode)
	must.Eq(t, 15, res.Signal)
	must.NoError(t, res.Err)
	must.StrContains(t, executorLog(t, tk), abandonLog)
	waitGone(t, pid)
}

// TestStopReachesAGuestAtItsHostCall: a guest without the per-loop check
// that keeps calling the host is ended at its next host call after the
// stop, not abandoned.
func TestStopReachesAGuestAtItsHostCall(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk, _ := h.startProbe(t, "looping", "hostloop")
	must.NoError(t, h.StopTask(tk.cfg.ID, 10*time.Second, "SIGTERM"))
	res := h.wait(t, tk.cfg.ID)
	must.Eq(t, 143, res.ExitCode)
	must.NoError(t, res.Err)
	must.StrNotContains(t, executorLog(t, tk), abandonLog)
}

// TestExecStopsAloneBesideASpinningTask: an exec instance shares its
// executor with the task's, so it runs code with the per-loop check and
// ends alone when its caller goes away, even spinning; the task runs on.
func TestExecStopsAloneBesideASpinningTask(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk, _ := h.startProbe(t, "spinning", "spin")

	ctx, cancel := context.WithCancel(context.Background())
	var stdout lockedBuffer
	done := make(chan error, 1)
	go func() {
		_, err := h.driver.ExecTaskStreaming(ctx, tk.cfg.ID, &drivers.ExecOptions{
			Command: []string{"/local/probe.wasm", "spin"}, Stdout: &stdout, Stderr: &closingBuffer{},
		})
		done <- err
	}()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stdout.String(), "spinning") {
		must.True(t, time.Now().Before(deadline), must.Sprint("the exec never ran"))
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("a cancelled exec of a spinning guest never ended")
	}
	status, err := h.InspectTask(tk.cfg.ID)
	must.NoError(t, err)
	must.Eq(t, drivers.TaskStateRunning, status.State)
}

// lockedBuffer is an exec's output, read while it is written.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (*lockedBuffer) Close() error { return nil }

func executorLog(t *testing.T, tk *task) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(tk.cfg.TaskDir().Dir, executorLogFile))
	must.NoError(t, err)
	return string(b)
}
