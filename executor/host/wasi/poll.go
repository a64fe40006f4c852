// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"context"
	"math"
	"time"

	"github.com/tetratelabs/wazero/api"
)

// WASI preview 1 values of poll_oneoff's subscriptions and events.
const (
	eventClock   = 0
	eventFdRead  = 1
	eventFdWrite = 2

	subscriptionSize = 48
	eventSize        = 32
)

// pollOneoff is WASI's poll_oneoff(in, out, nsubscriptions,
// result.nevents).
//
// wazero's poll_oneoff answers a subscription to a non-blocking socket at
// once, as if it were ready. A guest whose runtime polls its sockets (Go's
// scheduler does, when it has nothing to run) then never blocks: an idle
// Go server on a granted listener kept a core busy. Ours waits for the
// instance's sockets (Instance.WaitSockets) until one is ready or the
// clock subscription's timeout passes. Readiness is the socket set's, not
// each descriptor's: every descriptor subscribed is reported ready, and
// the guest's next read or accept finds out which one was (EAGAIN for the
// others), as after a spurious wake-up. Descriptors are not checked
// against the guest's table (wazero does not expose it): an unknown one is
// reported ready, and the guest's read on it fails with EBADF.
//
// Without an instance, it sleeps out a clock and reports descriptors ready
// at once.
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
	inst, ok := instanceOf(ctx)
	ready := len(fds) > 0
	switch {
	case len(fds) > 0 && ok:
		ready = inst.WaitSockets(write, timeout)
	case len(fds) == 0 && ok:
		inst.Sleep(timeout)
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
