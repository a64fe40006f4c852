// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"math"
	"runtime"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/wasi"
)

// An instance as the WASI host (package wasi) sees it: *instance is a
// wasi.Instance, put into its calls' context by instantiate.
var _ wasi.Instance = (*instance)(nil)

// instantiateWASIModule instantiates the WASI host (wasi.Instantiate) in
// r, with the guard when guard is set (r compiles guests without the
// per-loop check).
func instantiateWASIModule(ctx context.Context, r wazero.Runtime, guard bool) (api.Closer, error) {
	return wasi.Instantiate(ctx, r, guard)
}

// pollSlice bounds one wait for a guest's sockets, so that a stop is seen
// even if no socket wakes the wait.
const pollSlice = 250 * time.Millisecond

// socketCollectionGap is the least time between two collections of a
// guest's closed sockets.
const socketCollectionGap = 100 * time.Millisecond

// Environ is the guest's environment (see environ.go).
func (in *instance) Environ() []string { return in.environ }

// Sleep is the guest's sleep (its nanosleep, poll_oneoff's clock): real
// time, cut short by a stop request. A cut-short sleep does not return to
// the guest: wazero notices a cancelled context only at function calls and
// loop iterations, and the guest could otherwise run on to a normal exit.
// It ends the guest as proc_exit does, with the exit code wazero uses for
// a cancelled context.
func (in *instance) Sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-in.ctx.Done():
		panic(sys.NewExitError(sys.ExitCodeContextCanceled))
	}
}

// WaitSockets waits up to timeout for one of the instance's sockets
// (guestSockets: the listeners bound for it and the connections accepted
// on them) to be ready, in slices so that a stop ends the wait (as it
// ends a sleep). An instance without sockets is ready at once.
func (in *instance) WaitSockets(write bool, timeout time.Duration) bool {
	if in.sockets == nil {
		return true
	}
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

// collectClosedSockets has the sockets the guest closed since the last
// time finalized, which is what closes them under wazero (see ClosedFD),
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

// The guard's hooks (wasi.HostCalls), called only when the program has no
// per-loop check: they keep the counts that a stop (watchStop) and the
// collections (gc.go) read.

// CallHost counts a host call made.
func (in *instance) CallHost() { in.calls.Call() }

// EnterHost counts the guest into a host call.
func (in *instance) EnterHost() { in.calls.Enter() }

// LeaveHost counts the guest out of its host call first, then holds it
// while a collection runs: one that began after this guest was counted out
// sees it outside and does not run (whileInHost).
func (in *instance) LeaveHost() {
	in.calls.Leave()
	in.hostReturn.RLock()
	in.hostReturn.RUnlock() //nolint:staticcheck // SA2001: the wait for the collection is the point
}

// AbortHost counts out a host call that did not return, unless LeaveHost
// did.
func (in *instance) AbortHost() { in.calls.Abort() }

// ClosedFD counts a close of the guest's: wazero "closes" a guest's
// socket without closing its descriptor (its close is a no-op that leaves
// the socket to the net.TCPConn's finalizer), so a closed connection stays
// open, and polls as readable once its peer hangs up, until the executor
// collects garbage. With automatic collection off (gc.go), the socket
// wait collects after closes (collectClosedSockets).
func (in *instance) ClosedFD() { in.closes.Add(1) }
