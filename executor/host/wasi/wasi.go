// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"context"
	"encoding/binary"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// Instance is the running guest instance a host function serves: what the
// functions of this package need of it. Host functions find it in their
// context (WithInstance); one whose context carries none gets the plain
// behaviour it documents.
type Instance interface {
	// Environ is the guest's environment, "NAME=value" entries, as
	// environ_get hands it over.
	Environ() []string
	// Sleep waits d of real time. A stop cuts it short and ends the guest
	// (Sleep then panics with a *sys.ExitError, as proc_exit ends it).
	Sleep(d time.Duration)
	// WaitSockets waits up to timeout (math.MaxInt64: no limit) for one of
	// the guest's sockets to be ready to read, or with write to read or
	// write, and says whether one is. An instance without sockets says so
	// at once: its descriptors are stdio and files, which always are. A
	// stop ends the guest as it ends Sleep.
	WaitSockets(write bool, timeout time.Duration) bool
	HostCalls
}

// HostCalls is told by the guard, where the WASI host has one (see
// Instantiate), of the host calls of an instance: for each call, CallHost; then, unless the guard ends the guest
// there because it is stopped, EnterHost; then LeaveHost when the call
// returns, or AbortHost when it does not (proc_exit, a trap, a stop).
// wazero also aborts a call that was left (its compiler, when the guard
// ends the guest as it comes back) or never entered, so AbortHost must
// count out only a call still in. An instance's host calls do not nest.
type HostCalls interface {
	// CallHost: the guest calls the host.
	CallHost()
	// EnterHost: the guest is inside the host call.
	EnterHost()
	// LeaveHost: the host call returned; the guest goes back to its own
	// code (or, stopped, is ended) once LeaveHost returns.
	LeaveHost()
	// AbortHost: the host call did not return.
	AbortHost()
	// ClosedFD: the guest closed a descriptor (fd_close returned).
	ClosedFD()
}

// HostCallCount is what an instance keeps of its host calls for
// HostCalls: the calls it made, and whether it is inside one. wazero may
// report an abort of a call that already returned or never entered, so a
// call is counted out once, by Leave or Abort, whichever comes (an
// instance's host calls do not nest: it is inside one at most).
type HostCallCount struct {
	made   atomic.Uint64
	inside atomic.Int32
}

// Call counts a host call made.
func (c *HostCallCount) Call() { c.made.Add(1) }

// Enter counts the guest into a host call.
func (c *HostCallCount) Enter() { c.inside.Add(1) }

// Leave counts the guest out of its host call.
func (c *HostCallCount) Leave() { c.inside.Add(-1) }

// Abort counts out a host call that did not return, unless Leave did.
func (c *HostCallCount) Abort() {
	for {
		n := c.inside.Load()
		if n <= 0 || c.inside.CompareAndSwap(n, n-1) {
			return
		}
	}
}

// Made is the count of host calls made.
func (c *HostCallCount) Made() uint64 { return c.made.Load() }

// Inside is the count of host calls the guest is inside: 0 or 1.
func (c *HostCallCount) Inside() int32 { return c.inside.Load() }

// instanceKey carries the running instance in the context wazero hands
// host functions.
type instanceKey struct{}

// WithInstance is ctx carrying in, for the host functions its guest calls:
// the context the instance's module is instantiated and called with.
func WithInstance(ctx context.Context, in Instance) context.Context {
	return context.WithValue(ctx, instanceKey{}, in)
}

// instanceOf is the instance ctx carries, if any.
func instanceOf(ctx context.Context) (Instance, bool) {
	in, ok := ctx.Value(instanceKey{}).(Instance)
	return in, ok
}

// WASI preview 1 errno values the functions return.
const (
	errnoSuccess = 0
	errnoFault   = 21
	errnoInval   = 28
	errnoNotsup  = 58
)

// le is WASI's byte order.
var le = binary.LittleEndian

// Instantiate instantiates WASI preview 1 in r with the driver's
// poll_oneoff, environ_get and environ_sizes_get in place of wazero's, and
// with the guard (guard.go) when guard is set (r compiles guests without
// the per-loop check).
func Instantiate(ctx context.Context, r wazero.Runtime, guard bool) (api.Closer, error) {
	b := r.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	i32 := api.ValueTypeI32
	// poll.go
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(pollOneoff), []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}).
		WithParameterNames("in", "out", "nsubscriptions", "result.nevents").
		Export("poll_oneoff")
	// environ.go
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(environGet), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("environ", "environ_buf").
		Export("environ_get")
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(environSizesGet), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("result.environc", "result.environv_len").
		Export("environ_sizes_get")
	if guard {
		ctx = guardHostCalls(ctx)
	}
	return b.Instantiate(ctx)
}
