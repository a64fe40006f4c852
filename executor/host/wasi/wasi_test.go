// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/sys"
)

// testInstance stands in for the executor's instance: an environment, a
// stop, a sleep that the stop cuts short, sockets as ready as the test
// says, and the counts of the host calls the guard told it of, kept as
// the executor keeps them.
type testInstance struct {
	ctx    context.Context
	cancel context.CancelFunc
	env    []string
	// sockets answers WaitSockets; nil: the instance has none, and is
	// ready at once.
	sockets func(write bool, timeout time.Duration) bool

	calls  HostCallCount
	closes atomic.Uint32 // descriptors it closed
	// held, write-locked by a test, holds a guest coming back from a host
	// call, as the executor's collection does.
	held sync.RWMutex
}

// newTestInstance is a testInstance whose stop context ends with the test.
func newTestInstance(t *testing.T) *testInstance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return &testInstance{ctx: ctx, cancel: cancel}
}

func (in *testInstance) stop() { in.cancel() }

func (in *testInstance) Environ() []string { return in.env }

func (in *testInstance) Sleep(d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-in.ctx.Done():
		panic(sys.NewExitError(sys.ExitCodeContextCanceled))
	}
}

func (in *testInstance) WaitSockets(write bool, timeout time.Duration) bool {
	if in.sockets == nil {
		return true
	}
	return in.sockets(write, timeout)
}

func (in *testInstance) CallHost()  { in.calls.Call() }
func (in *testInstance) EnterHost() { in.calls.Enter() }
func (in *testInstance) AbortHost() { in.calls.Abort() }

func (in *testInstance) LeaveHost() {
	in.calls.Leave()
	in.held.RLock()
	in.held.RUnlock() //nolint:staticcheck // SA2001: the wait for the holder is the point
}

func (in *testInstance) ClosedFD() { in.closes.Add(1) }

// exitCode is the exit code err ends a guest with, or -1.
func exitCode(err error) int {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		return int(exit.ExitCode())
	}
	return -1
}

// waitUntil waits up to 10 seconds for cond, and fails the test with msg
// if it does not come.
func waitUntil(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
