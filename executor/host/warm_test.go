// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"testing"

	"github.com/shoenig/test/must"
	"github.com/tetratelabs/wazero"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/internal/wasmtest"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/modcache"
)

// The modules of the warm set tests: distinct contents (a tiny module
// and the same with another import), each standing for one digest.
var (
	warmA = wasmtest.Module()
	warmB = wasmtest.Module(wasmtest.Import{Module: "env", Name: "b"})
	warmC = wasmtest.Module(wasmtest.Import{Module: "env", Name: "c"})
)

// newWarmSet is a set prepared for engine, as warmUp makes it, whose
// context it returns.
func newWarmSet(engine string) (*warmSet, context.Context) {
	ctx, cancel := context.WithCancel(context.Background())
	return &warmSet{engine: engine, cancel: cancel, entries: map[string]*warmEntry{}}, ctx
}

// prepared is module b compiled for engine without the per-loop check, as
// prepare leaves it; its runtime is closed when the test ends.
func prepared(t *testing.T, engine string, b []byte) *compiled {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, runtimeConfig(engine, interruptible(false)))
	t.Cleanup(func() { _ = r.Close(ctx) })
	mod, err := r.CompileModule(ctx, b)
	must.NoError(t, err)
	return &compiled{Compiled: modcache.Compiled{Runtime: r, Module: mod}, interruptible: interruptible(false)}
}

// released says whether comp's runtime has been closed.
func released(comp *compiled) bool {
	_, err := comp.Runtime.CompileModule(context.Background(), warmA)
	return err != nil
}

// TestWarmSetReady: ready lists the digests of the modules prepared, in
// order, and not those being prepared or that could not be, once the
// warm-up has settled (none before); a set that was never made has none.
func TestWarmSetReady(t *testing.T) {
	t.Parallel()
	var none *warmSet
	must.Nil(t, none.ready())
	comp, digest := none.take(warmA, executor.EngineInterpreter, false)
	must.Nil(t, comp)
	must.Eq(t, "", digest)

	engine := executor.EngineInterpreter
	w, _ := newWarmSet(engine)
	must.Nil(t, w.ready())
	w.finish(w.add("b", warmB), prepared(t, engine, warmB))
	w.add("c", warmC) // being prepared
	w.finish(w.add("x", []byte("not wasm")), nil)
	must.Nil(t, w.ready(), must.Sprint("the warm-up has not settled"))
	w.settle()
	must.Eq(t, []string{"b"}, w.ready())
	w.finish(w.add("a", warmA), prepared(t, engine, warmA))
	must.Eq(t, []string{"a", "b"}, w.ready())
}

// TestWarmSetTake: the first take ends the set. It returns the prepared
// module whose content, engine and per-loop check match, waiting for it
// if it is being prepared, or nothing; every other module is released, at
// once or as soon as it is prepared, and nothing is prepared after it.
func TestWarmSetTake(t *testing.T) {
	t.Parallel()
	engine := executor.EngineInterpreter
	for _, tc := range []struct {
		name   string
		module []byte
		engine string
		check  bool
		want   string // the digest taken, or ""
		// failC: preparing c, still under way when take is called, fails.
		failC bool
	}{
		{name: "a prepared module", module: warmA, engine: engine, want: "a"},
		{name: "a module being prepared", module: warmC, engine: engine, want: "c"},
		{name: "a module that could not be prepared", module: warmC, engine: engine, failC: true},
		{name: "another module", module: wasmtest.Module(wasmtest.Import{Module: "env", Name: "z"}), engine: engine},
		{name: "another engine", module: warmA, engine: executor.EngineCompiler},
		{name: "with the per-loop check", module: warmA, engine: engine, check: !interruptible(false)},
		{name: "nothing", engine: engine},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			w, ctx := newWarmSet(engine)
			comps := map[string]*compiled{"a": prepared(t, engine, warmA), "b": prepared(t, engine, warmB)}
			w.finish(w.add("a", warmA), comps["a"])
			w.finish(w.add("b", warmB), comps["b"])
			c := w.add("c", warmC)
			if !tc.failC {
				comps["c"] = prepared(t, engine, warmC)
			}

			type taken struct {
				comp   *compiled
				digest string
			}
			done := make(chan taken, 1)
			go func() {
				comp, digest := w.take(tc.module, tc.engine, tc.check)
				done <- taken{comp, digest}
			}()
			// The set is closed first; then c, still being prepared, is done.
			waitUntil(t, func() bool {
				w.mu.Lock()
				defer w.mu.Unlock()
				return w.closed
			}, "take did not close the set")
			must.Error(t, ctx.Err(), must.Sprint("take did not stop the preparation"))
			must.Nil(t, w.add("d", warmB), must.Sprint("a module was added after the take"))
			if tc.want == "c" {
				select {
				case got := <-done:
					t.Fatalf("take returned %v before the module it takes was prepared", got)
				default:
				}
			}
			w.finish(c, comps["c"])
			got := <-done

			must.Eq(t, tc.want, got.digest)
			if tc.want == "" {
				must.Nil(t, got.comp)
			} else {
				must.Eq(t, comps[tc.want], got.comp)
			}
			for digest, comp := range comps {
				must.Eq(t, digest != tc.want, released(comp), must.Sprintf("module %s", digest))
			}
			must.Nil(t, w.ready())
		})
	}
}
