// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"bytes"
	"context"
	"io"
	"os"
	"path"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"google.golang.org/grpc"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/logfile"
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

// instantiateTimeout bounds the start function of the task's command
// instance: compiled without the per-loop check, a start function that
// never returns cannot be stopped, and Start would never answer. One still
// running then fails the Start (a job error) and leaves the executor to
// end, by the driver's kill or failedStartLinger, which ends the guest.
// (The HTTP trigger's and exec's instances are bounded by their own
// contexts.)
const instantiateTimeout = 10 * time.Second

// computeGrace is how long a stopped guest without the per-loop check has
// to end by itself or at a host call before, found running its own code,
// it is abandoned (see watchStop).
const computeGrace = 100 * time.Millisecond

// failedStartLinger is how long an executor whose Start failed waits for
// another Start before it exits. The driver normally kills it at once; this
// bounds its life if the driver never does.
const failedStartLinger = 30 * time.Second

// maxExecPrograms bounds the programs an executor keeps for modules other
// than the task's that nomad alloc exec runs (a script check's tool, say),
// so that running one again does not compile it again.
const maxExecPrograms = 4

// server is the executor's side of the protocol. An executor of its own
// runs one task in its life: a program and its main instance, plus the
// instances nomad alloc exec asks for. The node's shared executor (shared)
// runs any number of tasks side by side, each named by its task ID, all of
// them with the per-loop check, so that each can be stopped alone. It
// speaks to programs and instances only, never to wazero.
type server struct {
	proto.UnimplementedExecutorServer

	logger    hclog.Logger
	logOutput *logOutput
	// failedLinger is failedStartLinger, but for tests.
	failedLinger time.Duration
	// instantiateTimeout bounds the instantiation of the task's command
	// instance (its start function), instantiateTimeout but for tests.
	instantiateTimeout time.Duration
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
	// main is the task's instance; in http mode it stands for the trigger
	// (done once it has drained), which is then set.
	main    *instance
	trigger *httpTrigger
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
	// released is closed once the task has been released.
	released    chan struct{}
	releaseOnce sync.Once
}

// linearMemory is the linear memory of the task's instances.
func (t *task) linearMemory() uint64 {
	if t.trigger != nil {
		return t.trigger.budget.Used()
	}
	return t.main.memBytes.Load()
}

func newServer(logger hclog.Logger, out *logOutput) *server {
	return &server{logger: logger, logOutput: out, failedLinger: failedStartLinger, instantiateTimeout: instantiateTimeout,
		quit: make(chan struct{}), tasks: map[string]*task{}, memCache: wazero.NewCompilationCache()}
}

// serving receives the gRPC server once go-plugin has made it.
func (s *server) serving(g *grpc.Server) {
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
		if t.trigger != nil {
			t.trigger.close()
		}
	}
	// Each guest that can end records its exit status before the process
	// exits; one that cannot (without the per-loop check, in its own
	// code) is ended by the exit, after releaseWait.
	deadline := time.NewTimer(releaseWait)
	defer deadline.Stop()
	for _, t := range tasks {
		select {
		case <-t.main.done:
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
	resp.PreparedModules = s.warm.ready()
	s.mu.Lock()
	resp.Shared, resp.Tasks = s.shared, int32(len(s.tasks))
	s.mu.Unlock()
	return resp, nil
}

func (s *server) Start(ctx context.Context, req *proto.StartRequest) (*proto.StartResponse, error) {
	s.startMu.Lock()
	defer s.startMu.Unlock()
	gen, err := s.admit(req)
	if err != nil {
		return nil, err
	}
	t, err := s.start(ctx, req)
	if err != nil {
		if !s.shared {
			s.lingerAfterFailedStart(gen)
		}
		return nil, err
	}
	s.mu.Lock()
	s.tasks[t.id] = t
	s.started = true
	s.mu.Unlock()
	// What init and compilation allocated is garbage now, and most of the
	// binary that start-up mapped will not be used again: hand both back so
	// that an idle task holds little more than what its guest uses. Under
	// a guest without the per-loop check, only once that cannot stall the
	// executor (see gc.go); in the shared executor, once for many starts.
	switch {
	case s.shared:
		s.trimSoon()
		s.wg.Go(func() { s.forgetAfter(t) })
	case s.gcOff:
		s.wg.Go(func() { s.collectWhileBlocked(t.main) })
	default:
		s.wg.Go(func() {
			debug.FreeOSMemory()
			trimBinaryPages()
		})
	}
	if !s.shared {
		s.wg.Go(func() { s.exitAfter(t.main) })
	}
	p := t.prog
	return &proto.StartResponse{CacheHit: p.cacheHit, LoadNanos: p.loadTook.Nanoseconds(), ModuleSha256: p.digest,
		MemoryLimitPages: p.limit, Engine: p.spec.Engine, CacheRepaired: p.repaired, Prepared: p.prepared}, nil
}

// admit checks that req may start here and counts the Start (see
// startGen).
func (s *server) admit(req *proto.StartRequest) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case !s.shared && s.started:
		return 0, executor.NodeErrorf("this executor already runs a task, and an executor runs one task in its life")
	case s.shared && req.TaskId == "":
		return 0, executor.NodeErrorf("the shared executor needs the task's ID in its Start")
	case s.tasks[req.TaskId] != nil:
		return 0, executor.NodeErrorf("task %s has already been started in this executor", req.TaskId)
	}
	s.startGen++
	return s.startGen, nil
}

// start makes the task's program and starts its main instance, in the
// order that keeps every step within what the task may do: open what the
// task may reach (openFiles), join its cgroups (so that compiling its
// module counts against its memory), load the program, then bind its
// sockets and become its user as its instance starts. What this executor
// prepared as a spare is released when it returns, whatever happened:
// only the program it made may keep a prepared module.
func (s *server) start(ctx context.Context, req *proto.StartRequest) (_ *task, err error) {
	defer s.warm.take(nil, "", false)
	files, err := s.openFiles(req)
	if err != nil {
		return nil, err
	}
	t := &task{id: req.TaskId, req: req, files: files, logger: s.logger, execPrograms: map[string]*program{}, released: make(chan struct{})}
	defer func() {
		if err != nil {
			if t.prog != nil {
				t.prog.close()
			}
			files.close()
		}
	}()
	level := s.logger.GetLevel()
	if req.LogLevel != "" {
		level = hclog.LevelFromString(req.LogLevel)
	}
	switch {
	case s.shared && files.logFile != nil:
		// The task's part of the shared executor's log: its own file.
		t.logger = hclog.New(&hclog.LoggerOptions{Name: "wasm-executor", Level: level, JSONFormat: true, Output: files.logFile}).With("shared_executor_pid", os.Getpid())
	case s.shared:
		t.logger = s.logger.With("task_id", req.TaskId)
	default:
		if files.logFile != nil {
			s.logOutput.toFile(files.logFile)
			files.logFile = nil
		}
		s.logger.SetLevel(level)
	}
	if files.logFileErr != nil {
		t.logger.Warn("cannot open the task's executor log; logging to the executor's own", "path", req.LogFile, "error", files.logFileErr)
	}
	engine, err := resolveEngine(req.Engine)
	if err != nil {
		return nil, executor.OperatorErrorf("%v", err)
	}
	runAs, err := s.runAs(req)
	if err != nil {
		return nil, err
	}
	spec := programSpec{
		Module: req.Module, Sha256: req.Sha256, Pulled: req.ModuleFilePulled, Engine: engine, Entrypoint: req.Entrypoint, Env: req.Env,
		// The HTTP trigger's instances share the process, as do all the
		// instances of the shared executor; the task's own command
		// instance in an executor of its own has it to itself.
		Interruptible:    interruptible(req.Http != nil || s.shared),
		MemoryLimitPages: req.MemoryLimitPages, MemoryLimitSource: req.MemoryLimitSource,
		View: files.view,
	}
	// The task's logs are opened first: a logmon reading FIFOs then waits
	// in a read, not in its open, when the guest first writes.
	streams, err := taskStdio(req, files.logDir, t.logger)
	if err != nil {
		return nil, executor.NodeErrorf("open the task's log: %v", err)
	}
	if err := joinCgroups(req.Cgroups); err != nil {
		closeStdio(streams)
		return nil, executor.NodeErrorf("%v", err)
	}
	began := time.Now()
	prog, read, err := s.load(ctx, t.logger, req, spec, engine, files)
	if err != nil {
		closeStdio(streams)
		return nil, err
	}
	loaded := time.Since(began)
	t.prog = prog
	if req.Http != nil {
		t.main, t.trigger, err = prog.serveHTTP(triggerHost{shared: s.shared, spawn: s.wg.Go}, req.Http, req.Args, req.NetworkNamespace, streams, files.stateDir, runAs)
	} else {
		if !spec.Interruptible {
			s.disableGC()
		}
		t.main, err = prog.start(runOptions{argv0: path.Base(req.Module), args: req.Args, streams: streams, stateDir: files.stateDir,
			listeners: req.Listeners, netns: req.NetworkNamespace, instantiateTimeout: s.instantiateTimeout, ownThread: s.shared, runAs: runAs})
	}
	if runAs != nil && uint32(os.Geteuid()) == runAs.Uid {
		// Become it, whether or not the start went on from there: a
		// failed start leaves an executor that can do no more as root.
		s.user.Store(runAs)
	}
	if err != nil {
		// The streams were the instance's (or the trigger's), which closed
		// them.
		return nil, err
	}
	t.logger.Info("guest started", "module", req.Module, "sha256", prog.digest, "cache_hit", prog.cacheHit, "prepared", prog.prepared,
		"read", read, "loaded", loaded, "running", time.Since(began))
	return t, nil
}

// openFiles opens what the task may reach: by path while the executor can
// resolve the paths, else from what the driver handed over (a shared
// executor that runs as its user from its start).
func (s *server) openFiles(req *proto.StartRequest) (*taskFiles, error) {
	if s.shared && s.user.Load() != nil {
		handed, err := s.handoff.take(req.TaskId)
		if err != nil {
			return nil, err
		}
		return handedTaskFiles(req, handed)
	}
	return openTaskFiles(req)
}

// load reads the task's module through its view and makes its program: from
// what this executor prepared as a spare when the content matches, else
// through the node's cache. It also says how long reading took.
func (s *server) load(ctx context.Context, logger hclog.Logger, req *proto.StartRequest, spec programSpec, engine string, files *taskFiles) (*program, time.Duration, error) {
	began := time.Now()
	f := files.module
	if f == nil {
		var err error
		if f, err = spec.View.open(spec.Module); err != nil {
			return nil, 0, err
		}
		defer f.Close()
	}
	if err := checkModuleSize(f, spec.Module, req.MaxModuleBytes); err != nil {
		return nil, 0, err
	}
	// A module this executor prepared is known by its content, compared
	// through a mapping of the file (no copy, and the page cache's pages
	// are mapped at once); any other is read and hashed to find it in the
	// cache.
	b, mapped, unmap, err := viewFile(f)
	if err != nil {
		return nil, 0, executor.NodeErrorf("read module %s: %v", spec.Module, err)
	}
	defer unmap()
	warm, digest := s.warm.take(b, engine, spec.Interruptible)
	if warm == nil {
		if mapped {
			// wazero may keep parts of the binary it compiles.
			b = bytes.Clone(b)
		}
		digest = moduleDigest(b)
	}
	read := time.Since(began)
	cache := s.moduleCache(req.CacheDir, logger)
	prog, err := loadProgram(ctx, logger, cache, spec, b, digest, warm)
	if err != nil {
		return nil, 0, err
	}
	if prog.repaired != "" {
		logger.Warn("the module's compiled entry in the node's cache was damaged and has been replaced", "sha256", digest, "error", prog.repaired)
	}
	// Recorded before Start returns: the driver launches the next spare
	// then, and it reads the record to prepare this module. (Not by an
	// executor that runs as a task's user: it writes nothing there.)
	if !cache.ReadOnly {
		if err := cache.remember(digest, b); err != nil {
			logger.Warn("cannot record the module as recently started", "error", err)
		}
	}
	return prog, read, nil
}

// moduleCache is the node's compiled-module cache in dir as this executor
// may use it: read-only once it runs as a task's user.
func (s *server) moduleCache(dir string, logger hclog.Logger) ModuleCache {
	c := ModuleCache{Dir: dir, Logger: logger}
	if s.user.Load() != nil {
		c.ReadOnly, c.Memory = true, s.memCache
	}
	return c
}

// runAs is the user that req's task runs as in this executor, or nil when
// the executor needs not become anyone: an executor of its own becomes
// the task's user (the driver resolved it), once; the shared executor
// became its user when it started, and runs only tasks of that user.
func (s *server) runAs(req *proto.StartRequest) (*proto.RunAs, error) {
	current := s.user.Load()
	want := req.RunAs
	switch {
	case want == nil && current == nil:
		return nil, nil
	case want == nil:
		return nil, executor.NodeErrorf("this executor runs as user %s, and the task names none: a driver that runs as root names the task's user", current.Name)
	case current == nil && uint32(os.Geteuid()) == want.Uid:
		// Already the user (root, where the operator allows it).
		return nil, nil
	case current == nil && s.shared:
		return nil, executor.JobErrorf("the node's shared executor runs every task as uid %d, and this task's user is %s (uid %d): remove the task's user, or run it in an executor of its own (plugin config shared_executor = false)", os.Geteuid(), want.Name, want.Uid)
	case current == nil:
		return want, nil
	case current.Uid == want.Uid && current.Gid == want.Gid:
		return nil, nil
	default:
		return nil, executor.JobErrorf("the node's shared executor runs every task as user %s (its default_user), and this task's user is %s: remove the task's user, or run it in an executor of its own (plugin config shared_executor = false)", current.Name, want.Name)
	}
}

// lingerAfterFailedStart ends the executor if no Start has come
// failedStartLinger after Start number gen failed.
func (s *server) lingerAfterFailedStart(gen int) {
	s.wg.Go(func() {
		if !s.pause(s.failedLinger) {
			return
		}
		s.mu.Lock()
		idle := !s.started && s.startGen == gen
		s.mu.Unlock()
		if idle {
			s.shutdown("its task failed to start, and no other came")
		}
	})
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

// exitAfter stops serving lingerAfterExit after the main instance has
// exited. A driver that collects the status ends the executor sooner; this
// bounds how long an executor outlives a guest whose driver never came
// back.
func (s *server) exitAfter(main *instance) {
	select {
	case <-main.done:
	case <-s.quit:
		return
	}
	linger := lingerAfterExit
	if main.abandoned.Load() {
		linger = lingerAfterAbandon
	}
	t := time.NewTimer(linger)
	defer t.Stop()
	select {
	case <-t.C:
		s.shutdown("the guest exited and no driver collected its status")
	case <-s.quit:
	}
}

func closeStdio(s stdio) {
	_ = s.stdout.Close()
	_ = s.stderr.Close()
}

// taskStdio opens the task's stdout and stderr: the executor's own
// rotated files in the allocation's log directory (req.Logs, open as
// logDir), or Nomad's logmon FIFOs. Writes go straight through, so output
// is in the logs while the guest runs. A failure to rotate is the
// logger's to report.
func taskStdio(req *proto.StartRequest, logDir *os.Root, logger hclog.Logger) (stdio, error) {
	open := func(stream, fifo string) (io.WriteCloser, error) {
		if l := req.Logs; l != nil {
			name := l.Name + "." + stream
			f, err := logfile.Open(logDir, name, logfile.Options{MaxFiles: int(l.MaxFiles), MaxBytes: l.MaxFileBytes,
				OnRotateError: func(err error) {
					logger.Error("cannot start the task's next log file: the guest's output goes on into the current one, past its size", "dir", l.Dir, "stream", name, "error", err)
				}})
			if err != nil {
				return nil, err
			}
			return f, nil
		}
		return openLog(fifo)
	}
	stdout, err := open("stdout", req.StdoutPath)
	if err != nil {
		return stdio{}, err
	}
	stderr, err := open("stderr", req.StderrPath)
	if err != nil {
		_ = stdout.Close()
		return stdio{}, err
	}
	return stdio{stdout: stdout, stderr: stderr}, nil
}

func openLog(p string) (io.WriteCloser, error) {
	if p == "" {
		return nopCloser{io.Discard}, nil
	}
	return os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

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

func (s *server) Wait(ctx context.Context, req *proto.WaitRequest) (*proto.WaitResponse, error) {
	t, err := s.current(req.TaskId)
	if err != nil {
		return nil, err
	}
	select {
	case <-t.main.done:
		return &proto.WaitResponse{Status: t.main.status}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *server) Stop(ctx context.Context, req *proto.StopRequest) (*proto.StopResponse, error) {
	t, err := s.current(req.TaskId)
	if err != nil {
		return nil, err
	}
	s.stopMain(t, req.Signal)
	timer := time.NewTimer(time.Duration(req.TimeoutNanos))
	defer timer.Stop()
	select {
	case <-t.main.done:
		return &proto.StopResponse{Exited: true}, nil
	case <-timer.C:
		if t.trigger == nil {
			return &proto.StopResponse{Exited: false}, nil
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// The drain ran out of time: the requests still in flight are ended,
	// which a trigger's instances, sharing this process, take promptly.
	t.trigger.close()
	select {
	case <-t.main.done:
		return &proto.StopResponse{Exited: true}, nil
	case <-time.After(time.Second):
		return &proto.StopResponse{Exited: false}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// stopMain stops the task's program with signal. A command instance
// compiled without the per-loop check is then watched (watchStop).
func (s *server) stopMain(t *task, signal int32) {
	t.prog.stop(signal)
	if t.trigger == nil && !t.prog.spec.Interruptible {
		t.watchOnce.Do(func() { s.wg.Go(func() { s.watchStop(t.main) }) })
	}
}

// watchStop follows a stopped instance that has no per-loop check. One
// in a host call, or making one, ends there (guardHostCalls), as a guest
// with the check would. One that is still running its own code after
// computeGrace cannot be reached from inside the process: it is abandoned
// (its exit status recorded as the stop's), and the executor exits soon
// after (exitAfter), which ends it. One that stays inside a host call that
// the stop cannot cut short (a kernel wait) is left to the driver, which
// kills the executor once the stop's timeout has passed, as before.
func (s *server) watchStop(in *instance) {
	grace := time.NewTimer(computeGrace)
	defer grace.Stop()
	select {
	case <-in.done:
		return
	case <-s.quit:
		return
	case <-grace.C:
	}
	tick := time.NewTicker(computeGrace / 4)
	defer tick.Stop()
	for in.hostCalls.Load() != 0 {
		select {
		case <-in.done:
			return
		case <-s.quit:
			return
		case <-tick.C:
		}
	}
	s.logger.Warn("the guest was stopped while it ran its own code, which a stop cannot reach without wazero's per-loop check: recording its exit as the stop's and ending the executor")
	in.abandon()
}

func (s *server) Signal(_ context.Context, req *proto.SignalRequest) (*proto.SignalResponse, error) {
	t, err := s.current(req.TaskId)
	if err != nil {
		return nil, err
	}
	switch syscall.Signal(req.Signal) {
	case syscall.SIGINT, syscall.SIGTERM:
		s.stopMain(t, req.Signal)
		return &proto.SignalResponse{}, nil
	}
	return nil, executor.JobErrorf("signal %d cannot be delivered: %s", req.Signal, executor.ErrSignalUnsupported)
}

func (s *server) Stats(req *proto.StatsRequest, stream proto.Executor_StatsServer) error {
	t, err := s.current(req.TaskId)
	if err != nil {
		return err
	}
	interval := time.Duration(req.IntervalNanos)
	if interval <= 0 {
		interval = time.Second
	}
	// Samples are sent on the interval's boundaries of the wall clock, so
	// that the streams of the shared executor's many tasks send together
	// and their messages share writes to the driver's connection.
	untilNext := func() time.Duration {
		now := time.Now()
		return now.Truncate(interval).Add(interval).Sub(now)
	}
	tick := time.NewTimer(untilNext())
	defer tick.Stop()
	// The shared executor reports the CPU of the task's own guest (the
	// thread its main instance runs on); an executor of its own, its
	// process's.
	sample, rss := sampleCPU, residentBytes
	if s.shared {
		sample = t.main.sampleCPU
		if t.trigger != nil {
			// In http mode the main instance runs nothing: the task's CPU
			// is its requests' instances'.
			sample = t.trigger.sampleCPU
		}
		rss = func() uint64 { return s.rss.get(interval / 2) }
	}
	prev := sample()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case <-t.main.done:
			return nil
		case <-s.quit:
			return nil
		case <-tick.C:
			tick.Reset(untilNext())
		}
		cur := sample()
		user, system, total := cur.percent(prev)
		prev = cur
		err := stream.Send(&proto.StatsResponse{
			TimestampUnixNano: cur.at.UnixNano(),
			Pid:               int32(os.Getpid()),
			RssBytes:          rss(),
			CpuUserPercent:    user,
			CpuSystemPercent:  system,
			CpuPercent:        total,
			CpuUserSeconds:    cur.user.Seconds(),
			CpuSystemSeconds:  cur.system.Seconds(),
			LinearMemoryBytes: t.linearMemory(),
			Shared:            s.shared,
		})
		if err != nil {
			return err
		}
	}
}

// Exec runs a command module from the task's view as a new instance in the
// task's sandbox: the task's mounts, environment, memory cap and engine.
// The task's own module runs as an instance of the task's program; another
// module gets a program of its own, kept for the next exec. Nothing is
// compiled again for an exec of a module already run.
func (s *server) Exec(stream proto.Executor_ExecServer) error {
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	t, err := s.current(first.TaskId)
	if err != nil {
		return err
	}
	if first.Module == "" {
		return executor.JobErrorf("name a WebAssembly command module in the task's view to run, for example /local/tool.wasm")
	}
	prog, release, err := s.execProgram(stream.Context(), t, first.Module)
	if err != nil {
		return err
	}
	defer release()

	stdin, stdinW := io.Pipe()
	defer stdin.Close()
	s.wg.Go(func() {
		// Feeds the guest's stdin until the caller closes it or goes away
		// (the stream ends when Exec returns); either way the guest then
		// reads end of file.
		for {
			msg, err := stream.Recv()
			if err != nil {
				_ = stdinW.Close()
				return
			}
			if len(msg.Stdin) > 0 {
				if _, err := stdinW.Write(msg.Stdin); err != nil {
					return
				}
			}
			if msg.StdinClosed {
				_ = stdinW.Close()
			}
		}
	})

	out := &execOutput{stream: stream}
	in, err := prog.start(runOptions{argv0: path.Base(first.Module), args: first.Args, streams: stdio{stdin: stdin, stdout: out.writer(false), stderr: out.writer(true)}})
	if err != nil {
		return err
	}
	select {
	case <-in.done:
	case <-stream.Context().Done():
		in.stop(int32(syscall.SIGKILL))
		<-in.done
		return stream.Context().Err()
	}
	return out.send(&proto.ExecResponse{Exit: in.status})
}

// execProgram returns the program that runs module for exec, and a
// function to call when the exec is done with it. A released task takes no
// exec; one that comes before is counted (task.execs), so that release
// waits for it before it closes what the exec uses.
func (s *server) execProgram(ctx context.Context, t *task, module string) (*program, func(), error) {
	t.execMu.Lock()
	if t.execClosed {
		t.execMu.Unlock()
		return nil, nil, executor.NodeErrorf("the task has been released: it takes no exec")
	}
	t.execs.Add(1)
	t.execMu.Unlock()
	p, done, err := s.execProgramOf(ctx, t, module)
	if err != nil {
		t.execs.Done()
		return nil, nil, err
	}
	return p, func() {
		done()
		t.execs.Done()
	}, nil
}

func (s *server) execProgramOf(ctx context.Context, t *task, module string) (*program, func(), error) {
	spec := t.prog.spec
	b, digest, err := spec.View.read(module, t.req.MaxModuleBytes)
	if err != nil {
		return nil, nil, err
	}
	// An exec runs beside the task's instance, so it needs a program with
	// the per-loop check: the task's own, or one of its own.
	if digest == t.prog.digest && spec.Entrypoint == "_start" && spec.Interruptible {
		return t.prog, func() {}, nil
	}
	t.execMu.Lock()
	p, ok := t.execPrograms[digest]
	t.execMu.Unlock()
	if ok {
		return p, func() {}, nil
	}
	spec.Module, spec.Sha256, spec.Entrypoint, spec.Interruptible = module, "", "_start", interruptible(true)
	p, err = loadProgram(ctx, t.logger.Named("exec"), s.moduleCache(t.req.CacheDir, t.logger), spec, b, digest, nil)
	if err != nil {
		return nil, nil, err
	}
	// A task stopped while the program loaded, or later, stops this one
	// too; the hook goes with the program.
	unhook := context.AfterFunc(t.prog.ctx, func() { p.stop(t.prog.stoppedBy()) })
	closeProgram := func() {
		unhook()
		p.close()
	}
	t.execMu.Lock()
	defer t.execMu.Unlock()
	if prior, ok := t.execPrograms[digest]; ok {
		// Another exec of the module loaded it meanwhile.
		closeProgram()
		return prior, func() {}, nil
	}
	if !t.execClosed && len(t.execPrograms) < maxExecPrograms {
		t.execPrograms[digest] = p
		return p, func() {}, nil
	}
	return p, closeProgram, nil
}

// execOutput sends an exec'd guest's output; gRPC streams take one sender
// at a time.
type execOutput struct {
	mu     sync.Mutex
	stream proto.Executor_ExecServer
}

func (o *execOutput) send(r *proto.ExecResponse) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.stream.Send(r)
}

func (o *execOutput) writer(stderr bool) io.WriteCloser { return execWriter{o, stderr} }

type execWriter struct {
	out    *execOutput
	stderr bool
}

func (w execWriter) Write(p []byte) (int, error) {
	b := bytes.Clone(p)
	r := &proto.ExecResponse{Stdout: b}
	if w.stderr {
		r = &proto.ExecResponse{Stderr: b}
	}
	if err := w.out.send(r); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (execWriter) Close() error { return nil }
