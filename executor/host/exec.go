// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"bytes"
	"context"
	"io"
	"path"
	"sync"
	"syscall"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// maxExecPrograms bounds the programs an executor keeps for modules other
// than the task's that nomad alloc exec runs (a script check's tool, say),
// so that running one again does not compile it again.
const maxExecPrograms = 4

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
	case <-in.ended:
	case <-stream.Context().Done():
		in.stop(int32(syscall.SIGKILL))
		<-in.ended
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
	// In the shared executor, from the cache only: the driver has the
	// module compiled in the task's cgroups before it sends the exec.
	p, err = loadProgram(ctx, t.logger.Named("exec"), s.moduleCache(t.req.CacheDir, t.logger, spec.Engine), spec, b, digest, nil)
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
