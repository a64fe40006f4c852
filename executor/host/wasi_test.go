// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"math"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/shoenig/test/must"
	"github.com/tetratelabs/wazero/sys"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/internal/wasmtest"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

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

// waitResult is how one of an instance's waits (Sleep, WaitSockets) ended.
type waitResult struct {
	ready   bool
	exit    *sys.ExitError // it ended the guest, as a stop does
	elapsed time.Duration
}

// callWait runs wait, one of in's waits, on a goroutine of its own, as the
// guest's host call would, and runs during (when set) meanwhile, with a
// function that says whether the wait is blocked. It fails the test if the
// wait has not returned by the deadline; the test's end stops the
// instance, which ends the wait, and waits for it.
func callWait(t *testing.T, in *instance, wait func() bool, during func(blocked func() bool)) waitResult {
	t.Helper()
	id := make(chan string, 1)
	done := make(chan waitResult, 1)
	finished := make(chan struct{})
	// Whatever happens to the test, the wait is ended and waited for.
	t.Cleanup(func() {
		in.cancel()
		<-finished
	})
	go func() {
		defer close(finished)
		var r waitResult
		began := time.Now()
		r.exit = wasmtest.Exit(func() {
			id <- goroutineID()
			r.ready = wait()
		})
		r.elapsed = time.Since(began)
		done <- r
	}()
	if during != nil {
		g := <-id
		during(func() bool { return goroutineBlocked(g) })
	}
	select {
	case r := <-done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("the wait did not return")
		return waitResult{}
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

// TestWaitSockets: an instance without sockets is ready at once; one with
// sockets is ready when one of its own is, a connection on its listener or
// an accepted one that can be written, and waits out its timeout
// otherwise.
func TestWaitSockets(t *testing.T) {
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
			waitUntil(t, blocked, "the wait never blocked")
			c, err := net.Dial("tcp", l.Addr().String())
			must.NoError(t, err)
			t.Cleanup(func() { _ = c.Close() })
		}
	}
	const hour = time.Hour
	for _, tc := range []struct {
		name    string
		setup   setup // nil: an instance without sockets
		write   bool
		timeout time.Duration
		ready   bool
		// least and most bound how long the wait takes.
		least, most time.Duration
	}{
		{name: "without sockets, at once", timeout: hour, ready: true, most: hour / 2},
		{name: "without sockets, at once, for writing", write: true, timeout: math.MaxInt64, ready: true, most: hour / 2},
		{name: "no socket ready: the timeout passes", setup: socket, timeout: 50 * time.Millisecond, least: 50 * time.Millisecond, most: hour / 2},
		{name: "a connection waits on the listener", setup: pending, timeout: hour, ready: true, most: hour / 2},
		{name: "a connection comes while it waits", setup: connectLater, timeout: hour, ready: true, most: hour / 2},
		{name: "an accepted connection is writable", setup: accepted, write: true, timeout: hour, ready: true, most: hour / 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := newTestInstance(t)
			var during func(func() bool)
			if tc.setup != nil {
				during = tc.setup(t, in)
			}
			r := callWait(t, in, func() bool { return in.WaitSockets(tc.write, tc.timeout) }, during)
			must.Nil(t, r.exit)
			must.Eq(t, tc.ready, r.ready)
			must.GreaterEq(t, tc.least, r.elapsed)
			must.Less(t, tc.most, r.elapsed)
		})
	}
}

// TestWaitsEndOnStop: a stop ends a guest waiting in the host, whether it
// sleeps or waits for its sockets with a timeout or without, as proc_exit
// would, with the exit code of a cancelled context.
func TestWaitsEndOnStop(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		sockets bool
		wait    func(in *instance) bool
	}{
		{"sleeping", false, func(in *instance) bool { in.Sleep(math.MaxInt64); return false }},
		{"waiting for sockets", true, func(in *instance) bool { return in.WaitSockets(false, math.MaxInt64) }},
		{"waiting for sockets with a timeout", true, func(in *instance) bool { return in.WaitSockets(false, time.Hour) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := newTestInstance(t)
			if tc.sockets {
				withListener(t, in)
			}
			r := callWait(t, in, func() bool { return tc.wait(in) }, func(blocked func() bool) {
				// Stopped once it waits: a stop wakes it.
				waitUntil(t, blocked, "the wait never blocked")
				in.stop(15)
			})
			must.NotNil(t, r.exit, must.Sprint("the stop did not end the guest"))
			must.Eq(t, sys.ExitCodeContextCanceled, r.exit.ExitCode())
		})
	}
}

// TestHostCallHooks: what the WASI host's guard tells an instance of its
// host calls keeps its counts: calls made, calls it is inside (an abort
// counts out only a call still in: wazero aborts calls that were left, or
// never entered), closes.
func TestHostCallHooks(t *testing.T) {
	t.Parallel()
	type counts struct {
		made   uint64
		inside int32
		closes uint32
	}
	for _, tc := range []struct {
		name  string
		hooks func(in *instance)
		want  counts
	}{
		{"a call", func(in *instance) { in.CallHost(); in.EnterHost() }, counts{made: 1, inside: 1}},
		{"a call that returns", func(in *instance) { in.CallHost(); in.EnterHost(); in.LeaveHost() }, counts{made: 1}},
		{"a call that does not return", func(in *instance) { in.CallHost(); in.EnterHost(); in.AbortHost() }, counts{made: 1}},
		{"a call aborted after it returned", func(in *instance) { in.CallHost(); in.EnterHost(); in.LeaveHost(); in.AbortHost() }, counts{made: 1}},
		{"a call aborted before it entered", func(in *instance) { in.CallHost(); in.AbortHost() }, counts{made: 1}},
		{"a close", func(in *instance) { in.CallHost(); in.EnterHost(); in.LeaveHost(); in.ClosedFD() }, counts{made: 1, closes: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := newTestInstance(t)
			tc.hooks(in)
			must.Eq(t, tc.want, counts{in.calls.Made(), in.calls.Inside(), in.closes.Load()})
		})
	}
}
