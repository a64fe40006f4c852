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
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/logfile"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/modcache"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// instantiateTimeout bounds the start function of the task's command
// instance: compiled without the per-loop check, a start function that
// never returns cannot be stopped, and Start would never answer. One still
// running then fails the Start (a job error) and leaves the executor to
// end, by the driver's kill or failedStartLinger, which ends the guest.
// (The HTTP trigger's and exec's instances are bounded by their own
// contexts.)
const instantiateTimeout = 10 * time.Second

// failedStartLinger is how long an executor whose Start failed waits for
// another Start before it exits. The driver normally kills it at once; this
// bounds its life if the driver never does.
const failedStartLinger = 30 * time.Second

func (s *server) Start(ctx context.Context, req *proto.StartRequest) (*proto.StartResponse, error) {
	trace := executor.NewTrace(executor.StartSpanNames)
	s.startMu.Lock()
	defer s.startMu.Unlock()
	gen, err := s.admit(req)
	if err != nil {
		return nil, err
	}
	trace.Mark(executor.SpanAdmit)
	t, err := s.start(ctx, req, trace)
	if err != nil {
		if !s.shared {
			s.warm.dropBlank()
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
	// A blank runtime the start did not use (see warmSet.dropBlank) goes
	// first.
	switch {
	case s.shared:
		s.trimSoon()
		s.wg.Go(func() { s.forgetAfter(t) })
	case s.gcOff:
		s.wg.Go(func() {
			s.warm.dropBlank()
			s.collectWhileBlocked(t.command)
		})
	default:
		s.wg.Go(func() {
			s.warm.dropBlank()
			debug.FreeOSMemory()
			trimBinaryPages()
		})
	}
	if !s.shared {
		s.wg.Go(func() { s.exitAfter(t) })
	}
	trace.Mark(executor.SpanReply)
	spans := trace.Spans()
	if t.logger.IsDebug() {
		t.logger.Debug("start spans", executor.SpanLogArgs(spans)...)
	}
	p := t.prog
	return &proto.StartResponse{CacheHit: p.cacheHit, LoadNanos: p.loadTook.Nanoseconds(), ModuleSha256: p.digest,
		MemoryLimitPages: p.limit, Engine: p.spec.Engine, CacheRepaired: p.repaired, Prepared: p.prepared, Spans: spans}, nil
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
// only the program it made may keep a prepared module. trace times its
// steps.
func (s *server) start(ctx context.Context, req *proto.StartRequest, trace *executor.Trace) (_ *task, err error) {
	defer s.warm.take(nil, "", false)
	if s.shared && s.user.Load() != nil && req.NetworkNamespace != "" && req.Outbound != nil && len(req.Outbound.Rules) > 0 {
		return nil, executor.OperatorErrorf("outbound connections from a task with bridge networking need an executor of the task's own: this node runs its tasks in its shared executor, which runs as an unprivileged user and cannot enter the allocation's network namespace; set shared_executor = false, or use host networking")
	}
	files, err := s.openFiles(req)
	if err != nil {
		return nil, err
	}
	trace.Mark(executor.SpanOpen)
	t := &task{id: req.TaskId, req: req, files: files, logger: s.logger, execPrograms: map[string]*program{}, released: make(chan struct{}), releaseDone: make(chan struct{})}
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
	network, err := newTaskNetwork(req.Outbound, req.NetworkNamespace, t.logger)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			network.close()
		}
	}()
	spec := programSpec{
		Module: req.Module, Sha256: req.Sha256, Pulled: req.ModuleFilePulled, Engine: engine, Entrypoint: req.Entrypoint, Env: req.Env,
		Network: network,
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
		return nil, unreachable("the task's log", logPath(req), err)
	}
	trace.Mark(executor.SpanLogs)
	if err := joinCgroups(req.Cgroups); err != nil {
		closeStdio(streams)
		return nil, executor.NodeErrorf("%v", err)
	}
	trace.Mark(executor.SpanCgroupJoin)
	began := time.Now()
	resume := func() {}
	if !s.shared {
		resume = s.pauseCollection()
	}
	prog, read, err := s.load(ctx, t.logger, req, spec, engine, files, trace)
	resume()
	if err != nil {
		closeStdio(streams)
		return nil, err
	}
	loaded := time.Since(began)
	t.prog = prog
	if req.Http != nil {
		t.run, err = prog.serveHTTP(triggerHost{shared: s.shared, spawn: s.wg.Go}, req.Http, req.Args, req.NetworkNamespace, streams, files.stateDir, runAs)
	} else {
		if !spec.Interruptible {
			s.disableGC()
		}
		t.command, err = prog.start(runOptions{argv0: path.Base(req.Module), args: req.Args, streams: streams, stateDir: files.stateDir,
			listeners: req.Listeners, netns: req.NetworkNamespace, instantiateTimeout: s.instantiateTimeout, ownThread: s.shared, runAs: runAs, trace: trace})
		if err == nil {
			t.run = t.command
		}
	}
	trace.Mark(executor.SpanInstantiate)
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
// through the node's cache. It also says how long reading took; trace
// times its steps (read, compile, remember).
func (s *server) load(ctx context.Context, logger hclog.Logger, req *proto.StartRequest, spec programSpec, engine string, files *taskFiles, trace *executor.Trace) (*program, time.Duration, error) {
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
	// module is b as the shared executor's kept set may hold it: not a
	// mapping of the file.
	var module []byte
	if warm == nil {
		warm, digest, module = s.kept.take(b, engine, spec.Interruptible)
	}
	if warm == nil {
		if mapped {
			// wazero may keep parts of the binary it compiles.
			b = bytes.Clone(b)
		}
		digest = moduleDigest(b)
		module = b
	}
	read := time.Since(began)
	trace.Mark(executor.SpanRead)
	cache := s.moduleCache(req.CacheDir, logger, engine)
	if warm == nil {
		// The runtime the spare made ahead, which the compile takes for
		// a module in the cache (see warmSet.blankFor).
		cache.Blank = s.warm.blankFor(engine, spec.Interruptible)
	}
	prog, err := loadProgram(ctx, logger, cache, spec, b, digest, warm)
	if err != nil {
		return nil, 0, err
	}
	if s.kept != nil && module != nil {
		key := keptKey{digest: digest, engine: engine, interruptible: spec.Interruptible}
		prog.keep = func(c *compiled) bool { return s.kept.keep(key, module, c) }
	}
	trace.Mark(executor.SpanCompile)
	if prog.repaired != "" {
		logger.Warn("the module's compiled entry in the node's cache was damaged and has been replaced", "sha256", digest, "error", prog.repaired)
	}
	// Recorded before Start returns: the driver launches the next spare
	// then, and it reads the record to prepare this module. (Not by an
	// executor that runs as a task's user: it writes nothing there.)
	if !cache.ReadOnly {
		if err := cache.Remember(digest, b); err != nil {
			logger.Warn("cannot record the module as recently started", "error", err)
		}
	}
	trace.Mark(executor.SpanRemember)
	return prog, read, nil
}

// moduleCache is the node's compiled-module cache in dir as this executor
// may use it: read-only once it runs as a task's user.
//
// The shared executor, whatever user it runs as, compiles nothing for the
// compiler (CachedOnly): compiling takes many times a module's size, which
// in its one process no task's memory bounds; a module the cache lacks is
// NotCompiled, and the driver compiles it in the task's cgroups
// (executor.Compile). The interpreter has no cached code: that executor
// prepares it for the interpreter itself.
func (s *server) moduleCache(dir string, logger hclog.Logger, engine string) modcache.Cache {
	c := modcache.Cache{Dir: dir, Logger: logger, Validate: validateConfig(), CachedOnly: s.shared && engine == executor.EngineCompiler}
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
		// Already the user (root, where the operator allows it), but for
		// its supplementary groups, which a spare took for the default
		// user (takeGroups).
		if err := setGroups(want.Groups); err != nil {
			return nil, executor.NodeErrorf("set the supplementary groups of user %s: %v", want.Name, err)
		}
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

// exitAfter stops serving lingerAfterExit after the task has ended. A driver that collects the status ends the executor sooner; this
// bounds how long an executor outlives a guest whose driver never came
// back.
func (s *server) exitAfter(t *task) {
	select {
	case <-t.run.done():
	case <-s.quit:
		return
	}
	linger := lingerAfterExit
	if t.command != nil && t.command.abandoned.Load() {
		linger = lingerAfterAbandon
	}
	timer := time.NewTimer(linger)
	defer timer.Stop()
	select {
	case <-timer.C:
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
