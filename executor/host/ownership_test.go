// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"
	"github.com/shoenig/test/wait"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/modcache"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// TestCloseRecordsExitStatus: a server that ends while its guest runs
// stops the guest and waits for it to record its exit status before it
// returns, so that the process's exit loses no status.
func TestCloseRecordsExitStatus(t *testing.T) {
	t.Parallel()
	top, req := taskDirs(t, "probe", "sleep", "60")
	precompile(t, req, filepath.Join(top, "web/local/probe.wasm"))
	s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
	s.shared = true
	tk, err := s.start(context.Background(), req, nil)
	must.NoError(t, err)
	s.mu.Lock()
	s.tasks[tk.id] = tk
	s.mu.Unlock()
	s.close()
	st, err := executor.ReadExitStatus(filepath.Join(top, "web"), os.Getpid())
	must.NoError(t, err, must.Sprint("the executor's close returned before the guest recorded its exit status"))
	must.Eq(t, int32(syscall.SIGKILL), st.Signal)
}

// TestUncachedExecProgramUnhooked: the program of an exec that the task
// does not keep (beyond maxExecPrograms) is closed after its exec, and
// nothing of the task refers to it any more: the task's stop reaches the
// programs it keeps, not that one.
func TestUncachedExecProgramUnhooked(t *testing.T) {
	t.Parallel()
	top, req := taskDirs(t, "probe", "sleep", "60")
	probe, err := os.ReadFile(filepath.Join(top, "web/local/probe.wasm"))
	must.NoError(t, err)
	precompile(t, req, filepath.Join(top, "web/local/probe.wasm"))
	for i := range maxExecPrograms + 1 {
		tool := filepath.Join(top, fmt.Sprintf("web/local/tool%d.wasm", i))
		must.NoError(t, os.WriteFile(tool, withCustomSection(probe, fmt.Sprint(i)), 0o644))
		precompile(t, req, tool)
	}
	s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
	s.shared = true
	tk, err := s.start(context.Background(), req, nil)
	must.NoError(t, err)
	defer s.release(tk)
	var kept []*program
	var dropped *program
	for i := range maxExecPrograms + 1 {
		p, done, err := s.execProgram(context.Background(), tk, fmt.Sprintf("/local/tool%d.wasm", i))
		must.NoError(t, err)
		done()
		if i < maxExecPrograms {
			kept = append(kept, p)
		} else {
			dropped = p
		}
	}
	tk.prog.stop(int32(syscall.SIGTERM))
	must.Wait(t, wait.InitialSuccess(wait.BoolFunc(func() bool {
		for _, p := range kept {
			if p.stoppedBy() != int32(syscall.SIGTERM) {
				return false
			}
		}
		return true
	}), wait.Timeout(10*time.Second), wait.Gap(5*time.Millisecond)), must.Sprint("the task's stop did not reach the exec programs it keeps"))
	must.Zero(t, dropped.stoppedBy(), must.Sprint("the task still holds a hook to an exec program it closed"))
}

// countingCloser counts its closes.
type countingCloser struct{ closes atomic.Int32 }

func (c *countingCloser) Write(p []byte) (int, error) { return len(p), nil }
func (c *countingCloser) Close() error                { c.closes.Add(1); return nil }

// TestFailedStartClosesStreamsOnce: the streams handed to an instance or to
// the HTTP trigger are theirs, closed once by them when they fail to
// start, never again by the caller.
func TestFailedStartClosesStreamsOnce(t *testing.T) {
	t.Parallel()
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	must.NoError(t, err)
	defer taken.Close()
	port := int32(taken.Addr().(*net.TCPAddr).Port)
	_, req := taskDirs(t, "probe", "hello")
	files, err := openTaskFiles(req)
	must.NoError(t, err)
	defer files.close()
	b, digest, err := files.view.read(req.Module, 0)
	must.NoError(t, err)
	engine, err := resolveEngine(executor.EngineAuto)
	must.NoError(t, err)
	spec := programSpec{Module: req.Module, Engine: engine, Entrypoint: "_start", Interruptible: true, View: files.view}
	cache := modcache.Cache{Dir: t.TempDir(), Logger: hclog.NewNullLogger(), Validate: validateConfig()}
	p, err := loadProgram(context.Background(), hclog.NewNullLogger(), cache, spec, b, digest, nil)
	must.NoError(t, err)
	defer p.close()

	out, errOut := &countingCloser{}, &countingCloser{}
	_, err = p.start(runOptions{argv0: "probe.wasm", streams: stdio{stdout: out, stderr: errOut},
		listeners: []*proto.Listener{{Label: "web", Address: "127.0.0.1", Port: port}}})
	must.Error(t, err)
	must.Eq(t, int32(1), out.closes.Load())
	must.Eq(t, int32(1), errOut.closes.Load())

	out, errOut = &countingCloser{}, &countingCloser{}
	_, err = p.serveHTTP(triggerHost{spawn: func(f func()) { go f() }}, &proto.HTTPTrigger{Listener: &proto.Listener{Label: "http", Address: "127.0.0.1", Port: port}},
		nil, "", stdio{stdout: out, stderr: errOut}, nil, nil)
	must.Error(t, err)
	must.Eq(t, int32(1), out.closes.Load(), must.Sprint("a trigger that failed to start left its stdout to its caller"))
	must.Eq(t, int32(1), errOut.closes.Load())
}

// TestWaitEndsWithTheRelease: a shared task whose guest does not end after
// its release is reported to Wait as released, once release has waited
// for it, so that its driver does not wait for ever.
func TestWaitEndsWithTheRelease(t *testing.T) {
	t.Parallel()
	s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
	s.shared, s.releaseWait = true, time.Second
	tk := newSharedTask(t, s, "stuck")
	// A guest that ignores its stop: the stop's hook is not its.
	stuck := &instance{prog: tk.prog, ended: make(chan struct{})}
	tk.run, tk.command = stuck, stuck
	t.Cleanup(func() { stuck.finish(&proto.ExitStatus{}) })
	released := make(chan struct{})
	go func() {
		defer close(released)
		s.release(tk)
	}()
	// The task is the server's until release has waited for its guest
	// (releaseWait), which Wait, called meanwhile, waits for too.
	resp, err := s.Wait(context.Background(), &proto.WaitRequest{TaskId: "stuck"})
	must.NoError(t, err)
	must.Eq(t, int32(9), resp.Status.Signal)
	must.StrContains(t, resp.Status.Error, "released from the node's shared executor")
	<-released
}

// TestCPUMeterBounded: past maxMeteredRuns runs at once, a run is not held
// to a thread of its own (and not metered), so that slow requests in
// flight cannot make the shared executor reach Go's limit of threads. Not
// parallel: the count is the process's.
func TestCPUMeterBounded(t *testing.T) {
	m := newCPUMeter()
	spin := func() {
		for end := time.Now().Add(20 * time.Millisecond); time.Now().Before(end); {
		}
	}
	m.run(spin)
	must.Positive(t, m.sample().user, must.Sprint("a run within the bound is metered"))
	meteredRuns.Add(maxMeteredRuns)
	defer meteredRuns.Add(-maxMeteredRuns)
	before := m.sample().user
	m.run(spin)
	must.Eq(t, before, m.sample().user, must.Sprint("a run past the bound was metered, holding a thread"))
	must.Eq(t, int32(maxMeteredRuns), meteredRuns.Load())
}
