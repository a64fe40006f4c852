// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"errors"
	"math"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/shoenig/test/must"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
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

// newTestInstance is an instance with nothing but its stop context, which
// ends with the test.
func newTestInstance(t *testing.T) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &instance{ctx: ctx, cancel: cancel, ended: make(chan struct{})}
}

// withListener gives in a listener on loopback, as if bound for it, and
// returns it.
func withListener(t *testing.T, in *instance) *net.TCPListener {
	t.Helper()
	before := openSockets()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must.NoError(t, err)
	t.Cleanup(func() { _ = l.Close() })
	in.sockets = recordListeners(before, []*proto.Listener{{Label: "http", Address: "127.0.0.1", Port: int32(l.Addr().(*net.TCPAddr).Port)}})
	t.Cleanup(in.sockets.release)
	return l.(*net.TCPListener)
}

// pollResult is how a call of pollOneoff ended.
type pollResult struct {
	errno   uint32
	exit    *sys.ExitError // it ended the guest, as a stop does
	elapsed time.Duration
}

// callPoll calls pollOneoff with the arguments in stack, as in (nil: no
// instance) would, on a goroutine of its own, and runs during (when set)
// meanwhile, with a function that says whether the call is blocked. It
// fails the test if the call has not returned by the deadline; the test's
// end stops the instance, which ends any wait of one, and waits for it.
func callPoll(t *testing.T, in *instance, mod api.Module, stack []uint64, during func(blocked func() bool)) pollResult {
	t.Helper()
	ctx := context.Background()
	if in != nil {
		ctx = context.WithValue(in.ctx, instanceKey{}, in)
	}
	id := make(chan string, 1)
	done := make(chan pollResult, 1)
	finished := make(chan struct{})
	if in != nil {
		// Whatever happens to the test, the call is ended and waited for.
		t.Cleanup(func() {
			in.cancel()
			<-finished
		})
	}
	go func() {
		defer close(finished)
		var r pollResult
		began := time.Now()
		defer func() {
			r.elapsed = time.Since(began)
			if p := recover(); p != nil {
				var exit *sys.ExitError
				if err, ok := p.(error); !ok || !errors.As(err, &exit) {
					panic(p)
				}
				r.exit = exit
			}
			done <- r
		}()
		id <- goroutineID()
		pollOneoff(ctx, mod, stack)
		r.errno = uint32(stack[0])
	}()
	if during != nil {
		g := <-id
		during(func() bool { return goroutineBlocked(g) })
	}
	select {
	case r := <-done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("poll_oneoff did not return")
		return pollResult{}
	}
}

// goroutineID is the calling goroutine's number, as stacks name it.
func goroutineID() string {
	buf := make([]byte, 64)
	buf = buf[:runtime.Stack(buf, false)]
	header, _, _ := strings.Cut(string(buf), " [")
	return header // "goroutine N"
}

// goroutineBlocked says whether goroutine g (as goroutineID names it) is
// blocked: waiting in a select, a sleep or a system call, not running.
func goroutineBlocked(g string) bool {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	for _, stack := range strings.Split(string(buf), "\n\n") {
		header, _, _ := strings.Cut(stack, "\n")
		if strings.HasPrefix(header, g+" [") {
			return !strings.Contains(header, "[running]") && !strings.Contains(header, "[runnable]")
		}
	}
	return false
}

// TestPollOneoffArguments: pollOneoff refuses what WASI preview 1 says is
// wrong, and reads and writes only inside the guest's memory.
func TestPollOneoffArguments(t *testing.T) {
	t.Parallel()
	mod := instantiateTiny(t, context.Background(), tinyRuntime(t))
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
			r := callPoll(t, nil, mod, []uint64{uint64(tc.in), uint64(tc.out), uint64(tc.n), uint64(tc.resultNevent)}, nil)
			must.Nil(t, r.exit)
			must.Eq(t, tc.want, r.errno)
		})
	}
}

// TestPollOneoff: a clock subscription waits out its timeout; stdio and
// files are always ready, at once; sockets are ready when one of the
// instance's is, and the clock fires otherwise.
func TestPollOneoff(t *testing.T) {
	t.Parallel()
	type setup func(t *testing.T, in *instance) (during func(blocked func() bool))
	socket := func(t *testing.T, in *instance) func(func() bool) {
		withListener(t, in)
		return nil
	}
	pending := func(t *testing.T, in *instance) func(func() bool) {
		l := withListener(t, in)
		c, err := net.Dial("tcp", l.Addr().String())
		must.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		return nil
	}
	accepted := func(t *testing.T, in *instance) func(func() bool) {
		l := withListener(t, in)
		c, err := net.Dial("tcp", l.Addr().String())
		must.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		conn, err := l.Accept()
		must.NoError(t, err)
		t.Cleanup(func() { _ = conn.Close() })
		return nil
	}
	connectLater := func(t *testing.T, in *instance) func(func() bool) {
		l := withListener(t, in)
		return func(blocked func() bool) {
			waitUntil(t, blocked, "poll_oneoff never waited")
			c, err := net.Dial("tcp", l.Addr().String())
			must.NoError(t, err)
			t.Cleanup(func() { _ = c.Close() })
		}
	}
	const hour = time.Hour
	for _, tc := range []struct {
		name  string
		setup setup // nil: an instance without sockets
		subs  []subscription
		want  []event
		// least and most bound how long the call takes.
		least, most time.Duration
	}{
		{name: "clock", subs: []subscription{clockSub(7, 30*time.Millisecond)},
			want: []event{{7, errnoSuccess, eventClock}}, least: 30 * time.Millisecond, most: hour},
		{name: "clock of zero", subs: []subscription{clockSub(7, 0)},
			want: []event{{7, errnoSuccess, eventClock}}, most: hour},
		{name: "stdin is ready at once", subs: []subscription{fdSub(1, eventFdRead, 0), clockSub(2, hour)},
			want: []event{{1, errnoSuccess, eventFdRead}}, most: hour / 2},
		{name: "stdout is ready at once", subs: []subscription{clockSub(2, hour), fdSub(1, eventFdWrite, 1)},
			want: []event{{1, errnoSuccess, eventFdWrite}}, most: hour / 2},
		{name: "a file is ready at once", subs: []subscription{fdSub(1, eventFdRead, 5), fdSub(2, eventFdWrite, 6)},
			want: []event{{1, errnoSuccess, eventFdRead}, {2, errnoSuccess, eventFdWrite}}, most: hour / 2},
		{name: "no socket ready: the clock fires", setup: socket, subs: []subscription{fdSub(1, eventFdRead, 3), clockSub(2, 50*time.Millisecond)},
			want: []event{{2, errnoSuccess, eventClock}}, least: 50 * time.Millisecond, most: hour / 2},
		{name: "a connection waits on the listener", setup: pending, subs: []subscription{fdSub(1, eventFdRead, 3), clockSub(2, hour)},
			want: []event{{1, errnoSuccess, eventFdRead}}, most: hour / 2},
		{name: "a connection comes while it waits", setup: connectLater, subs: []subscription{clockSub(2, hour), fdSub(1, eventFdRead, 3)},
			want: []event{{1, errnoSuccess, eventFdRead}}, most: hour / 2},
		{name: "an accepted connection is writable", setup: accepted, subs: []subscription{fdSub(1, eventFdWrite, 4), clockSub(2, hour)},
			want: []event{{1, errnoSuccess, eventFdWrite}}, most: hour / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mod := instantiateTiny(t, context.Background(), tinyRuntime(t))
			in := newTestInstance(t)
			var during func(func() bool)
			if tc.setup != nil {
				during = tc.setup(t, in)
			}
			writeSubscriptions(t, mod.Memory(), tc.subs)
			r := callPoll(t, in, mod, []uint64{subsAt, eventsAt, uint64(len(tc.subs)), neventsAt}, during)
			must.Nil(t, r.exit)
			must.Eq(t, errnoSuccess, r.errno)
			must.Eq(t, tc.want, readEvents(t, mod.Memory()))
			must.GreaterEq(t, tc.least, r.elapsed)
			must.Less(t, tc.most, r.elapsed)
		})
	}
}

// TestPollOneoffWithoutInstance: called outside an instance (no stop to
// watch, no sockets), it sleeps out its clock and reports files ready.
func TestPollOneoffWithoutInstance(t *testing.T) {
	t.Parallel()
	mod := instantiateTiny(t, context.Background(), tinyRuntime(t))
	writeSubscriptions(t, mod.Memory(), []subscription{clockSub(4, 20*time.Millisecond)})
	r := callPoll(t, nil, mod, []uint64{subsAt, eventsAt, 1, neventsAt}, nil)
	must.Eq(t, errnoSuccess, r.errno)
	must.Eq(t, []event{{4, errnoSuccess, eventClock}}, readEvents(t, mod.Memory()))
	must.GreaterEq(t, 20*time.Millisecond, r.elapsed)

	writeSubscriptions(t, mod.Memory(), []subscription{fdSub(5, eventFdRead, 3)})
	r = callPoll(t, nil, mod, []uint64{subsAt, eventsAt, 1, neventsAt}, nil)
	must.Eq(t, errnoSuccess, r.errno)
	must.Eq(t, []event{{5, errnoSuccess, eventFdRead}}, readEvents(t, mod.Memory()))
}

// TestPollOneoffStop: a stop ends a guest waiting in poll_oneoff, whether
// it sleeps on a clock or waits for its sockets without one, as proc_exit
// would, with the exit code of a cancelled context.
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
			mod := instantiateTiny(t, context.Background(), tinyRuntime(t))
			in := newTestInstance(t)
			if tc.sockets {
				withListener(t, in)
			}
			writeSubscriptions(t, mod.Memory(), tc.subs)
			r := callPoll(t, in, mod, []uint64{subsAt, eventsAt, uint64(len(tc.subs)), neventsAt}, func(blocked func() bool) {
				// Stopped once it waits: a stop wakes it.
				waitUntil(t, blocked, "poll_oneoff never waited")
				in.stop(15)
			})
			must.NotNil(t, r.exit, must.Sprint("the stop did not end the guest"))
			must.Eq(t, sys.ExitCodeContextCanceled, r.exit.ExitCode())
		})
	}
}
