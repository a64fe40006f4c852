// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/internal/wasmtest"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/modcache"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/wasi"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// TestCompileIntoTheBlank: a command task's module found in the cache is
// loaded into the spare's blank runtime and keeps the WASI host made in
// it, which has every function; a module that imports a function with
// another of its signatures (WasmEdge 0.11's sock_accept) gets a WASI host
// of its own in that runtime, with that signature. The warm set offers the
// blank for its engine and kind of code only; one not taken is closed once
// the start is over (dropBlank), or at once when it is made after the
// start.
func TestCompileIntoTheBlank(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	engine := executor.EngineCompiler
	cache := modcache.Cache{Dir: t.TempDir(), Logger: hclog.NewNullLogger(), Validate: validateConfig()}
	load := func(b []byte, blank *modcache.Blank) *compiled {
		t.Helper()
		c := cache
		c.Blank = blank
		comp, err := compile(ctx, c, engine, interruptible(false), moduleDigest(b), "app.wasm", b)
		must.NoError(t, err)
		t.Cleanup(func() { _ = comp.close(ctx) })
		return comp
	}
	newWarmBlank := func() *warmSet {
		t.Helper()
		blank, err := newBlank(ctx, engine)
		must.NoError(t, err)
		w, _ := newWarmSet(engine)
		w.setBlank(blank)
		return w
	}

	plain := wasmtest.Module(wasmtest.Import{Module: wasi.ModuleName, Name: "fd_write", Params: 4, Results: 1})
	load(plain, nil) // into the cache
	w := newWarmBlank()
	must.Nil(t, w.blankFor(engine, interruptible(true)), must.Sprint("the blank is for code without the per-loop check"))
	must.Nil(t, w.blankFor(executor.EngineInterpreter, interruptible(false)))
	blank := w.blankFor(engine, interruptible(false))
	must.NotNil(t, blank)
	comp := load(plain, blank)
	must.True(t, comp.FromBlank)
	must.True(t, comp.Hit)
	host, err := comp.instantiateWASI(ctx)
	must.NoError(t, err)
	must.Eq(t, comp.Runtime.Module(wasi.ModuleName), host, must.Sprint("a second WASI host"))
	must.Greater(t, 20, len(host.ExportedFunctionDefinitions()), must.Sprint("the blank's WASI host has every function"))
	must.NoError(t, checkImports(comp.Module, host))

	// sock_accept(fd, result.fd): the blank's has three parameters.
	v1 := wasmtest.Module(wasmtest.Import{Module: wasi.ModuleName, Name: "sock_accept", Params: 2, Results: 1})
	load(v1, nil)
	w = newWarmBlank()
	comp = load(v1, w.blankFor(engine, interruptible(false)))
	must.True(t, comp.FromBlank)
	must.True(t, comp.Hit)
	host, err = comp.instantiateWASI(ctx)
	must.NoError(t, err)
	must.Eq(t, 2, len(host.ExportedFunctionDefinitions()["sock_accept"].ParamTypes()))
	must.NoError(t, checkImports(comp.Module, host))

	// A blank taken is the program's: dropping it from the set leaves it.
	w = newWarmBlank()
	comp = load(plain, w.blankFor(engine, interruptible(false)))
	must.True(t, comp.FromBlank)
	w.dropBlank()
	must.NotNil(t, comp.Runtime.Module(wasi.ModuleName))

	// One not taken is closed once the start is over, not by take.
	w = newWarmBlank()
	left := w.blank
	w.take(plain, engine, interruptible(false))
	must.NotNil(t, left.Runtime().Module(wasi.ModuleName))
	w.dropBlank()
	must.Nil(t, w.blank)
	must.Nil(t, left.Runtime().Module(wasi.ModuleName), must.Sprint("the blank was not closed"))
	// One made once the set was taken is closed at once.
	blank, err = newBlank(ctx, engine)
	must.NoError(t, err)
	w.setBlank(blank)
	must.Nil(t, w.blank)
	must.Nil(t, blank.Runtime().Module(wasi.ModuleName), must.Sprint("the blank was not closed"))
}

// TestStartFromTheBlank: a spare's Start of a command task whose module is
// in the cache, and which it did not prepare, runs it from the blank
// runtime, whose WASI host has the guard of code without the per-loop
// check: a guest that calls the host in a loop is ended at its next host
// call by the stop, not abandoned. A blank that the start did not take (a
// module not in the cache) is closed once the start is over.
func TestStartFromTheBlank(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	engine, err := resolveEngine(executor.EngineAuto)
	must.NoError(t, err)
	if engine != executor.EngineCompiler {
		t.Skip("the blank runtime is the compiler's")
	}
	start := func(cached bool, args ...string) (*task, *modcache.Blank, *proto.StartRequest, *server) {
		t.Helper()
		s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
		t.Cleanup(s.close)
		// The process's CPU time is the whole test binary's here, not the
		// guest's: a stopped guest is never abandoned, and one that a
		// stop does not reach at a host call never ends.
		s.cpuTime = func() time.Duration { return 0 }
		w, _ := newWarmSet(engine)
		blank, err := newBlank(ctx, engine)
		must.NoError(t, err)
		w.setBlank(blank)
		s.warm = w
		req := httpStartRequest(t, "probe", func(r *proto.StartRequest) { r.Http, r.Args = nil, args })
		if cached {
			f, err := os.Open(filepath.Join(req.Mounts[0].HostPath, "handler.wasm"))
			must.NoError(t, err)
			// Into the cache, as a task's compile leaves it.
			must.NoError(t, compileOnly(compileOptions{cacheDir: req.CacheDir, engine: req.Engine, name: "probe", interruptible: interruptible(false)}, f))
		} else {
			req.CacheDir = t.TempDir()
		}
		_, err = s.Start(ctx, req)
		must.NoError(t, err)
		tk, err := s.current("")
		must.NoError(t, err)
		t.Cleanup(tk.prog.close)
		return tk, blank, req, s
	}

	tk, _, req, s := start(true, "hostloop")
	must.True(t, tk.prog.comp.FromBlank)
	waitUntil(t, func() bool {
		out, _ := os.ReadFile(req.StdoutPath)
		return strings.Contains(string(out), "looping")
	}, "the guest never ran")
	resp, err := s.Stop(ctx, &proto.StopRequest{Signal: 15, TimeoutNanos: int64(20 * time.Second)})
	must.NoError(t, err)
	must.True(t, resp.Exited, must.Sprint("the stop did not reach the guest at its host call"))
	must.Eq(t, 143, tk.run.exitStatus().ExitCode)
	must.False(t, tk.command.abandoned.Load())

	tk, blank, _, _ := start(false, "hello")
	must.False(t, tk.prog.comp.FromBlank)
	waitUntil(t, func() bool { return blank.Runtime().Module(wasi.ModuleName) == nil }, "the blank no start took was not closed")
}
