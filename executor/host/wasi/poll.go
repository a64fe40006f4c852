// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"context"
	"math"
	"time"

	"github.com/tetratelabs/wazero/api"
	"golang.org/x/sys/unix"
)

// WASI preview 1 values of poll_oneoff's subscriptions and events.
const (
	eventClock   = 0
	eventFdRead  = 1
	eventFdWrite = 2

	subclockAbstime   = 1
	eventFdHangup     = 1
	subscriptionSize  = 48
	eventSize         = 32
	maxSubscriptions  = 1 << 16
	noTimeout         = time.Duration(math.MaxInt64)
	pollReadyMask     = unix.POLLIN | unix.POLLOUT | unix.POLLHUP | unix.POLLERR | unix.POLLNVAL
	pollHangupOrError = unix.POLLHUP | unix.POLLERR
)

// pollOneoff is WASI's poll_oneoff(in, out, nsubscriptions,
// result.nevents).
//
// It waits until one of the subscribed descriptors is ready or the
// earliest clock subscription is due, and reports each event that
// happened: the descriptors ready (each on its own), or the clocks due.
// Sockets are waited for in poll(2), with the instance's waker, so a stop
// ends the wait (and the guest). Files, directories and standard streams
// are always ready, as they are to poll(2); a subscription to a
// descriptor that is not open, or lacks the right to be polled, is an
// event with its error at once.
func pollOneoff(ctx context.Context, mod api.Module, stack []uint64) {
	stack[0] = uint64(pollOneoffErrno(ctx, mod, uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])))
}

func pollOneoffErrno(ctx context.Context, mod api.Module, in, out, n, resultNevents uint32) errno {
	if n == 0 {
		return errnoInval
	}
	if n > maxSubscriptions {
		return errnoNotsup
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
	t := table(ctx)
	written := uint32(0)
	emit := func(i uint32, e errno, flags uint16) {
		sub, ev := subs[i*subscriptionSize:], events[written*eventSize:(written+1)*eventSize]
		clear(ev)
		copy(ev[0:8], sub[0:8]) // userdata
		le.PutUint16(ev[8:], uint16(e))
		ev[10] = sub[8] // type
		le.PutUint16(ev[24:], flags)
		written++
	}
	timeout := noTimeout
	var clocks []uint32 // subscriptions, with their timeouts
	var clockTimeouts []time.Duration
	var fds []unix.PollFd
	var polled []uint32 // the subscription of each of fds
	for i := range n {
		sub := subs[i*subscriptionSize:]
		switch sub[8] {
		case eventClock:
			id, v, flags := le.Uint32(sub[16:]), le.Uint64(sub[24:]), le.Uint16(sub[40:])
			t0, ok := now(id)
			if !ok || flags&^subclockAbstime != 0 {
				emit(i, errnoInval, 0)
				continue
			}
			d := time.Duration(min(v, math.MaxInt64))
			if flags&subclockAbstime != 0 {
				d = 0
				if v > t0 {
					d = time.Duration(min(v-t0, math.MaxInt64))
				}
			}
			timeout = min(timeout, d)
			clocks = append(clocks, i)
			clockTimeouts = append(clockTimeouts, d)
		case eventFdRead, eventFdWrite:
			d, e := t.lookup(le.Uint32(sub[16:]), rightPollFdReadwrite)
			switch {
			case e != errnoSuccess:
				emit(i, e, 0)
			case d.sock != nil:
				events := int16(unix.POLLIN)
				if sub[8] == eventFdWrite {
					events = unix.POLLOUT
				}
				fds = append(fds, unix.PollFd{Fd: int32(d.sock.fd), Events: events})
				polled = append(polled, i)
			default:
				emit(i, errnoSuccess, 0)
			}
		default:
			return errnoInval
		}
	}
	wait := timeout
	if written > 0 {
		wait = 0 // something is ready already: just look at the sockets
	}
	switch {
	case len(fds) > 0:
		if wait == noTimeout {
			wait = -1
		}
		ready, err := t.poll(ctx, fds, wait)
		if err != nil {
			return fromErr(err)
		}
		for k := 0; ready > 0 && k < len(fds); k++ {
			if fds[k].Revents&pollReadyMask == 0 {
				continue
			}
			ready--
			var flags uint16
			if fds[k].Revents&pollHangupOrError != 0 {
				flags = eventFdHangup
			}
			emit(polled[k], errnoSuccess, flags)
		}
	case wait == noTimeout:
		// Only clocks that never come due: until a stop ends the guest.
		<-ctx.Done()
		endIfStopped(ctx)
	case wait > 0:
		sleep(ctx, wait)
	default:
		endIfStopped(ctx)
	}
	if written == 0 {
		// Nothing was ready: the earliest clocks are due.
		for k, i := range clocks {
			if clockTimeouts[k] <= timeout {
				emit(i, errnoSuccess, 0)
			}
		}
	}
	if !mem.WriteUint32Le(resultNevents, written) {
		return errnoFault
	}
	return errnoSuccess
}
