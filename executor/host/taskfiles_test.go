// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

// taskDirs makes a task's directories as Nomad lays them out (an
// allocation with alloc/logs, the task's directory with local/) under a
// directory of their own, and a start request that names them.
func taskDirs(t *testing.T, module string, args ...string) (top string, req *proto.StartRequest) {
	t.Helper()
	top = t.TempDir()
	for _, d := range []string{"alloc/logs", "web/local"} {
		must.NoError(t, os.MkdirAll(filepath.Join(top, d), 0o777))
	}
	testmodule.Install(t, module, filepath.Join(top, "web/local"), module+".wasm")
	req = &proto.StartRequest{
		TaskId: "task-" + filepath.Base(top), Module: "/local/" + module + ".wasm", Args: args, Entrypoint: "_start", Engine: executor.EngineAuto,
		Mounts:   []*proto.Mount{{GuestPath: "/local", HostPath: filepath.Join(top, "web/local")}},
		Logs:     &proto.Logs{Dir: filepath.Join(top, "alloc/logs"), Name: "web", MaxFiles: 3, MaxFileBytes: 4096},
		StateDir: filepath.Join(top, "web"), LogFile: filepath.Join(top, "web/executor.out"),
		CacheDir: t.TempDir(),
	}
	return top, req
}

// precompile puts the interruptible code of the modules (the task's files
// named) into req's cache, as the driver's compile process does for the
// shared executor, which compiles nothing.
func precompile(t *testing.T, req *proto.StartRequest, files ...string) {
	t.Helper()
	for _, name := range files {
		f, err := os.Open(name)
		must.NoError(t, err)
		must.NoError(t, compileOnly(compileOptions{cacheDir: req.CacheDir, engine: req.Engine, name: name, interruptible: true}, f))
	}
}

// moveAway makes every path under top unreachable, as a Nomad data_dir of
// mode 0700 is to an executor that has become the task's user (root's
// permissions cannot be taken away from the test, a rename can), and
// returns where the directories now are.
func moveAway(t *testing.T, top string) string {
	t.Helper()
	moved := top + ".moved"
	must.NoError(t, os.Rename(top, moved))
	t.Cleanup(func() { _ = os.RemoveAll(moved) })
	return moved
}

// TestNothingByPathOnceStarted: once a task has started, its executor
// reaches its files through what it opened then: a guest flooding stdout
// rotates through the log files, an exec of another module of its view
// loads and runs, and the exit status is recorded, with none of the
// task's paths resolvable any more.
func TestNothingByPathOnceStarted(t *testing.T) {
	t.Parallel()
	top, req := taskDirs(t, "probe")
	probe, err := os.ReadFile(filepath.Join(top, "web/local/probe.wasm"))
	must.NoError(t, err)
	must.NoError(t, os.WriteFile(filepath.Join(top, "web/local/tool.wasm"), withCustomSection(probe, "tool"), 0o644))
	// The flood starts once the paths are gone.
	req.Args = []string{"spin-when", "/local/go"}
	precompile(t, req, filepath.Join(top, "web/local/probe.wasm"), filepath.Join(top, "web/local/tool.wasm"))
	s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
	s.shared = true // every instance with the per-loop check, so that the test can stop it
	tk, err := s.start(context.Background(), req, nil)
	must.NoError(t, err)
	t.Cleanup(func() { s.release(tk) })
	moved := moveAway(t, top)

	// An exec of another module of the view: loaded through the view's
	// descriptors.
	p, done, err := s.execProgram(context.Background(), tk, "/local/tool.wasm")
	must.NoError(t, err)
	out := &collect{}
	in, err := p.start(runOptions{argv0: "tool.wasm", args: []string{"hello"}, streams: stdio{stdout: out, stderr: out}})
	must.NoError(t, err)
	<-in.ended
	done()
	must.StrContains(t, out.String(), "hello from wasm")

	// Output past a file's size goes into the next file, made through the
	// log directory's descriptor.
	w := tk.command.stdout
	line := strings.Repeat("x", 99) + "\n"
	for range 150 {
		_, err := w.Write([]byte(line))
		must.NoError(t, err)
	}
	logs, err := os.ReadDir(filepath.Join(moved, "alloc/logs"))
	must.NoError(t, err)
	var names []string
	for _, e := range logs {
		names = append(names, e.Name())
	}
	must.SliceContainsSubset(t, names, []string{"web.stdout.1", "web.stdout.2", "web.stdout.3"})

	// The exit status is recorded in the task directory, through its
	// descriptor.
	tk.prog.stop(int32(syscall.SIGTERM))
	select {
	case <-tk.run.done():
	case <-time.After(10 * time.Second):
		t.Fatal("the guest did not stop")
	}
	st, err := executor.ReadExitStatus(filepath.Join(moved, "web"), os.Getpid())
	must.NoError(t, err)
	must.Eq(t, int32(syscall.SIGTERM), st.Signal)
}

// TestSharedStartFromHandoff: a shared executor that runs as its user
// starts a task from what the driver handed over on its socket, without
// resolving any of the task's paths, and from the cache only; a task for
// which nothing was handed over fails with a node error that says so.
func TestSharedStartFromHandoff(t *testing.T) {
	t.Parallel()
	top, req := taskDirs(t, "probe", "hello")
	s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
	s.shared = true
	me := &proto.RunAs{Name: "me", Uid: uint32(os.Geteuid()), Gid: uint32(os.Getegid())}
	s.user.Store(me)
	req.RunAs = me
	socket := executor.HandoffSocket(t.TempDir(), 1)
	must.NoError(t, s.listenHandoff(socket))
	t.Cleanup(func() {
		close(s.quit)
		for _, c := range s.closers {
			c()
		}
		s.wg.Wait()
	})

	_, err := s.start(context.Background(), req, nil)
	must.ErrorContains(t, err, "handed over no descriptors for task "+req.TaskId)
	must.Eq(t, executor.ClassNode, executor.ClassOf(err))

	var files []executor.HandoffFile
	for name, path := range map[string]string{
		executor.HandoffMount + "/local": req.Mounts[0].HostPath, executor.HandoffLogDir: req.Logs.Dir,
		executor.HandoffStateDir: req.StateDir, executor.HandoffLogFile: req.LogFile,
	} {
		flag := os.O_RDONLY
		if name == executor.HandoffLogFile {
			flag = os.O_CREATE | os.O_WRONLY | os.O_APPEND
		}
		f, err := os.OpenFile(path, flag, 0o640)
		must.NoError(t, err)
		defer f.Close()
		files = append(files, executor.HandoffFile{Name: name, File: f})
	}
	must.NoError(t, executor.SendHandoff(context.Background(), socket, req.TaskId, files))
	moved := moveAway(t, top)

	// It compiles nothing: a module the node's cache lacks is NotCompiled,
	// for the driver to compile in the task's cgroups (compileOnly), which
	// then starts it again.
	_, err = s.start(context.Background(), req, nil)
	must.True(t, executor.IsNotCompiled(err), must.Sprintf("a shared executor as its user compiled a module itself: %v", err))
	module, err := os.Open(filepath.Join(moved, "web/local/probe.wasm"))
	must.NoError(t, err)
	must.NoError(t, compileOnly(compileOptions{cacheDir: req.CacheDir, engine: req.Engine, name: req.Module, interruptible: true}, module))
	must.NoError(t, executor.SendHandoff(context.Background(), socket, req.TaskId, files))

	tk, err := s.start(context.Background(), req, nil)
	must.NoError(t, err)
	defer s.release(tk)
	<-tk.run.done()
	must.Zero(t, tk.run.exitStatus().ExitCode)
	b, err := os.ReadFile(filepath.Join(moved, "alloc/logs/web.stdout.0"))
	must.NoError(t, err)
	must.StrContains(t, string(b), "hello from wasm")
	b, err = os.ReadFile(filepath.Join(moved, "web/executor.out"))
	must.NoError(t, err)
	must.StrContains(t, string(b), "guest started", must.Sprint("the task's part of the shared executor's log goes to the file handed over"))
}

// TestHandedTaskFilesNeedsEveryName: a handoff that lacks what the start
// request names is a node error naming it, and every file handed over is
// closed either way.
func TestHandedTaskFilesNeedsEveryName(t *testing.T) {
	t.Parallel()
	_, req := taskDirs(t, "probe")
	logs, err := os.Open(req.Logs.Dir)
	must.NoError(t, err)
	_, err = handedTaskFiles(req, map[string]*os.File{executor.HandoffLogDir: logs})
	must.ErrorContains(t, err, `the driver handed over no "mount:/local"`)
	must.Eq(t, executor.ClassNode, executor.ClassOf(err))
	_, err = logs.Stat()
	must.ErrorIs(t, err, os.ErrClosed)
}

// TestHandoffsExpire: descriptors wait handoffTTL for their task's start,
// a second handoff for a task replaces the first, and take hands them over
// once.
func TestHandoffsExpire(t *testing.T) {
	t.Parallel()
	open := func() *os.File {
		f, err := os.Open(t.TempDir())
		must.NoError(t, err)
		return f
	}
	var h handoffs
	first, second, stale := open(), open(), open()
	h.put("stale", map[string]*os.File{"x": stale})
	h.byTask["stale"] = handed{files: h.byTask["stale"].files, at: time.Now().Add(-2 * handoffTTL)}
	h.put("a", map[string]*os.File{"x": first})
	_, err := stale.Stat()
	must.ErrorIs(t, err, os.ErrClosed, must.Sprint("a handoff older than its TTL was kept"))
	h.put("a", map[string]*os.File{"x": second})
	_, err = first.Stat()
	must.ErrorIs(t, err, os.ErrClosed, must.Sprint("a replaced handoff was kept"))
	got, err := h.take("a")
	must.NoError(t, err)
	must.Eq(t, second, got["x"])
	_, err = h.take("a")
	must.Error(t, err)
	_ = second.Close()
}

// TestExecRacesRelease: an exec of another module that finds the task
// just as the task is released neither crashes the shared executor nor
// leaks a program: it runs, or it is refused.
func TestExecRacesRelease(t *testing.T) {
	t.Parallel()
	for i := range 20 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			top, req := taskDirs(t, "probe", "sleep", "60")
			probe, err := os.ReadFile(filepath.Join(top, "web/local/probe.wasm"))
			must.NoError(t, err)
			for j := range 3 {
				must.NoError(t, os.WriteFile(filepath.Join(top, fmt.Sprintf("web/local/tool%d.wasm", j)), withCustomSection(probe, fmt.Sprint(j)), 0o644))
			}
			precompile(t, req, filepath.Join(top, "web/local/probe.wasm"), filepath.Join(top, "web/local/tool0.wasm"),
				filepath.Join(top, "web/local/tool1.wasm"), filepath.Join(top, "web/local/tool2.wasm"))
			s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
			s.shared = true
			tk, err := s.start(context.Background(), req, nil)
			must.NoError(t, err)
			var wg sync.WaitGroup
			for j := range 3 {
				wg.Go(func() {
					p, done, err := s.execProgram(context.Background(), tk, fmt.Sprintf("/local/tool%d.wasm", j))
					if err != nil {
						return
					}
					defer done()
					if in, err := p.start(runOptions{argv0: "tool.wasm", streams: stdio{stdout: &collect{}, stderr: &collect{}}}); err == nil {
						<-in.ended
					}
				})
			}
			s.release(tk)
			wg.Wait()
			tk.execMu.Lock()
			defer tk.execMu.Unlock()
			must.True(t, tk.execClosed)
			must.MapEmpty(t, tk.execPrograms)
		})
	}
}

// TestOpenModuleErrorClasses: a module that cannot be opened is the job's
// to fix only when its path names nothing usable; the node's permissions
// are the operator's, and a node out of descriptors or failing I/O is the
// node's, where the restart policy applies.
func TestOpenModuleErrorClasses(t *testing.T) {
	t.Parallel()
	pathErr := func(errno syscall.Errno) error {
		return &os.PathError{Op: "openat", Path: "app.wasm", Err: errno}
	}
	for _, c := range []struct {
		name     string
		escapes  bool
		err      error
		class    executor.Class
		notFound bool
		says     string
	}{
		{"missing", false, pathErr(syscall.ENOENT), executor.ClassJob, true, "does not exist in the task's view"},
		{"escape", true, pathErr(syscall.EPERM), executor.ClassJob, true, "resolves outside the task's view"},
		{"loop", false, pathErr(syscall.ELOOP), executor.ClassJob, false, "cannot be opened"},
		{"not a directory", false, pathErr(syscall.ENOTDIR), executor.ClassJob, false, "cannot be opened"},
		{"permissions", false, pathErr(syscall.EACCES), executor.ClassOperator, false, "fix the file's permissions"},
		{"out of descriptors", false, pathErr(syscall.EMFILE), executor.ClassNode, false, "too many open files"},
		{"i/o", false, pathErr(syscall.EIO), executor.ClassNode, false, "input/output error"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := openModuleError("/local/app.wasm", "/local", c.escapes, c.err)
			var e *executor.Error
			must.True(t, errors.As(err, &e))
			must.Eq(t, c.class, e.Class)
			must.Eq(t, c.notFound, e.NotFound)
			must.StrContains(t, e.Msg, c.says)
		})
	}
}

// TestNetNSFailureIsTheNodes: a network namespace that cannot be entered
// is a node error in command mode as in http mode: the namespace is the
// node's doing, not the job's.
func TestNetNSFailureIsTheNodes(t *testing.T) {
	t.Parallel()
	top, req := taskDirs(t, "probe", "hello")
	precompile(t, req, filepath.Join(top, "web/local/probe.wasm"))
	req.NetworkNamespace = filepath.Join(t.TempDir(), "no-such-namespace")
	req.Listeners = []*proto.Listener{{Label: "web", Address: "127.0.0.1", Port: 0}}
	s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
	s.shared = true
	_, err := s.start(context.Background(), req, nil)
	must.ErrorContains(t, err, "network namespace")
	must.Eq(t, executor.ClassNode, executor.ClassOf(err))
}

// TestUnreachableClasses: a file of the task the executor cannot open is
// the operator's when permissions refuse it, with the path and what to do
// in the message; the node's otherwise.
func TestUnreachableClasses(t *testing.T) {
	t.Parallel()
	err := unreachable("the log directory", "/data/alloc/a/alloc/logs", &os.PathError{Op: "open", Path: "/data/alloc/a/alloc/logs", Err: syscall.EACCES})
	must.Eq(t, executor.ClassOperator, executor.ClassOf(err))
	must.StrContains(t, err.Error(), "cannot open the log directory (/data/alloc/a/alloc/logs)")
	must.StrContains(t, err.Error(), "make the directory reachable by the driver's user, or run the Nomad client as root")
	err = unreachable("the log directory", "/data/alloc/a/alloc/logs", &os.PathError{Op: "open", Path: "/data/alloc/a/alloc/logs", Err: syscall.EMFILE})
	must.Eq(t, executor.ClassNode, executor.ClassOf(err))
	must.StrContains(t, err.Error(), "open the log directory (/data/alloc/a/alloc/logs)")
}
