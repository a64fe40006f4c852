// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"context"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
)

// guardHostCalls makes a stop reach a guest compiled without wazero's
// per-loop check at its host calls: a WASI host module instantiated with
// the returned context ends the calling guest, as proc_exit does, when its
// context is done and it calls the host or comes back from a host call
// that the stop cut short (a sleep, a poll, an accept on a socket shut
// down under it). It also tells the calling instance of each host call
// (HostCalls), so that the instance can tell a guest waiting in the host
// from one spinning in its own code.
//
// Its cost is two calls per host call, which is not per loop iteration.
func guardHostCalls(ctx context.Context) context.Context {
	return experimental.WithFunctionListenerFactory(ctx, experimental.FunctionListenerFactoryFunc(
		func(api.FunctionDefinition) experimental.FunctionListener { return hostCallGuard{} }))
}

type hostCallGuard struct{}

func (hostCallGuard) Before(ctx context.Context, _ api.Module, _ api.FunctionDefinition, _ []uint64, _ experimental.StackIterator) {
	in, ok := instanceOf(ctx)
	if ok {
		in.CallHost()
	}
	// Ended before it enters: wazero's interpreter does not abort a call
	// whose Before panics.
	endIfStopped(ctx)
	if ok {
		in.EnterHost()
	}
}

func (hostCallGuard) After(ctx context.Context, _ api.Module, _ api.FunctionDefinition, _ []uint64) {
	if in, ok := instanceOf(ctx); ok {
		in.LeaveHost()
	}
	endIfStopped(ctx)
}

// Abort tells the instance of a host call that did not return (proc_exit,
// a trap); wazero's compiler also aborts a call whose After panics, after
// LeaveHost (see HostCalls).
func (hostCallGuard) Abort(ctx context.Context, _ api.Module, _ api.FunctionDefinition, _ error) {
	if in, ok := instanceOf(ctx); ok {
		in.AbortHost()
	}
}
