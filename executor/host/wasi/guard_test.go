// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"context"
	"testing"

	"github.com/shoenig/test/must"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/internal/wasmtest"
)

// engines are the runtimes the guard is tested in: wazero's interpreter,
// and its default (the compiler, where wazero has one for the platform).
var engines = map[string]func() wazero.RuntimeConfig{
	"interpreter": wazero.NewRuntimeConfigInterpreter,
	"default":     wazero.NewRuntimeConfig,
}

// guardedGuest is a tiny guest that calls fd_close, sched_yield and
// proc_exit of a WASI host instantiated with the guard or without.
func guardedGuest(t *testing.T, config wazero.RuntimeConfig, guard bool) api.Module {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, config)
	t.Cleanup(func() { _ = r.Close(ctx) })
	_, err := Instantiate(ctx, r, guard)
	must.NoError(t, err)
	return wasmtest.Instantiate(t, ctx, r,
		wasmtest.Import{Module: ModuleName, Name: "fd_close", Params: 1, Results: 1},
		wasmtest.Import{Module: ModuleName, Name: "sched_yield", Results: 1},
		wasmtest.Import{Module: ModuleName, Name: "proc_exit", Params: 1},
	)
}

// hostCounts is what the guard told an instance of its host calls.
type hostCounts struct {
	inside int32  // host calls it is inside
	made   uint64 // host calls it made
}

func countsOf(in *testInstance) hostCounts {
	return hostCounts{in.calls.Inside(), in.calls.Made()}
}

// TestGuardHostCalls: with the guard, each host call of an instance is
// counted in and out (a close like any other call), however it ends; a stop ends the guest at its next host call, or as it comes back
// from the one it is in. Without it, nothing is counted or ended.
func TestGuardHostCalls(t *testing.T) {
	t.Parallel()
	for engine, config := range engines {
		for _, tc := range []struct {
			name    string
			guard   bool
			call    string
			stopped bool // before the call
			want    hostCounts
			exit    int // -1: it returns
		}{
			{name: "a host call", guard: true, call: "sched_yield", want: hostCounts{made: 1}, exit: -1},
			{name: "a close", guard: true, call: "fd_close", want: hostCounts{made: 1}, exit: -1},
			{name: "a host call that ends the guest", guard: true, call: "proc_exit", want: hostCounts{made: 1}, exit: 3},
			{name: "a host call after a stop", guard: true, call: "sched_yield", stopped: true, want: hostCounts{made: 1}, exit: int(sys.ExitCodeContextCanceled)},
			// Ended before proc_exit runs, which would end it with its own code.
			{name: "an exit after a stop", guard: true, call: "proc_exit", stopped: true, want: hostCounts{made: 1}, exit: int(sys.ExitCodeContextCanceled)},
			{name: "unguarded", call: "fd_close", want: hostCounts{}, exit: -1},
			{name: "unguarded after a stop", call: "sched_yield", stopped: true, want: hostCounts{}, exit: -1},
		} {
			t.Run(engine+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				mod := guardedGuest(t, config(), tc.guard)
				in := newTestInstance(t)
				if tc.stopped {
					in.stop()
				}
				_, err := mod.ExportedFunction(tc.call).Call(WithInstance(in.ctx, in))
				must.Eq(t, tc.exit, exitCode(err), must.Sprintf("the call returned %v", err))
				if tc.exit == -1 {
					must.NoError(t, err)
				}
				must.Eq(t, tc.want, countsOf(in))
			})
		}
	}
}

// TestGuardHostCallsHoldsReturn: a guest coming back from a host call
// while its instance holds it (LeaveHost has not returned: a collection
// runs) is counted out of the call at once, and waits before it goes back
// to its own code; a stop asked meanwhile ends it there.
func TestGuardHostCallsHoldsReturn(t *testing.T) {
	t.Parallel()
	for engine, config := range engines {
		for _, stop := range []bool{false, true} {
			t.Run(engine+"/"+map[bool]string{false: "returns", true: "stopped"}[stop], func(t *testing.T) {
				t.Parallel()
				mod := guardedGuest(t, config(), true)
				in := newTestInstance(t)
				ctx := WithInstance(in.ctx, in)
				in.held.Lock()
				done := make(chan error, 1)
				go func() {
					_, err := mod.ExportedFunction("sched_yield").Call(ctx)
					done <- err
				}()
				waitUntil(t, func() bool { return countsOf(in) == hostCounts{made: 1} }, "the host call was not counted in and out")
				select {
				case err := <-done:
					in.held.Unlock()
					t.Fatalf("the guest went back to its code while held (%v)", err)
				default:
				}
				if stop {
					in.stop()
				}
				in.held.Unlock()
				err := <-done
				if stop {
					must.Eq(t, int(sys.ExitCodeContextCanceled), exitCode(err))
				} else {
					must.NoError(t, err)
				}
				must.Eq(t, hostCounts{made: 1}, countsOf(in))
			})
		}
	}
}
