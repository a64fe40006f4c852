// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/shoenig/test/must"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/internal/wasmtest"
)

// Where the poll tests put things in the guest's memory.
const (
	subsAt    = 0
	eventsAt  = 1024
	neventsAt = 2048
	pageSize  = 65536
)

// subscription is a WASI preview 1 subscription as the tests write it.
type subscription struct {
	userdata uint64
	tag      byte
	timeout  time.Duration // clock
	flags    uint16        // clock
	fd       uint32        // fd_read, fd_write
}

func clockSub(userdata uint64, timeout time.Duration) subscription {
	return subscription{userdata: userdata, tag: eventClock, timeout: timeout}
}

func fdSub(userdata uint64, tag byte, fd uint32) subscription {
	return subscription{userdata: userdata, tag: tag, fd: fd}
}

// event is a WASI preview 1 event as pollOneoff writes it.
type event struct {
	userdata uint64
	errno    uint16
	tag      byte
}

func writeSubscriptions(t *testing.T, mem api.Memory, subs []subscription) {
	t.Helper()
	b := make([]byte, len(subs)*subscriptionSize)
	for i, s := range subs {
		sb := b[i*subscriptionSize:]
		le.PutUint64(sb[0:], s.userdata)
		sb[8] = s.tag
		switch s.tag {
		case eventClock:
			le.PutUint64(sb[24:], uint64(s.timeout))
			le.PutUint16(sb[40:], s.flags)
		default:
			le.PutUint32(sb[16:], s.fd)
		}
	}
	must.True(t, mem.Write(subsAt, b))
}

func readEvents(t *testing.T, mem api.Memory) []event {
	t.Helper()
	n, ok := mem.ReadUint32Le(neventsAt)
	must.True(t, ok)
	b, ok := mem.Read(eventsAt, n*eventSize)
	must.True(t, ok)
	var evs []event
	for i := range n {
		eb := b[i*eventSize:]
		evs = append(evs, event{userdata: le.Uint64(eb[0:]), errno: le.Uint16(eb[8:]), tag: eb[10]})
	}
	return evs
}

// pollResult is how a call of pollOneoff ended.
type pollResult struct {
	errno   uint32
	exit    *sys.ExitError // it ended the guest, as a stop does
	elapsed time.Duration
}

// callPoll calls pollOneoff with the arguments in stack, as in (nil: no
// instance) would, on a goroutine of its own. It fails the test if the
// call has not returned by the deadline; the test's end stops the
// instance, which ends any wait of one, and waits for it.
func callPoll(t *testing.T, in *testInstance, mod api.Module, stack []uint64) pollResult {
	t.Helper()
	ctx := context.Background()
	if in != nil {
		ctx = WithInstance(in.ctx, in)
	}
	done := make(chan pollResult, 1)
	finished := make(chan struct{})
	if in != nil {
		// Whatever happens to the test, the call is ended and waited for.
		t.Cleanup(func() {
			in.stop()
			<-finished
		})
	}
	go func() {
		defer close(finished)
		var r pollResult
		began := time.Now()
		r.exit = wasmtest.Exit(func() {
			pollOneoff(ctx, mod, stack)
			r.errno = uint32(stack[0])
		})
		r.elapsed = time.Since(began)
		done <- r
	}()
	select {
	case r := <-done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("poll_oneoff did not return")
		return pollResult{}
	}
}

// TestPollOneoffArguments: pollOneoff refuses what WASI preview 1 says is
// wrong, and reads and writes only inside the guest's memory.
func TestPollOneoffArguments(t *testing.T) {
	t.Parallel()
	mod := wasmtest.Instantiate(t, context.Background(), wasmtest.Runtime(t))
	for _, tc := range []struct {
		name                     string
		subs                     []subscription
		in, out, n, resultNevent uint32
		want                     uint32
	}{
		{"no subscriptions", nil, subsAt, eventsAt, 0, neventsAt, errnoInval},
		{"subscriptions past the memory", []subscription{clockSub(1, 0)}, pageSize - subscriptionSize + 1, eventsAt, 1, neventsAt, errnoFault},
		{"events past the memory", []subscription{clockSub(1, 0)}, subsAt, pageSize - eventSize + 1, 1, neventsAt, errnoFault},
		{"event count past the memory", []subscription{clockSub(1, 0)}, subsAt, eventsAt, 1, pageSize - 3, errnoFault},
		{"unknown event type", []subscription{{userdata: 1, tag: 3}}, subsAt, eventsAt, 1, neventsAt, errnoInval},
		{"absolute clock", []subscription{{userdata: 1, tag: eventClock, flags: 1}}, subsAt, eventsAt, 1, neventsAt, errnoNotsup},
		{"an unknown type after a good one", []subscription{fdSub(1, eventFdRead, 0), {userdata: 2, tag: 9}}, subsAt, eventsAt, 2, neventsAt, errnoInval},
	} {
		t.Run(tc.name, func(t *testing.T) {
			writeSubscriptions(t, mod.Memory(), tc.subs)
			r := callPoll(t, nil, mod, []uint64{uint64(tc.in), uint64(tc.out), uint64(tc.n), uint64(tc.resultNevent)})
			must.Nil(t, r.exit)
			must.Eq(t, tc.want, r.errno)
		})
	}
}

// socketWait is what pollOneoff asked of the instance's sockets.
type socketWait struct {
	write   bool
	timeout time.Duration
}

// TestPollOneoff: a clock subscription sleeps out its timeout; descriptors
// are waited for as the instance's sockets (for writing if one of them is
// subscribed for it, up to the shortest clock), and are all reported
// ready when the sockets are, the clocks otherwise.
func TestPollOneoff(t *testing.T) {
	t.Parallel()
	const hour = time.Hour
	for _, tc := range []struct {
		name  string
		ready bool // the instance's answer to a wait for its sockets
		subs  []subscription
		wait  []socketWait // what was asked of the sockets
		want  []event
		// least and most bound how long the call takes.
		least, most time.Duration
	}{
		{name: "clock", subs: []subscription{clockSub(7, 30*time.Millisecond)},
			want: []event{{7, errnoSuccess, eventClock}}, least: 30 * time.Millisecond, most: hour},
		{name: "clock of zero", subs: []subscription{clockSub(7, 0)},
			want: []event{{7, errnoSuccess, eventClock}}, most: hour},
		{name: "the shortest clock", subs: []subscription{clockSub(7, hour), clockSub(8, 20*time.Millisecond)},
			want: []event{{7, errnoSuccess, eventClock}, {8, errnoSuccess, eventClock}}, least: 20 * time.Millisecond, most: hour / 2},
		{name: "stdin", ready: true, subs: []subscription{fdSub(1, eventFdRead, 0), clockSub(2, hour)},
			wait: []socketWait{{false, hour}}, want: []event{{1, errnoSuccess, eventFdRead}}, most: hour / 2},
		{name: "stdout", ready: true, subs: []subscription{clockSub(2, hour), fdSub(1, eventFdWrite, 1)},
			wait: []socketWait{{true, hour}}, want: []event{{1, errnoSuccess, eventFdWrite}}, most: hour / 2},
		{name: "descriptors without a clock", ready: true, subs: []subscription{fdSub(1, eventFdRead, 5), fdSub(2, eventFdWrite, 6)},
			wait: []socketWait{{true, math.MaxInt64}}, want: []event{{1, errnoSuccess, eventFdRead}, {2, errnoSuccess, eventFdWrite}}, most: hour / 2},
		{name: "no socket ready: the clock fires", subs: []subscription{fdSub(1, eventFdRead, 3), clockSub(2, 50*time.Millisecond)},
			wait: []socketWait{{false, 50 * time.Millisecond}}, want: []event{{2, errnoSuccess, eventClock}}, most: hour / 2},
		{name: "every descriptor is reported with a ready socket", ready: true, subs: []subscription{fdSub(1, eventFdWrite, 4), clockSub(2, hour), fdSub(3, eventFdRead, 0)},
			wait: []socketWait{{true, hour}}, want: []event{{1, errnoSuccess, eventFdWrite}, {3, errnoSuccess, eventFdRead}}, most: hour / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mod := wasmtest.Instantiate(t, context.Background(), wasmtest.Runtime(t))
			in := newTestInstance(t)
			var mu sync.Mutex
			var waits []socketWait
			in.sockets = func(write bool, timeout time.Duration) bool {
				mu.Lock()
				defer mu.Unlock()
				waits = append(waits, socketWait{write, timeout})
				return tc.ready
			}
			writeSubscriptions(t, mod.Memory(), tc.subs)
			r := callPoll(t, in, mod, []uint64{subsAt, eventsAt, uint64(len(tc.subs)), neventsAt})
			must.Nil(t, r.exit)
			must.Eq(t, errnoSuccess, r.errno)
			must.Eq(t, tc.want, readEvents(t, mod.Memory()))
			must.GreaterEq(t, tc.least, r.elapsed)
			must.Less(t, tc.most, r.elapsed)
			mu.Lock()
			defer mu.Unlock()
			must.Eq(t, tc.wait, waits)
		})
	}
}

// TestPollOneoffWithoutInstance: called outside an instance (no stop to
// watch, no sockets), it sleeps out its clock and reports files ready.
func TestPollOneoffWithoutInstance(t *testing.T) {
	t.Parallel()
	mod := wasmtest.Instantiate(t, context.Background(), wasmtest.Runtime(t))
	writeSubscriptions(t, mod.Memory(), []subscription{clockSub(4, 20*time.Millisecond)})
	r := callPoll(t, nil, mod, []uint64{subsAt, eventsAt, 1, neventsAt})
	must.Eq(t, errnoSuccess, r.errno)
	must.Eq(t, []event{{4, errnoSuccess, eventClock}}, readEvents(t, mod.Memory()))
	must.GreaterEq(t, 20*time.Millisecond, r.elapsed)

	writeSubscriptions(t, mod.Memory(), []subscription{fdSub(5, eventFdRead, 3)})
	r = callPoll(t, nil, mod, []uint64{subsAt, eventsAt, 1, neventsAt})
	must.Eq(t, errnoSuccess, r.errno)
	must.Eq(t, []event{{5, errnoSuccess, eventFdRead}}, readEvents(t, mod.Memory()))
}

// TestPollOneoffStop: a guest that its instance ends in a wait (a stop cut
// its sleep or its socket wait short) is ended there, as proc_exit would
// end it, with the exit code of a cancelled context.
func TestPollOneoffStop(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		sockets bool
		subs    []subscription
	}{
		{"sleeping", false, []subscription{clockSub(1, math.MaxInt64)}},
		{"waiting for sockets", true, []subscription{fdSub(1, eventFdRead, 3)}},
		{"waiting for sockets with a clock", true, []subscription{fdSub(1, eventFdRead, 3), clockSub(2, time.Hour)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mod := wasmtest.Instantiate(t, context.Background(), wasmtest.Runtime(t))
			in := newTestInstance(t)
			if tc.sockets {
				in.sockets = func(bool, time.Duration) bool {
					<-in.ctx.Done()
					panic(sys.NewExitError(sys.ExitCodeContextCanceled))
				}
			}
			writeSubscriptions(t, mod.Memory(), tc.subs)
			go func() {
				time.Sleep(20 * time.Millisecond)
				in.stop()
			}()
			r := callPoll(t, in, mod, []uint64{subsAt, eventsAt, uint64(len(tc.subs)), neventsAt})
			must.NotNil(t, r.exit, must.Sprint("the stop did not end the guest"))
			must.Eq(t, sys.ExitCodeContextCanceled, r.exit.ExitCode())
		})
	}
}
