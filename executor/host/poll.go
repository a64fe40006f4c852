// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"encoding/binary"
	"math"
	"runtime"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"
)

// WASI preview 1 values poll_oneoff uses.
const (
	errnoSuccess = 0
	errnoFault   = 21
	errnoInval   = 28
	errnoNotsup  = 58

	eventClock   = 0
	eventFdRead  = 1
	eventFdWrite = 2

	subscriptionSize = 48
	eventSize        = 32
)

// pollSlice bounds one wait for a guest's sockets, so that a stop is seen
// even if no socket wakes the wait.
const pollSlice = 250 * time.Millisecond

// socketCollectionGap is the least time between two collections of a
// guest's closed sockets.
const socketCollectionGap = 100 * time.Millisecond

// collectClosedSockets has the sockets the guest closed since the last
// time finalized, which is what closes them under wazero (see closeGuard),
// by a collection: one at most every socketCollectionGap. It runs on the
// guest's goroutine inside its host call, where a guest without the
// per-loop check cannot stall the collection (gc.go).
func (in *instance) collectClosedSockets() {
	if in.closes.Load() == 0 {
		return
	}
	now := time.Now().UnixNano()
	if now-in.lastCollected.Load() < int64(socketCollectionGap) {
		return
	}
	in.closes.Store(0)
	in.lastCollected.Store(now)
	runtime.GC()
}

// instanceKey carries the running instance in the context wazero hands
// host functions.
type instanceKey struct{}

// le is WASI's byte order.
var le = binary.LittleEndian

// instantiateWASIModule instantiates WASI preview 1 in r with the driver's
// poll_oneoff, environ_get and environ_sizes_get in place of wazero's, and
// with guardHostCalls when guard is set (r compiles guests without the
// per-loop check).
//
// wazero's poll_oneoff answers a subscription to a non-blocking socket at
// once, as if it were ready. A guest whose runtime polls its sockets (Go's
// scheduler does, when it has nothing to run) then never blocks: an idle
// Go server on a granted listener kept a core busy. Ours waits for the
// guest's sockets (guestSockets: the listeners bound for it and the
// connections accepted on them) until one is ready or the clock
// subscription's timeout passes. Readiness is the socket set's, not each
// descriptor's: every descriptor subscribed is reported ready, and the
// guest's next read or accept finds out which one was (EAGAIN for the
// others), as after a spurious wake-up. Descriptors are not checked
// against the guest's table (wazero does not expose it): an unknown one is
// reported ready, and the guest's read on it fails with EBADF.
func instantiateWASIModule(ctx context.Context, r wazero.Runtime, guard bool) (api.Closer, error) {
	b := r.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	i32 := api.ValueTypeI32
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(pollOneoff), []api.ValueType{i32, i32, i32, i32}, []api.ValueType{i32}).
		WithParameterNames("in", "out", "nsubscriptions", "result.nevents").
		Export("poll_oneoff")
	// The environment: see environ.go.
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

func pollOneoff(ctx context.Context, mod api.Module, stack []uint64) {
	stack[0] = uint64(pollOneoffErrno(ctx, mod, uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])))
}

func pollOneoffErrno(ctx context.Context, mod api.Module, in, out, n, resultNevents uint32) uint32 {
	if n == 0 {
		return errnoInval
	}
	mem := mod.Memory()
	subs, ok := mem.Read(in, n*subscriptionSize)
	if !ok {
		return errnoFault
	}
	events, ok := mem.Read(out, n*eventSize)
	if !ok {
		return errnoFault
	}
	clear(events)
	timeout := time.Duration(math.MaxInt64)
	var clocks, fds []uint32 // indices of the subscriptions
	write := false
	for i := range n {
		sub := subs[i*subscriptionSize:]
		switch sub[8] {
		case eventClock:
			if flags := le.Uint16(sub[40:]); flags != 0 {
				// Only relative timeouts, as wazero's.
				return errnoNotsup
			}
			timeout = min(timeout, time.Duration(min(le.Uint64(sub[24:]), math.MaxInt64)))
			clocks = append(clocks, i)
		case eventFdRead:
			fds = append(fds, i)
		case eventFdWrite:
			fds = append(fds, i)
			write = true
		default:
			return errnoInval
		}
	}
	in0, _ := ctx.Value(instanceKey{}).(*instance)
	ready := len(fds) > 0
	switch {
	case len(fds) > 0 && in0 != nil && in0.sockets != nil:
		ready = in0.waitSockets(write, timeout)
	case len(fds) == 0 && in0 != nil:
		in0.sleep(int64(timeout))
	case len(fds) == 0:
		time.Sleep(timeout)
	}
	written := uint32(0)
	emit := func(i uint32) {
		sub, ev := subs[i*subscriptionSize:], events[written*eventSize:]
		copy(ev[0:8], sub[0:8]) // userdata
		le.PutUint16(ev[8:], errnoSuccess)
		ev[10] = sub[8] // type
		written++
	}
	if ready {
		for _, i := range fds {
			emit(i)
		}
	} else {
		for _, i := range clocks {
			emit(i)
		}
	}
	if !mem.WriteUint32Le(resultNevents, written) {
		return errnoFault
	}
	return errnoSuccess
}

// waitSockets waits up to timeout for one of the instance's sockets to be
// ready, in slices so that a stop ends the wait (as it ends a sleep).
func (in *instance) waitSockets(write bool, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		in.collectClosedSockets()
		if in.ctx.Err() != nil {
			panic(sys.NewExitError(sys.ExitCodeContextCanceled))
		}
		left := time.Until(deadline)
		if timeout == math.MaxInt64 {
			left = pollSlice
		}
		if left <= 0 {
			return false
		}
		if in.sockets.poll(write, min(left, pollSlice)) {
			return true
		}
	}
}
