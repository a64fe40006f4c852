// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"context"
	"crypto/rand"
	"runtime"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// WASI preview 1 clocks.
const (
	clockRealtime         = 0
	clockMonotonic        = 1
	clockProcessCPUTime   = 2
	clockThreadCPUTime    = 3
	clockResolutionNanos  = 1
	maxRandomBytesPerCall = 1 << 20
)

// epoch is where the monotonic clock counts from.
var epoch = time.Now()

// now is clock id's time in nanoseconds, or false for a clock this host
// does not have (CPU time clocks: a guest does not get the host's).
func now(id uint32) (uint64, bool) {
	switch id {
	case clockRealtime:
		return uint64(time.Now().UnixNano()), true
	case clockMonotonic:
		return uint64(time.Since(epoch)), true
	}
	return 0, false
}

// clockResGet is WASI's clock_res_get(id, result.resolution).
func clockResGet(_ context.Context, mod api.Module, stack []uint64) {
	if _, ok := now(uint32(stack[0])); !ok {
		stack[0] = errnoInval
		return
	}
	if !mod.Memory().WriteUint64Le(uint32(stack[1]), clockResolutionNanos) {
		stack[0] = errnoFault
		return
	}
	stack[0] = errnoSuccess
}

// clockTimeGet is WASI's clock_time_get(id, precision, result.timestamp).
func clockTimeGet(_ context.Context, mod api.Module, stack []uint64) {
	t, ok := now(uint32(stack[0]))
	if !ok {
		stack[0] = errnoInval
		return
	}
	if !mod.Memory().WriteUint64Le(uint32(stack[2]), t) {
		stack[0] = errnoFault
		return
	}
	stack[0] = errnoSuccess
}

// randomGet is WASI's random_get(buf, buf_len): from the host's
// cryptographic source.
func randomGet(_ context.Context, mod api.Module, stack []uint64) {
	buf, ok := mod.Memory().Read(uint32(stack[0]), uint32(stack[1]))
	if !ok {
		stack[0] = errnoFault
		return
	}
	for len(buf) > 0 {
		n := min(len(buf), maxRandomBytesPerCall)
		if _, err := rand.Read(buf[:n]); err != nil {
			stack[0] = errnoIO
			return
		}
		buf = buf[n:]
	}
	stack[0] = errnoSuccess
}

// schedYield is WASI's sched_yield().
func schedYield(_ context.Context, _ api.Module, stack []uint64) {
	runtime.Gosched()
	stack[0] = errnoSuccess
}

// procExit is WASI's proc_exit(rval): the guest ends with rval as its
// exit code.
func procExit(ctx context.Context, mod api.Module, stack []uint64) {
	code := uint32(stack[0])
	_ = mod.CloseWithExitCode(ctx, code)
	panic(sys.NewExitError(code))
}

// procRaise is WASI's proc_raise(sig), which preview 1 deprecates and
// WASI libc does not call: not supported.
func procRaise(_ context.Context, _ api.Module, stack []uint64) {
	stack[0] = errnoNosys
}

// endIfStopped ends the calling guest when its context is done, with the
// exit code wazero gives a cancelled context.
func endIfStopped(ctx context.Context) {
	if ctx.Err() != nil {
		panic(sys.NewExitError(sys.ExitCodeContextCanceled))
	}
}

// sleep waits d of real time. A stop cuts it short and ends the guest, as
// proc_exit ends it: wazero notices a cancelled context only at function
// calls and loop iterations, and the guest could otherwise run on to a
// normal exit.
func sleep(ctx context.Context, d time.Duration) {
	if d <= 0 {
		endIfStopped(ctx)
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		panic(sys.NewExitError(sys.ExitCodeContextCanceled))
	}
}
