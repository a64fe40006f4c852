// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

// withCustomSection returns module b with a custom section appended: the
// same program under another digest.
func withCustomSection(b []byte, name string) []byte {
	payload := append(append([]byte{byte(len(name))}, name...), 1)
	return append(append(append([]byte{}, b...), 0, byte(len(payload))), payload...)
}

// TestExecReusesPrograms: exec of the task's module runs an instance of
// the task's program, and another module gets a program once, kept for
// the next exec, until its content changes.
func TestExecReusesPrograms(t *testing.T) {
	t.Parallel()
	local := t.TempDir()
	testmodule.Install(t, "probe", local, "probe.wasm")
	probe, err := os.ReadFile(filepath.Join(local, "probe.wasm"))
	must.NoError(t, err)
	tool := filepath.Join(local, "tool.wasm")
	must.NoError(t, os.WriteFile(tool, withCustomSection(probe, "a"), 0o644))

	s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
	req := &proto.StartRequest{
		Module: "/local/probe.wasm", Args: []string{"sleep", "60000"}, Entrypoint: "_start", Engine: executor.EngineAuto,
		Mounts: []*proto.Mount{{GuestPath: "/local", HostPath: local}}, CacheDir: t.TempDir(),
	}
	tk, err := s.start(context.Background(), req, nil)
	must.NoError(t, err)
	t.Cleanup(func() {
		tk.prog.stop(int32(syscall.SIGTERM))
		select {
		case <-tk.run.done():
		case <-time.After(10 * time.Second):
			t.Error("the task did not stop")
		}
		for _, p := range tk.execPrograms {
			p.close()
		}
		tk.prog.close()
	})

	// A command task's program has no per-loop check; an exec, which
	// shares the process, gets a program of the same module with it, once.
	p, release, err := s.execProgram(context.Background(), tk, "local/probe.wasm")
	must.NoError(t, err)
	release()
	must.False(t, tk.prog.spec.Interruptible)
	must.True(t, p != tk.prog && p.spec.Interruptible, must.Sprint("exec of a command task's module must get an interruptible program"))
	same, release, err := s.execProgram(context.Background(), tk, "local/probe.wasm")
	must.NoError(t, err)
	release()
	must.True(t, same == p, must.Sprint("a second exec of the task's module compiled it again"))

	toolProg, release, err := s.execProgram(context.Background(), tk, "/local/tool.wasm")
	must.NoError(t, err)
	release()
	must.True(t, toolProg != tk.prog)
	again, release, err := s.execProgram(context.Background(), tk, "/local/tool.wasm")
	must.NoError(t, err)
	release()
	must.True(t, again == toolProg, must.Sprint("a second exec of a module must not load it again"))

	// A changed file is a new program, never the stale one.
	must.NoError(t, os.WriteFile(tool, withCustomSection(probe, "b"), 0o644))
	changed, release, err := s.execProgram(context.Background(), tk, "/local/tool.wasm")
	must.NoError(t, err)
	release()
	must.True(t, changed != toolProg)
	must.NotEq(t, toolProg.digest, changed.digest)

	// An instance of the task's program runs beside the task's own.
	out := &collect{}
	in, err := tk.prog.start(runOptions{argv0: "probe.wasm", args: []string{"hello"}, streams: stdio{stdout: out, stderr: out}})
	must.NoError(t, err)
	<-in.ended
	must.Zero(t, in.status.ExitCode)
	must.StrContains(t, out.String(), "hello from wasm")
	select {
	case <-tk.run.done():
		t.Fatal("the task's own instance ended with the exec'd one")
	default:
	}
}

type collect struct{ b []byte }

func (c *collect) Write(p []byte) (int, error) { c.b = append(c.b, p...); return len(p), nil }
func (c *collect) Close() error                { return nil }
func (c *collect) String() string              { return string(c.b) }
