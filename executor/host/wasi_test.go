// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"runtime"
	"strings"
	"testing"

	"github.com/shoenig/test/must"
)

// newTestInstance is an instance with nothing but its stop context, which
// ends with the test.
func newTestInstance(t *testing.T) *instance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &instance{ctx: ctx, cancel: cancel, ended: make(chan struct{})}
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

// TestHostCallHooks: what the WASI host's guard tells an instance of its
// host calls keeps its counts: calls made, calls it is inside (an abort
// counts out only a call still in: wazero aborts calls that were left, or
// never entered).
func TestHostCallHooks(t *testing.T) {
	t.Parallel()
	type counts struct {
		made   uint64
		inside int32
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
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in := newTestInstance(t)
			tc.hooks(in)
			must.Eq(t, tc.want, counts{in.calls.Made(), in.calls.Inside()})
		})
	}
}
