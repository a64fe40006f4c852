// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
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

	// memBytes is the size of the instance's linear memory, kept by the
	// memory allocator so that stats never read wazero's memory
	// concurrently.
	memBytes atomic.Uint64

	// ctx ends when the instance or its program is stopped.
	ctx        context.Context
	cancel     context.CancelFunc
	stopOnce   sync.Once
	stopSignal atomic.Int32

	done   chan struct{}
	status *proto.ExitStatus // set before done is closed
}

// start instantiates the program with argv0 and args and streams, and
// runs its entrypoint in the background. When stateDir is set, the exit
// status is recorded there (executor.WriteExitStatus) before done closes.
func (p *program) start(argv0 string, args []string, streams stdio, stateDir string) (_ *instance, err error) {
	in := &instance{prog: p, stdout: streams.stdout, stderr: streams.stderr, done: make(chan struct{})}
	in.ctx, in.cancel = context.WithCancel(p.ctx)
	defer func() {
		if err != nil {
			in.release()
		}
	}()
	config := wazero.NewModuleConfig().
		// Instances of one program run side by side: none has a name.
		WithName("").
		WithArgs(append([]string{argv0}, args...)...).
		WithStdout(streams.stdout).
		WithStderr(streams.stderr).
		WithFSConfig(p.fsConfig).
		WithSysWalltime().
		WithSysNanotime().
		WithNanosleep(in.sleep).
		WithRandSource(rand.Reader).
		// The entrypoint runs in the background after start returns, not
		// during instantiation.
		WithStartFunctions()
	if streams.stdin != nil {
		config = config.WithStdin(streams.stdin)
	}
	for _, k := range slices.Sorted(maps.Keys(p.spec.Env)) {
		config = config.WithEnv(k, p.spec.Env[k])
	}
	ctx := experimental.WithMemoryAllocator(in.ctx, experimental.MemoryAllocatorFunc(in.allocate))
	if in.module, err = p.runtime.InstantiateModule(ctx, p.module, config); err != nil {
		return nil, executor.JobErrorf("module %s failed to instantiate: %v", p.spec.Module, err)
	}
	fn := in.module.ExportedFunction(p.spec.Entrypoint)
	var init api.Function
	if p.spec.Entrypoint != "_start" {
		// A reactor is initialised before any other export is called.
		init = in.module.ExportedFunction("_initialize")
	}
	go in.run(ctx, init, fn, stateDir)
	return in, nil
}

// sleep is the guest's nanosleep: real time, cut short by a stop request.
// A cut-short sleep does not return to the guest: wazero notices a
// cancelled context only at function calls and loop iterations, and the
// guest could otherwise run on to a normal exit. It ends the guest as
// proc_exit does, with the exit code wazero uses for a cancelled context.
func (in *instance) sleep(ns int64) {
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-in.ctx.Done():
		panic(sys.NewExitError(sys.ExitCodeContextCanceled))
	}
}

// allocate backs the instance's linear memory and enforces the program's
// cap: a grow past it fails inside the guest (memory.grow returns -1).
//
// The memory is mapped outside the Go heap (see mapMemory): it costs the
// garbage collector nothing, and the pages it reserves up to the cap are
// committed by the kernel only as the guest touches them.
func (in *instance) allocate(_, limit uint64) experimental.LinearMemory {
	return newLinearMemory(min(limit, uint64(in.prog.limit)*executor.PageSize), &in.memBytes)
}

// run calls the entrypoint, records how the instance ended and releases it.
func (in *instance) run(ctx context.Context, init, fn api.Function, stateDir string) {
	var err error
	if init != nil {
		_, err = init.Call(ctx)
	}
	if err == nil {
		_, err = fn.Call(ctx)
	}
	status, detail := in.exitStatus(err)
	if detail != "" {
		// The whole trap, stack trace included, goes to the guest's stderr;
		// the status carries its first line.
		fmt.Fprintf(in.stderr, "%s\n", detail)
	}
	in.prog.logger.Info("guest exited", "exit_code", status.ExitCode, "signal", status.Signal, "error", status.Error)
	in.release()
	if err := executor.WriteExitStatus(stateDir, status); err != nil {
		in.prog.logger.Error("cannot record exit status", "error", err)
	}
	in.status = status
	close(in.done)
}

// exitStatus maps how the entrypoint returned to a process-like exit
// status, and for a trap the whole message with wazero's stack trace.
func (in *instance) exitStatus(err error) (*proto.ExitStatus, string) {
	s := &proto.ExitStatus{ExitedAtUnixNano: time.Now().UnixNano()}
	var exit *sys.ExitError
	stopSig := in.stopSignal.Load()
	if stopSig == 0 {
		stopSig = in.prog.stoppedBy()
	}
	switch {
	case err == nil:
	case errors.As(err, &exit) && (exit.ExitCode() == sys.ExitCodeContextCanceled || exit.ExitCode() == sys.ExitCodeDeadlineExceeded) && stopSig != 0:
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

// release closes the module instance and the instance's streams. It is
// called once: by run, or by start when the instance cannot start.
func (in *instance) release() {
	in.cancel()
	if in.module != nil {
		_ = in.module.Close(context.Background())
	}
	for _, w := range []io.WriteCloser{in.stdout, in.stderr} {
		if w != nil {
			_ = w.Close()
		}
	}
}
