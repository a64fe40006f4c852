// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"errors"
	"testing"

	"github.com/shoenig/test/must"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
)

// guardedGuest is a tiny guest that calls fd_close, sched_yield and
// proc_exit of a WASI host instantiated with guardHostCalls or without.
func guardedGuest(t *testing.T, engine string, guard bool) api.Module {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, runtimeConfig(engine, false))
	t.Cleanup(func() { _ = r.Close(ctx) })
	_, err := instantiateWASIModule(ctx, r, guard)
	must.NoError(t, err)
	return instantiateTiny(t, ctx, r,
		tinyImport{module: wasi_snapshot_preview1.ModuleName, name: "fd_close", params: 1, results: 1},
		tinyImport{module: wasi_snapshot_preview1.ModuleName, name: "sched_yield", results: 1},
		tinyImport{module: wasi_snapshot_preview1.ModuleName, name: "proc_exit", params: 1},
	)
}

// hostCounts is what guardHostCalls counted for an instance.
type hostCounts struct {
	inside int32  // host calls it is inside
	made   uint64 // host calls it made
	closes uint32 // fd_close calls since the last collection
}

func countsOf(in *instance) hostCounts {
	return hostCounts{in.hostCalls.Load(), in.hostSeq.Load(), in.closes.Load()}
}

// exitCode is the exit code err ends a guest with, or -1.
func exitCode(err error) int {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		return int(exit.ExitCode())
	}
	return -1
}

// TestGuardHostCalls: with guardHostCalls, each host call of an instance
// is counted in and out (fd_close is also counted as a close), however it
// ends; a stop ends the guest at its next host call, or as it comes back
// from the one it is in. Without it, nothing is counted or ended.
func TestGuardHostCalls(t *testing.T) {
	t.Parallel()
	for _, engine := range testEngines() {
		for _, tc := range []struct {
			name    string
			guard   bool
			call    string
			stopped bool // before the call
			want    hostCounts
			exit    int // -1: it returns
		}{
			{name: "a host call", guard: true, call: "sched_yield", want: hostCounts{made: 1}, exit: -1},
			{name: "a close", guard: true, call: "fd_close", want: hostCounts{made: 1, closes: 1}, exit: -1},
			{name: "a host call that ends the guest", guard: true, call: "proc_exit", want: hostCounts{made: 1}, exit: 3},
			{name: "a host call after a stop", guard: true, call: "sched_yield", stopped: true, want: hostCounts{made: 1}, exit: int(sys.ExitCodeContextCanceled)},
			// Ended before proc_exit runs, which would end it with its own code.
			{name: "an exit after a stop", guard: true, call: "proc_exit", stopped: true, want: hostCounts{made: 1}, exit: int(sys.ExitCodeContextCanceled)},
			{name: "unguarded", call: "fd_close", want: hostCounts{}, exit: -1},
			{name: "unguarded after a stop", call: "sched_yield", stopped: true, want: hostCounts{}, exit: -1},
		} {
			t.Run(engine+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				mod := guardedGuest(t, engine, tc.guard)
				in := newTestInstance(t)
				if tc.stopped {
					in.stop(15)
				}
				ctx := context.WithValue(in.ctx, instanceKey{}, in)
				_, err := mod.ExportedFunction(tc.call).Call(ctx)
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
// while a collection runs (hostReturn held) is counted out of the call at
// once, and waits for the collection before it goes back to its own code;
// a stop asked meanwhile ends it there.
func TestGuardHostCallsHoldsReturn(t *testing.T) {
	t.Parallel()
	for _, engine := range testEngines() {
		for _, stop := range []bool{false, true} {
			t.Run(engine+"/"+map[bool]string{false: "returns", true: "stopped"}[stop], func(t *testing.T) {
				t.Parallel()
				mod := guardedGuest(t, engine, true)
				in := newTestInstance(t)
				ctx := context.WithValue(in.ctx, instanceKey{}, in)
				in.hostReturn.Lock()
				done := make(chan error, 1)
				go func() {
					_, err := mod.ExportedFunction("sched_yield").Call(ctx)
					done <- err
				}()
				waitUntil(t, func() bool { return countsOf(in) == hostCounts{made: 1} }, "the host call was not counted in and out")
				select {
				case err := <-done:
					in.hostReturn.Unlock()
					t.Fatalf("the guest went back to its code during the collection (%v)", err)
				default:
				}
				if stop {
					in.stop(15)
				}
				in.hostReturn.Unlock()
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

// testEngines are the engines this platform runs guests with.
func testEngines() []string {
	if compilerSupported() {
		return []string{executor.EngineInterpreter, executor.EngineCompiler}
	}
	return []string{executor.EngineInterpreter}
}
