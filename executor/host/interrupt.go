// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
)

// guardHostCalls makes a stop reach a guest compiled without wazero's
// per-loop check (see interruptible) at its host calls: a WASI host module
// instantiated with the returned context ends the calling instance, as
// proc_exit does, when its stop has been asked for and it calls the host or
// comes back from a host call that the stop cut short (a sleep, a poll, an
// accept on a socket shut down under it). It also keeps count of the host
// calls an instance is inside, so that a stop can tell a guest waiting in
// the host from one spinning in its own code (instance.inHostCall).
//
// Its cost is two calls per host call, which is not per loop iteration.
func guardHostCalls(ctx context.Context) context.Context {
	return experimental.WithFunctionListenerFactory(ctx, experimental.FunctionListenerFactoryFunc(
		func(def api.FunctionDefinition) experimental.FunctionListener {
			if def.Name() == "fd_close" {
				return closeGuard{}
			}
			return hostCallGuard{}
		}))
}

// closeGuard is hostCallGuard for fd_close, which also counts the guest's
// closes: wazero "closes" a guest's socket without closing its descriptor
// (its close is a no-op that leaves the socket to the net.TCPConn's
// finalizer), so a closed connection stays open, and polls as readable
// once its peer hangs up, until the executor collects garbage. With
// automatic collection off (gc.go), the instance's socket wait collects
// after closes (see instance.collectClosedSockets).
type closeGuard struct{ hostCallGuard }

func (g closeGuard) After(ctx context.Context, mod api.Module, def api.FunctionDefinition, results []uint64) {
	if in, ok := ctx.Value(instanceKey{}).(*instance); ok {
		in.closes.Add(1)
	}
	g.hostCallGuard.After(ctx, mod, def, results)
}

type hostCallGuard struct{}

func (hostCallGuard) Before(ctx context.Context, _ api.Module, _ api.FunctionDefinition, _ []uint64, _ experimental.StackIterator) {
	in, ok := ctx.Value(instanceKey{}).(*instance)
	if ok {
		in.hostSeq.Add(1)
	}
	// Ended before it is counted in: wazero's interpreter does not abort
	// a call whose Before panics.
	endIfStopped(ctx)
	if ok {
		in.hostCalls.Add(1)
	}
}

func (hostCallGuard) After(ctx context.Context, _ api.Module, _ api.FunctionDefinition, _ []uint64) {
	if in, ok := ctx.Value(instanceKey{}).(*instance); ok {
		// Counted out first, then held while a collection runs: one that
		// began after this guest was counted out sees it outside and does
		// not run (whileInHost).
		in.hostCalls.Add(-1)
		in.hostReturn.RLock()
		in.hostReturn.RUnlock() //nolint:staticcheck // SA2001: the wait for the collection is the point
	}
	endIfStopped(ctx)
}

// Abort counts out a host call that did not return (proc_exit, a trap)
// unless After did: wazero's compiler also aborts a call whose After
// panics. An instance's host calls do not nest, so it is inside one at
// most.
func (hostCallGuard) Abort(ctx context.Context, _ api.Module, _ api.FunctionDefinition, _ error) {
	in, ok := ctx.Value(instanceKey{}).(*instance)
	for ok {
		n := in.hostCalls.Load()
		if n <= 0 || in.hostCalls.CompareAndSwap(n, n-1) {
			return
		}
	}
}

// endIfStopped ends the calling guest when its context is done, with the
// exit code wazero gives a cancelled context (instance.exitStatus turns it
// into 128+signal).
func endIfStopped(ctx context.Context) {
	if ctx.Err() != nil {
		panic(sys.NewExitError(sys.ExitCodeContextCanceled))
	}
}
