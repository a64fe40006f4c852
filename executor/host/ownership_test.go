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
	for i := range maxExecPrograms + 1 {
		must.NoError(t, os.WriteFile(filepath.Join(top, fmt.Sprintf("web/local/tool%d.wasm", i)), withCustomSection(probe, fmt.Sprint(i)), 0o644))
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
