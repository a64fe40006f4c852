// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/memory"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/wasi"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// stdio is an instance's standard streams. The instance owns stdout and
// stderr from the moment it is started, and closes them when it exits.
type stdio struct {
	stdin          io.Reader // nil: empty
	stdout, stderr io.WriteCloser
}

// instance is one run of a program: its arguments, its standard streams,
// its linear memory and how it exited.
type instance struct {
	prog   *program
	module api.Module
	stdout io.WriteCloser
	stderr io.WriteCloser

	// calls counts the host calls the instance has made and is inside,
	// kept by the WASI host's guard when its program has no per-loop check
	// (read by watchStop and the collector's watch, gc.go).
	calls wasi.HostCallCount
	// hostReturn holds a guest coming back from a host call while a
	// collection runs under it (whileInHost): a guest without the
	// per-loop check that went back to its own code would stall the
	// collection's stop of the world (gc.go).
	hostReturn sync.RWMutex

	// memBytes is the size of the instance's linear memory, kept by the
	// memory allocator so that stats never read wazero's memory
	// concurrently.
	memBytes atomic.Uint64

	// ctx ends when the instance or its program is stopped.
	ctx        context.Context
	cancel     context.CancelFunc
	stopOnce   sync.Once
	stopSignal atomic.Int32

	ended      chan struct{}
	status     *proto.ExitStatus // set before ended is closed
	finishOnce sync.Once
	// stateDir, when set, is where the exit status is recorded.
	stateDir *os.Root
	// abandoned: the instance was recorded as stopped while it still ran
	// in its own code (see abandon).
	abandoned atomic.Bool

	// budget is shared with the instances beside this one, or nil; held is
	// what this instance took from it before its memory existed, and
	// budgetDenied says the budget refused it memory.
	budget       *memory.Budget
	held         uint64
	budgetDenied atomic.Bool
	quiet        bool
	pool         *memory.Pool
	// args and environ are the guest's arguments and environment.
	args    []string
	environ environ
	// table is the guest's descriptor table (the WASI host's): its
	// streams, its mounts, the listeners granted to it and what it opened
	// and accepted. It is closed when the instance is released.
	table *wasi.Table
	// call is the instance's call context; init and entry its
	// initialiser (reactors') and entrypoint (see run).
	call        context.Context
	init, entry api.Function
	// ownThread: the guest runs on an OS thread of its own, tid, whose
	// CPU time is the guest's (the shared executor's main instances).
	ownThread bool
	tid       atomic.Int32
}

// runOptions says how to run one instance of a program.
type runOptions struct {
	argv0   string
	args    []string
	streams stdio
	// stateDir, when set, is where the exit status is recorded
	// (executor.WriteExitStatus) before ended closes.
	stateDir *os.Root
	// ctx bounds the instance; nil means the program's stop context.
	ctx context.Context
	// timeout, when set, bounds the instance from its start: its context
	// then ends with context.DeadlineExceeded.
	timeout time.Duration
	// env is added to the program's environment (it wins on a clash):
	// entries fit for a guest, with unique names (envOf, cgi.Env).
	env environ
	// listeners are bound (in netns, when set) and preopened after the
	// mounts; only the task's main instance gets them.
	listeners []*proto.Listener
	netns     string
	// budget, when set, is shared by instances that run side by side (the
	// HTTP trigger's): their linear memories together stay within it.
	budget *memory.Budget
	// pool, when set, lends the instance a mapping for its memory that an
	// instance before it used (zeroed).
	pool *memory.Pool
	// quiet: no log line per instance (one per HTTP request would be a
	// synchronous write per request).
	quiet bool
	// instantiateTimeout, when set, bounds the instantiation of a module
	// with a start function (its WebAssembly start section, which runs
	// before any export): one that has not returned by then is a job
	// error, and the caller must end the process, where it still runs (see
	// server.instantiateTimeout).
	instantiateTimeout time.Duration
	// ownThread: run the guest on an OS thread of its own, so that its CPU
	// time can be told apart from its neighbours' (instance.sampleCPU).
	ownThread bool
	// runAs: the executor becomes this user for good as it instantiates
	// (see asUserOnThread); the main instance of a task that runs as
	// another user than the executor's.
	runAs *proto.RunAs
	// trace, when set, times the start's steps (the task's main
	// instance).
	trace *executor.Trace
}

// errNoMemory: an instance could not get its initial memory from its budget.
var errNoMemory = errors.New("the task's memory is taken by the instances already running")

// start instantiates the program as opts says and runs its entrypoint in
// the background (run): the task's command instance, an exec's.
func (p *program) start(opts runOptions) (*instance, error) {
	in, err := p.instantiate(opts)
	if err != nil {
		return nil, err
	}
	go in.run()
	return in, nil
}

// instantiate makes an instance of the program as opts says, ready to run
// (run), on whatever goroutine the caller chooses: an HTTP handler runs it
// on its own, whose stack has already grown to what the guest needs. On a
// failure the instance's streams are closed, as run closes them.
func (p *program) instantiate(opts runOptions) (_ *instance, err error) {
	in := &instance{prog: p, stdout: opts.streams.stdout, stderr: opts.streams.stderr, ended: make(chan struct{}), budget: opts.budget, quiet: opts.quiet,
		pool: opts.pool, stateDir: opts.stateDir, ownThread: opts.ownThread}
	parent := opts.ctx
	if parent == nil {
		parent = p.ctx
	}
	if opts.timeout > 0 {
		in.ctx, in.cancel = context.WithTimeout(parent, opts.timeout)
	} else {
		in.ctx, in.cancel = context.WithCancel(parent)
	}
	defer func() {
		if err != nil {
			in.release()
		}
	}()
	if in.budget != nil {
		// The initial memory is taken from the budget before wazero asks
		// for it: wazero cannot take a refusal of the initial memory.
		if !in.budget.Reserve(p.minBytes) {
			in.budgetDenied.Store(true)
			return nil, errNoMemory
		}
		in.held = p.minBytes
	}
	in.args = append([]string{opts.argv0}, opts.args...)
	in.table = wasi.NewTable(wasi.Stdio{In: opts.streams.stdin, Out: opts.streams.stdout, Err: opts.streams.stderr})
	for _, m := range p.spec.View {
		in.table.Preopen(m.GuestPath, m.fs)
	}
	if p.spec.Network != nil {
		in.table.SetNetwork(p.spec.Network)
	}
	// The environment: the program's, then the instance's own variables
	// (which win), served by the WASI host's environ_get (Environ).
	extra := opts.env
	if len(opts.listeners) > 0 {
		vars := map[string]string{}
		for _, kv := range opts.env {
			k, v, _ := strings.Cut(kv, "=")
			vars[k] = v
		}
		for i, l := range opts.listeners {
			vars[executor.ListenerEnv(l.Label)] = strconv.Itoa(p.firstListenerFD() + i)
		}
		extra = envOf(vars)
	}
	in.environ = p.instanceEnviron(extra)
	ctx := experimental.WithMemoryAllocator(in.ctx, experimental.MemoryAllocatorFunc(in.allocate))
	ctx = wasi.WithInstance(ctx, in)
	// The listeners are bound as the guest is instantiated: in the
	// allocation's network namespace when there is one, and by the task's
	// user when the executor becomes it.
	// A start function that spins past the bound is ended by the stop of
	// its context where it has the per-loop check; without it, it cannot
	// be, and the program is marked stuck.
	var cancelSpin func()
	if p.spec.Interruptible {
		cancelSpin = in.cancel
	}
	// Only a start function runs guest code while instantiating: without
	// one, instantiation ends however long a busy node makes it take, and
	// is not a job error.
	bound := opts.instantiateTimeout
	if !p.hasStart {
		bound = 0
	}
	// The start's trace times becoming the user apart (executor.SpanUser),
	// where instantiation runs on the caller's behalf alone: a start
	// function's instantiation may outlive its bound on a goroutine of its
	// own.
	trace := opts.trace
	if bound > 0 {
		trace = nil
	}
	in.module, err = instantiateWithin(bound, cancelSpin, func() (api.Module, error) {
		if opts.runAs != nil {
			return asUserOnThread(opts.runAs, opts.netns, p.hasStart, func() (api.Module, error) {
				if err := in.listen(opts.listeners); err != nil {
					return nil, err
				}
				return p.runtime.InstantiateModule(ctx, p.module, p.config)
			}, func(m api.Module) { _ = m.Close(context.Background()) }, trace)
		}
		var mod api.Module
		err := inNetNS(opts.netns, func() error {
			if err := in.listen(opts.listeners); err != nil {
				return err
			}
			var err error
			mod, err = p.runtime.InstantiateModule(ctx, p.module, p.config)
			return err
		})
		return mod, err
	})
	var drop errDrop
	if errors.As(err, &drop) {
		return nil, executor.NodeErrorf("cannot run the task as user %s: %v", opts.runAs.Name, drop.error)
	}
	var netns errNetNS
	if errors.As(err, &netns) {
		return nil, executor.NodeErrorf("module %s: %v", p.spec.Module, netns.error)
	}
	if errors.Is(err, errInstantiateTimeout) {
		if cancelSpin == nil {
			p.stuck.Store(true)
		}
		return nil, executor.JobErrorf("module %s: its start function (the WebAssembly start section, which runs before _start) did not return within %v; a module's start function must initialise and return", p.spec.Module, opts.instantiateTimeout)
	}
	if err != nil {
		if len(opts.listeners) > 0 && isBindError(err) {
			return nil, executor.NodeErrorf("module %s: cannot bind its listeners (%s): %v", p.spec.Module, describeListeners(opts.listeners), err)
		}
		return nil, executor.JobErrorf("module %s failed to instantiate: %v", p.spec.Module, err)
	}
	in.call = ctx
	in.entry = in.module.ExportedFunction(p.spec.Entrypoint)
	if p.spec.Entrypoint != "_start" {
		// A reactor is initialised before any other export is called.
		in.init = in.module.ExportedFunction("_initialize")
	}
	return in, nil
}

// listen binds the listeners granted to the instance, in the calling
// thread's network namespace, and adds them to its table after its
// mounts, in their order: the descriptors firstListenerFD tells the guest.
func (in *instance) listen(ls []*proto.Listener) error {
	for _, l := range ls {
		s, err := wasi.Listen(executor.ListenerAddress(l))
		if err != nil {
			return err
		}
		in.table.AddListener(s)
	}
	return nil
}

// errDrop is a failure to become the task's user (see becomeUser).
type errDrop struct{ error }

func (e errDrop) Unwrap() error { return e.error }

// errInstantiateTimeout: instantiation did not end within its bound.
var errInstantiateTimeout = errors.New("instantiation did not end in time")

// instantiateWithin runs instantiate, waiting for it at most timeout (no
// bound when 0). After the timeout it returns errInstantiateTimeout: with
// cancel (code with the per-loop check), once cancel has ended
// instantiate; without, leaving it running, since code without the check
// cannot be stopped but by the end of the process.
func instantiateWithin(timeout time.Duration, cancel func(), instantiate func() (api.Module, error)) (api.Module, error) {
	if timeout <= 0 {
		return instantiate()
	}
	type result struct {
		mod api.Module
		err error
	}
	done := make(chan result, 1)
	go func() {
		mod, err := instantiate()
		done <- result{mod, err}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-done:
		return r.mod, r.err
	case <-t.C:
		if cancel != nil {
			cancel()
			if r := <-done; r.mod != nil {
				_ = r.mod.Close(context.Background())
			}
		}
		return nil, errInstantiateTimeout
	}
}

// allocate backs the instance's linear memory and enforces the program's
// cap, and the budget when the instance has one: a grow past either fails
// inside the guest (memory.grow returns -1).
//
// The memory is mapped outside the Go heap (see memory.Linear): it costs the
// garbage collector nothing, and the pages it reserves up to the cap are
// committed by the kernel only as the guest touches them.
func (in *instance) allocate(_, limit uint64) experimental.LinearMemory {
	m := memory.NewLinear(min(limit, uint64(in.prog.limit)*executor.PageSize), &in.memBytes, in.pool, in.prog.comp.image)
	if in.budget != nil {
		m.ChargeTo(in.budget, in.held, &in.budgetDenied)
		in.held = 0 // the memory holds it now, and gives it back when freed
	}
	return m
}

// outcome is how one run of an instance ended, as whoever ran it reads it.
type outcome struct {
	status *proto.ExitStatus
	// timedOut: the instance's own timeout (runOptions.timeout) ended it.
	timedOut bool
	// memoryDenied: its budget refused it memory at some point.
	memoryDenied bool
}

// run calls the entrypoint, records how the instance ended, releases it
// and says how it ended.
func (in *instance) run() outcome {
	if in.ownThread {
		// Never unlocked: the thread ends with the goroutine, and with it
		// the count of its CPU time.
		runtime.LockOSThread()
		in.tid.Store(int32(threadID()))
	}
	var err error
	if in.init != nil {
		_, err = in.init.Call(in.call)
	}
	if err == nil {
		_, err = in.entry.Call(in.call)
	}
	status, detail := in.statusOf(err)
	if detail != "" {
		// The whole trap, stack trace included, goes to the guest's stderr;
		// the status carries its first line.
		fmt.Fprintf(in.stderr, "%s\n", detail)
	}
	if !in.quiet {
		in.prog.logger.Info("guest exited", "exit_code", status.ExitCode, "signal", status.Signal, "error", status.Error)
	}
	timedOut := errors.Is(in.ctx.Err(), context.DeadlineExceeded)
	in.release()
	in.finish(status)
	return outcome{status: in.status, timedOut: timedOut, memoryDenied: in.budgetDenied.Load()}
}

// interrupt ends the instance where it runs, as its context's end does,
// recording no signal: its caller (the HTTP trigger) says why it ended.
func (in *instance) interrupt() { in.cancel() }

// finish records how the instance ended, once: by run, or by abandon
// before it.
func (in *instance) finish(status *proto.ExitStatus) {
	in.finishOnce.Do(func() {
		if err := executor.WriteExitStatus(in.stateDir, status); err != nil {
			in.prog.logger.Error("cannot record exit status", "error", err)
		}
		in.status = status
		close(in.ended)
	})
}

// abandon records a stopped instance that is still running in its own code
// (compiled without the per-loop check, it cannot be reached from inside
// the process) as ended by its stop's signal, as the check would have
// ended it. Its module and memory stay: the guest still runs in them until
// its executor exits, which is what ends it (see server.watchStop). Its
// output needs no flush: the guest's writes are not buffered here, and it
// can make no more (the WASI host's guard ends it at its next host call).
func (in *instance) abandon() {
	sig := in.stopSignal.Load()
	if sig == 0 {
		sig = in.prog.stoppedBy()
	}
	in.abandoned.Store(true)
	in.finish(&proto.ExitStatus{ExitCode: 128 + sig, Signal: sig, ExitedAtUnixNano: time.Now().UnixNano()})
}

// statusOf maps how the entrypoint returned to a process-like exit
// status, and for a trap the whole message with wazero's stack trace.
func (in *instance) statusOf(err error) (*proto.ExitStatus, string) {
	s := &proto.ExitStatus{ExitedAtUnixNano: time.Now().UnixNano()}
	var exit *sys.ExitError
	stopSig := in.stopSignal.Load()
	if stopSig == 0 {
		stopSig = in.prog.stoppedBy()
	}
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.ExitCode() != 0 && stopSig != 0:
		// Stopped: wazero ended it, or it gave up on a host call that the
		// stop failed (a socket shut down under it). Guests do not see
		// signals, so whatever ended it after the stop is the stop.
		s.Signal = stopSig
		s.ExitCode = 128 + stopSig
	case errors.As(err, &exit):
		s.ExitCode = int32(exit.ExitCode())
	default:
		// Anything else the call returns is a trap: the first line names it,
		// the rest is wazero's stack trace.
		detail := "wasm trap: " + strings.TrimPrefix(err.Error(), "wasm error: ")
		s.ExitCode = executor.TrapExitCode
		s.Error, _, _ = strings.Cut(detail, "\n")
		return s, detail
	}
	return s, ""
}

// stop asks the instance to stop: its context is cancelled, which wazero
// observes at the next function call or loop iteration, and a sleep in
// progress is cut short.
func (in *instance) stop(signal int32) {
	in.stopOnce.Do(func() {
		in.stopSignal.Store(signal)
		in.cancel()
	})
}

// closeResources makes sure that wazero has released what the closed
// module instance held: its open files (the mounts' directories among
// them) and its linear memory. wazero closes a module whose context is
// cancelled while the guest is inside a host call without releasing
// those, and leaves it to the module's next check of its context, which
// never comes when the host call then ends the guest (a sleep cut short,
// a socket shut down under it): Close, finding the module closed, does
// nothing. A call with the cancelled context makes that check and
// returns at once, without running guest code. (Only modules with the
// per-loop check are closed that way; an executor of its own never
// leaks, since its process ends with its task.)
func (in *instance) closeResources() {
	if !in.prog.spec.Interruptible {
		return
	}
	for name := range in.module.ExportedFunctionDefinitions() {
		if fn := in.module.ExportedFunction(name); fn != nil {
			_, _ = fn.Call(in.ctx)
		}
		return
	}
}

// release closes the module instance and the instance's streams. It is
// called once: by run, or by start when the instance cannot start.
func (in *instance) release() {
	// Stopped while it ran (its context ended before this release): wazero
	// may have closed it without releasing its resources.
	interrupted := in.ctx.Err() != nil
	in.cancel()
	if in.held > 0 {
		// Taken for a memory that was never made.
		in.budget.Release(in.held)
		in.held = 0
	}
	if in.module != nil {
		_ = in.module.Close(context.Background())
		if interrupted {
			in.closeResources()
		}
	}
	if in.table != nil {
		in.table.Close()
	}
	for _, w := range []io.WriteCloser{in.stdout, in.stderr} {
		if w != nil {
			_ = w.Close()
		}
	}
}
