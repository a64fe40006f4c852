// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/nomad/client/lib/numalib"
	"github.com/hashicorp/nomad/helper/testlog"
	"github.com/hashicorp/nomad/helper/uuid"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/hashicorp/nomad/plugins/drivers/testutils"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

// harness is a driver served over go-plugin gRPC, as Nomad sees it.
type harness struct {
	*testutils.DriverHarness
	driver   *Driver
	cacheDir string
	// owner is the test that made the harness. The harness's alloc-dir
	// cleanup also closes its plugin client, so it runs when owner ends,
	// not when a subtest does, and after every task's cleanup (which stops
	// and destroys the task through that client): allocDirCleanups run
	// together, from a cleanup registered before any task's.
	owner           *testing.T
	mu              sync.Mutex
	allocDirCleanup []func()
}

// nodeTopology is the node's topology, as a Nomad client passes it to its
// drivers (TaskStats converts CPU use into MHz with it); scanned once.
var nodeTopology = sync.OnceValue(func() *numalib.Topology {
	return numalib.Scan(numalib.PlatformScanners(true))
})

func newHarness(t *testing.T, cacheDir string) *harness {
	t.Helper()
	return newHarnessConfig(t, Config{CacheDir: cacheDir, Engine: EngineAuto})
}

// newHarnessConfig is newHarness with a plugin config of the test's own
// (an empty cache_dir is a fresh temporary one).
func newHarnessConfig(t *testing.T, pc Config) *harness {
	t.Helper()
	return newHarnessWith(t, pc, nil)
}

// newHarnessWith is newHarnessConfig with a chance to change the driver
// before it is configured.
func newHarnessWith(t *testing.T, pc Config, prepare func(*Driver)) *harness {
	t.Helper()
	if pc.CacheDir == "" {
		pc.CacheDir = t.TempDir()
		// As an operator's cache_dir is (/var/cache/nomad-driver-wasm):
		// reachable by the tasks' users, who load its compiled entries.
		must.NoError(t, os.Chmod(filepath.Dir(pc.CacheDir), 0o711))
		must.NoError(t, os.Chmod(pc.CacheDir, 0o755))
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	d := New(ctx, testlog.HCLogger(t))
	if prepare != nil {
		prepare(d)
	}
	h := testutils.NewDriverHarness(t, d)
	var cfg []byte
	must.NoError(t, base.MsgPackEncode(&cfg, &pc))
	agent := &base.AgentConfig{Driver: &base.ClientDriverConfig{Topology: nodeTopology()}}
	must.NoError(t, h.SetConfig(&base.Config{PluginConfig: cfg, AgentConfig: agent}))
	hr := &harness{DriverHarness: h, driver: d, cacheDir: pc.CacheDir, owner: t}
	t.Cleanup(func() {
		hr.mu.Lock()
		defer hr.mu.Unlock()
		for i := len(hr.allocDirCleanup) - 1; i >= 0; i-- {
			hr.allocDirCleanup[i]()
		}
	})
	return hr
}

// task is one test task with its alloc dir and logs.
type task struct {
	cfg *drivers.TaskConfig
}

// newTask prepares a task running the named test module as local/<module>.wasm
// with the given memory in MiB.
// goModuleMemoryMB is the memory of a task that runs the Go test module:
// it compiles within the task's memory on its first start, which takes
// more than 64 MiB.
const goModuleMemoryMB = 256

func (h *harness) newTask(t *testing.T, module string, memoryMB int64, tc TaskConfig) *task {
	t.Helper()
	cfg := &drivers.TaskConfig{
		ID:      uuid.Generate(),
		AllocID: uuid.Generate(),
		Name:    "test",
		Resources: &drivers.Resources{
			NomadResources: &structs.AllocatedTaskResources{
				Memory: structs.AllocatedMemoryResources{MemoryMB: memoryMB},
				Cpu:    structs.AllocatedCpuResources{CpuShares: 100},
			},
			LinuxResources: &drivers.LinuxResources{MemoryLimitBytes: memoryMB << 20, CPUShares: 100},
		},
	}
	if tc.Module == "" {
		tc.Module = "local/" + module + ".wasm"
	}
	must.NoError(t, cfg.EncodeConcreteDriverConfig(&tc))
	// Nomad's harness destroys the alloc dir (unmounting secrets/) but
	// leaves the temp dir around it. Nomad's logmon only when the driver
	// leaves the logs to it.
	destroy := h.MkAllocDir(cfg, !h.driver.config.ExecutorWritesLogs())
	// Nomad's client makes the directory of allocations 0711, so that the
	// tasks' users (nobody by default) reach their alloc dirs; the
	// harness's is a 0700 temp dir.
	must.NoError(t, os.Chmod(filepath.Dir(cfg.AllocDir), 0o711))
	h.mu.Lock()
	h.allocDirCleanup = append(h.allocDirCleanup, func() { _ = os.RemoveAll(filepath.Dir(cfg.AllocDir)) }, destroy)
	h.mu.Unlock()
	if module != "" {
		testmodule.Install(t, module, cfg.TaskDir().LocalDir, module+".wasm")
	}
	return &task{cfg: cfg}
}

// startProbe starts the probe guest doing what args say and waits until
// its stdout has want.
func (h *harness) startProbe(t *testing.T, want string, args ...string) (*task, *drivers.TaskHandle) {
	t.Helper()
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: args})
	handle := h.start(t, tk)
	tk.waitLog(t, "stdout", want)
	return tk, handle
}

func (tk *task) logPath(stream string) string {
	return filepath.Join(tk.cfg.TaskDir().LogDir, tk.cfg.Name+"."+stream+".0")
}

// waitLog polls the task's log until it contains want, and returns it.
func (tk *task) waitLog(t *testing.T, stream, want string) string {
	t.Helper()
	var got string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(tk.logPath(stream))
		if got = string(b); strings.Contains(got, want) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never contained %q; it has:\n%s", stream, want, got)
	return ""
}

// waitLines polls the task's log until it has n complete lines.
func (tk *task) waitLines(t *testing.T, stream string, n int) string {
	t.Helper()
	var got string
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(tk.logPath(stream))
		if got = string(b); strings.Count(got, "\n") >= n {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s never had %d lines; it has:\n%s", stream, n, got)
	return ""
}

// start starts the task and stops and destroys it when the test ends.
func (h *harness) start(t *testing.T, tk *task) *drivers.TaskHandle {
	t.Helper()
	handle, _, err := h.StartTask(tk.cfg)
	must.NoError(t, err)
	h.cleanupTask(t, tk)
	return handle
}

// startErr is start for a goroutine other than the test's: it returns the
// error instead of failing the test.
func (h *harness) startErr(t *testing.T, tk *task) error {
	_, _, err := h.StartTask(tk.cfg)
	if err == nil {
		h.cleanupTask(t, tk)
	}
	return err
}

func (h *harness) cleanupTask(t *testing.T, tk *task) {
	t.Cleanup(func() {
		_ = h.StopTask(tk.cfg.ID, 5*time.Second, "SIGKILL")
		_ = h.DestroyTask(tk.cfg.ID, true)
	})
}

// wait returns the task's exit result, failing after a deadline.
func (h *harness) wait(t *testing.T, id string) *drivers.ExitResult {
	t.Helper()
	ch, err := h.WaitTask(context.Background(), id)
	must.NoError(t, err)
	select {
	case res := <-ch:
		must.NotNil(t, res)
		return res
	case <-time.After(30 * time.Second):
		t.Fatalf("task %s did not exit", id)
	}
	return nil
}

// run starts the task and waits for it to exit.
func (h *harness) run(t *testing.T, tk *task) *drivers.ExitResult {
	t.Helper()
	h.start(t, tk)
	return h.wait(t, tk.cfg.ID)
}

// events collects the driver's task events for one task. A goroutine
// owned by the test keeps receiving every event, however many come, until
// the test ends.
func (h *harness) events(t *testing.T) func(taskID string) []*drivers.TaskEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := h.TaskEvents(ctx)
	must.NoError(t, err)
	var mu sync.Mutex
	var all []*drivers.TaskEvent
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range ch {
			mu.Lock()
			all = append(all, ev)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	// The subscription goes over the plugin's gRPC, and the driver adds the
	// consumer only when the stream reaches it: an event emitted before
	// then never comes. Events of a task of no one's are emitted until one
	// comes, and so every later event will.
	synced := fmt.Sprintf("events-subscribed-%p", &all)
	deadline := time.Now().Add(10 * time.Second)
	for {
		must.NoError(t, h.driver.eventer.EmitEvent(&drivers.TaskEvent{TaskID: synced, Timestamp: time.Now(), Message: "subscribed"}))
		mu.Lock()
		got := slices.ContainsFunc(all, func(ev *drivers.TaskEvent) bool { return ev.TaskID == synced })
		mu.Unlock()
		if got {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the driver's events never reached the test's subscription")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return func(taskID string) []*drivers.TaskEvent {
		mu.Lock()
		defer mu.Unlock()
		var mine []*drivers.TaskEvent
		for _, ev := range all {
			if ev.TaskID == taskID {
				mine = append(mine, ev)
			}
		}
		return mine
	}
}

// waitEvent polls for an event of the task whose message contains want.
func waitEvent(t *testing.T, events func(string) []*drivers.TaskEvent, taskID, want string) *drivers.TaskEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, ev := range events(taskID) {
			if strings.Contains(ev.Message, want) {
				return ev
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no event containing %q for task %s; got %v", want, taskID, events(taskID))
	return nil
}
