// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"google.golang.org/grpc"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// lingerAfterExit is how long an executor whose guest has exited waits for
// a driver to collect the exit status before it exits. The status is also
// in executor.ExitStatusFile, so a driver that comes later loses nothing.
const lingerAfterExit = 30 * time.Second

// lingerAfterAbandon replaces lingerAfterExit once a guest spinning in its
// own code has been recorded as stopped (instance.abandon): it still burns
// a core, and only the executor's exit ends it.
const lingerAfterAbandon = time.Second

// computeGrace is how long a stopped guest without the per-loop check has
// to end by itself or at a host call before, found running its own code,
// it is abandoned (see watchStop): as much time, and as much of the
// executor's CPU time (a guest the node's scheduler left waiting has not
// had its chance to reach a host call).
const computeGrace = 100 * time.Millisecond

// server is the executor's side of the protocol. An executor of its own
// runs one task in its life: a program and its main instance, plus the
// instances nomad alloc exec asks for. The node's shared executor (shared)
// runs any number of tasks side by side, each named by its task ID, all of
// them with the per-loop check, so that each can be stopped alone. It
// speaks to programs and instances only, never to wazero.
type server struct {
	proto.UnimplementedExecutorServer

	// kept is what the shared executor keeps of ended tasks' programs for
	// the next task of the same module (nil in an executor of one task).
	kept *keptSet

	logger    hclog.Logger
	logOutput *logOutput
	// failedLinger is failedStartLinger, but for tests.
	failedLinger time.Duration
	// forgetLinger is lingerAfterExit for forgetAfter, but for tests.
	forgetLinger time.Duration
	// releaseWait is releaseWait, but for tests.
	releaseWait time.Duration
	// instantiateTimeout bounds the instantiation of the task's command
	// instance (its start function), instantiateTimeout but for tests.
	instantiateTimeout time.Duration
	// cpuTime is the CPU time the process has used (processCPUTime), but
	// for tests.
	cpuTime func() time.Duration
	// quit is closed when serving has ended; wg holds every goroutine the
	// server starts, and close waits for them.
	quit     chan struct{}
	wg       sync.WaitGroup
	closers  []func()
	stopOnce sync.Once

	// shared: this is the node's shared executor (see shared.go).
	shared bool
	// drivers counts the drivers that hold a shared executor: its launcher
	// until its watch pipe closes, and each open Attach.
	drivers int
	// trimPending: a shared executor has a trim of its memory scheduled.
	trimPending bool

	// startMu orders Starts; mu guards what follows it.
	startMu sync.Mutex
	mu      sync.Mutex
	grpc    *grpc.Server
	// stopRequested: a stop was asked for before the gRPC server existed.
	stopRequested bool
	// tasks are the tasks by ID; an executor of its own holds one, under
	// whatever ID its Start named.
	tasks map[string]*task
	// started: an executor of its own has had its task.
	started bool
	// startGen counts Start calls, so that the linger after a failed Start
	// is cancelled by a later one.
	startGen int

	// warm is what this executor prepared as a spare, or nil.
	warm *warmSet

	// handoff holds what drivers handed over for the tasks they start in
	// a shared executor that runs as its user (see handoff.go).
	handoff handoffs

	// user is who the executor has become (see becomeUser), nil while it
	// is still who it was started as: a shared executor becomes its user
	// when it starts, an executor of its own as its task starts. From then
	// on it writes nothing to the compiled-module cache, and compiles what
	// the cache cannot give it into memCache.
	user     atomic.Pointer[proto.RunAs]
	memCache wazero.CompilationCache
	// becomeOnServe is the user a shared executor becomes once go-plugin
	// has made its socket, before it serves (serving).
	becomeOnServe *proto.RunAs

	// rss is the process's RSS as the shared executor's stats streams
	// read it.
	rss sharedRSS

	// gcOff: automatic collection is off for a guest without the per-loop
	// check (see gc.go); gcMu orders it with collect.
	gcMu  sync.Mutex
	gcOff bool
}

// task is a task the executor runs.
type task struct {
	id  string
	req *proto.StartRequest
	// files is what the task may reach, open; closed when it is released.
	files *taskFiles
	prog  *program
	// run is what runs the task: command (its instance) or its HTTP
	// trigger. command is also set for what only a command instance has
	// (watchStop, the collector's watch, an abandoned guest's short
	// linger).
	run     runner
	command *instance
	// watchOnce starts watchStop once.
	watchOnce sync.Once
	// logger is the task's part of the executor log; in the shared
	// executor it writes to files.logFile, the task's own.
	logger hclog.Logger

	execMu sync.Mutex
	// execPrograms holds programs of other modules that exec ran, by
	// digest.
	execPrograms map[string]*program
	// execClosed: the task has been released and takes no exec; execs
	// counts the execs that run.
	execClosed bool
	execs      sync.WaitGroup
	// released is closed once the task is being released, releaseDone
	// once release has waited for its guest.
	released    chan struct{}
	releaseDone chan struct{}
	releaseOnce sync.Once
}

func newServer(logger hclog.Logger, out *logOutput) *server {
	return &server{logger: logger, logOutput: out, failedLinger: failedStartLinger, forgetLinger: lingerAfterExit, releaseWait: releaseWait, instantiateTimeout: instantiateTimeout, cpuTime: processCPUTime,
		quit: make(chan struct{}), tasks: map[string]*task{}, memCache: wazero.NewCompilationCache()}
}

// serving receives the gRPC server once go-plugin has made it.
//
// A shared executor that runs as a user becomes it here: go-plugin has
// made the protocol's socket by now, as root, so no process of that user
// can replace the socket (a root-owned file in the sticky temporary
// directory) or connect to it (see launcherOnly), and nothing has been
// served yet. An executor that cannot become its user must not serve as
// root: it exits, and the driver sees it gone before the handshake.
func (s *server) serving(g *grpc.Server) {
	if u := s.becomeOnServe; u != nil {
		if err := becomeUser(u); err != nil {
			s.logger.Error("cannot become the shared executor's user", "user", u.Name, "error", err)
			s.logOutput.close()
			os.Exit(1)
		}
		s.user.Store(u)
		s.logger.Info("shared executor serving as its user", "user", u.Name, "uid", os.Geteuid())
	}
	s.mu.Lock()
	s.grpc = g
	stop := s.stopRequested
	s.mu.Unlock()
	if stop {
		s.shutdown("stop requested during start-up")
	}
}

// shutdown stops serving, which makes Serve return.
func (s *server) shutdown(reason string) {
	s.mu.Lock()
	g := s.grpc
	if g == nil {
		s.stopRequested = true
	}
	s.mu.Unlock()
	if g == nil {
		return
	}
	s.stopOnce.Do(func() {
		s.logger.Info("executor stopping", "reason", reason)
		// GracefulStop would wait for go-plugin's stdio stream, which a
		// connected driver holds open. Stop is not called on the caller's
		// goroutine, which may be one of the RPCs it ends.
		s.wg.Go(g.Stop)
	})
}

// close ends what the server started once serving has ended, and waits
// for its goroutines. A guest still running is stopped; the process's exit
// ends one that cannot be.
func (s *server) close() {
	close(s.quit)
	s.mu.Lock()
	tasks := make([]*task, 0, len(s.tasks))
	for _, t := range s.tasks {
		tasks = append(tasks, t)
	}
	closers := s.closers
	s.mu.Unlock()
	for _, t := range tasks {
		t.prog.stop(int32(syscall.SIGKILL))
		t.run.kill()
	}
	// Each guest that can end records its exit status before the process
	// exits; one that cannot (without the per-loop check, in its own
	// code) is ended by the exit, after releaseWait.
	deadline := time.NewTimer(releaseWait)
	defer deadline.Stop()
	for _, t := range tasks {
		select {
		case <-t.run.done():
			continue
		case <-deadline.C:
		}
		s.logger.Warn("a stopped guest did not end; the executor exits without its exit status", "task_id", t.id)
		break
	}
	for _, c := range closers {
		c()
	}
	s.wg.Wait()
	s.kept.close()
}

// watchLauncher watches the pipe from the driver that launched this
// executor (see executor.WatchFDFlag): when the driver is gone and no task
// has claimed the executor, it exits.
func (s *server) watchLauncher(fd int) {
	// Non-blocking, so that closing the file ends a read in progress.
	_ = syscall.SetNonblock(fd, true)
	f := os.NewFile(uintptr(fd), "launcher-watch")
	s.closers = append(s.closers, func() { _ = f.Close() })
	s.wg.Go(func() {
		_, _ = io.Copy(io.Discard, f)
		select {
		case <-s.quit:
			return
		default:
		}
		if s.shared {
			s.detach()
			return
		}
		s.mu.Lock()
		claimed := s.started
		s.mu.Unlock()
		if !claimed {
			s.shutdown("the driver that launched this executor is gone, and no task claimed it")
		}
	})
}

func (s *server) Version(ctx context.Context, req *proto.VersionRequest) (*proto.VersionResponse, error) {
	resp := version(ctx, req, s.user.Load() != nil)
	resp.PreparedModules = append(s.warm.ready(), s.kept.digests()...)
	s.mu.Lock()
	resp.Shared, resp.Tasks = s.shared, int32(len(s.tasks))
	s.mu.Unlock()
	return resp, nil
}

// pause waits for d, or until serving has ended: then it returns false.
func (s *server) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-s.quit:
		return false
	case <-t.C:
		return true
	}
}

// current is the task a request names: in an executor of its own, its
// only task, whatever the ID.
func (s *server) current(id string) (*task, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.shared {
		for _, t := range s.tasks {
			return t, nil
		}
		return nil, executor.NodeErrorf("no guest has been started in this executor")
	}
	t, ok := s.tasks[id]
	if !ok {
		return nil, executor.NodeErrorf("the shared executor holds no task %q: it was never started here, or it has been released", id)
	}
	return t, nil
}
