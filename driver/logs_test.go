// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoenig/test/must"
)

// TestExecutorWritesLogs: by default the driver declares
// DisableLogCollection and the executor writes the task's logs itself, in
// Nomad's naming, rotated as the task's logs block says. A guest printing
// as fast as it can keeps the log directory within max_files ×
// max_file_size and the executor's memory flat; in the shared executor
// too.
func TestExecutorWritesLogs(t *testing.T) {
	t.Parallel()
	for _, shared := range []bool{false, true} {
		t.Run(map[bool]string{false: "own", true: "shared"}[shared], func(t *testing.T) {
			t.Parallel()
			testExecutorWritesLogs(t, newHarnessConfig(t, Config{Engine: EngineAuto, SharedExecutor: shared}))
		})
	}
}

func testExecutorWritesLogs(t *testing.T, h *harness) {
	caps, err := h.driver.Capabilities()
	must.NoError(t, err)
	must.True(t, caps.DisableLogCollection)

	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"flood"}, Logs: LogsConfig{MaxFiles: 3, MaxFileSize: 1}})
	pid := executorPid(t, h.start(t, tk))
	logDir := tk.cfg.TaskDir().LogDir
	files := func() map[string]int64 {
		entries, err := os.ReadDir(logDir)
		must.NoError(t, err)
		out := map[string]int64{}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "test.stdout.") {
				info, err := e.Info()
				if err == nil {
					out[e.Name()] = info.Size()
				}
			}
		}
		return out
	}
	// Rotated several times over: files beyond the third exist.
	deadline := time.Now().Add(30 * time.Second)
	for !hasLogIndex(files(), 6) {
		must.True(t, time.Now().Before(deadline), must.Sprintf("the log never rotated past its sixth file: %v", files()))
		time.Sleep(20 * time.Millisecond)
	}
	early := memory(t, pid, "VmRSS:")
	for !hasLogIndex(files(), 30) {
		must.True(t, time.Now().Before(deadline), must.Sprintf("the log never rotated past its thirtieth file: %v", files()))
		must.LessEq(t, 3+1, len(files()), must.Sprint("more files than max_files (one more may exist while it is being rotated)"))
		time.Sleep(20 * time.Millisecond)
	}
	late := memory(t, pid, "VmRSS:")
	for name, size := range files() {
		must.LessEq(t, int64(1<<20), size, must.Sprintf("%s is larger than max_file_size", name))
	}
	must.Less(t, early+8<<20, late, must.Sprintf("the executor grew from %d to %d bytes while the guest printed", early, late))
	// Nomad's own logmon did not run: nothing wrote its FIFOs' files.
	must.FileNotExists(t, filepath.Join(logDir, ".test.stdout.fifo"))
}

// hasLogIndex says whether a file of index n or higher is among files.
func hasLogIndex(files map[string]int64, n int) bool {
	for name := range files {
		if i, err := strconv.Atoi(name[strings.LastIndexByte(name, '.')+1:]); err == nil && i >= n {
			return true
		}
	}
	return false
}

// TestLogmonCollector: logs.collector = "logmon" puts Nomad's logmon back:
// no DisableLogCollection, the guest's output goes to the FIFOs Nomad's
// logmon reads, and a task's own logs block is refused, since the job's
// logs block rotates logmon's files.
func TestLogmonCollector(t *testing.T) {
	t.Parallel()
	h := newHarnessConfig(t, Config{Engine: EngineAuto, Logs: LogsConfig{Collector: LogsByNomad}})
	caps, err := h.driver.Capabilities()
	must.NoError(t, err)
	must.False(t, caps.DisableLogCollection)

	tk := h.newTask(t, "probe", 64, TaskConfig{})
	must.StrHasSuffix(t, ".fifo", tk.cfg.StdoutPath)
	must.Zero(t, h.run(t, tk).ExitCode)
	tk.waitLog(t, "stdout", "hello from wasm\n")

	bad := h.newTask(t, "probe", 64, TaskConfig{Logs: LogsConfig{MaxFiles: 2}})
	must.ErrorContains(t, h.startErr(t, bad), `logs.collector = "logmon"`)
}

func TestLogsConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		logs LogsConfig
		err  string
	}{
		{LogsConfig{Collector: "journald"}, `logs.collector = "journald" is not one of "executor"`},
		{LogsConfig{Collector: LogsByNomad, MaxFiles: 3}, "conflict with collector"},
		{LogsConfig{MaxFiles: -1}, "logs.max_files = -1"},
		{LogsConfig{MaxFileSize: -5}, "logs.max_file_size = -5"},
	} {
		c := Config{Logs: tc.logs}
		must.ErrorContains(t, c.Validate(), tc.err)
	}
	c := Config{}
	must.NoError(t, c.Validate())
	must.Eq(t, LogsConfig{Collector: LogsByExecutor, MaxFiles: 10, MaxFileSize: 10}, c.Logs, must.Sprint("Nomad's defaults"))
	tc := TaskConfig{Module: "local/app.wasm", Logs: LogsConfig{MaxFiles: 5000}}
	must.ErrorContains(t, tc.Validate(), "logs.max_files = 5000")
}
