// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/internal/wasmtest"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/modcache"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/wasi"
)

// TestCompileIntoTheBlank: a command task's module found in the cache is
// loaded into the spare's blank runtime and keeps the WASI host made in
// it, which has every function; a module that imports a function with
// another of its signatures (WasmEdge 0.11's sock_accept) gets a runtime
// and a WASI host of its own, with that signature. The warm set hands the
// blank over once, for its engine and kind of code only; one not taken is
// closed once the start is over (dropBlank), or at once when it is made
// after the start.
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
	must.Nil(t, w.takeBlank(engine, interruptible(true)), must.Sprint("the blank is for code without the per-loop check"))
	must.Nil(t, w.takeBlank(executor.EngineInterpreter, interruptible(false)))
	blank := w.takeBlank(engine, interruptible(false))
	must.NotNil(t, blank)
	must.Nil(t, w.takeBlank(engine, interruptible(false)), must.Sprint("handed over twice"))
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
	comp = load(v1, w.takeBlank(engine, interruptible(false)))
	must.False(t, comp.FromBlank)
	must.True(t, comp.Hit)
	host, err = comp.instantiateWASI(ctx)
	must.NoError(t, err)
	must.Eq(t, 2, len(host.ExportedFunctionDefinitions()["sock_accept"].ParamTypes()))
	must.NoError(t, checkImports(comp.Module, host))

	// A blank not taken is closed once the start is over, not by take.
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
