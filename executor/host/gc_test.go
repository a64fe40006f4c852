// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"math"
	"os"
	"runtime/debug"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"
)

// TestCollectionHoldsTheGuestInItsHostCall: under a guest without the
// per-loop check, a collection runs only while the guest is inside a host
// call, and the guest coming back from that call waits for the
// collection: back in its own code, it would keep the collection from
// stopping the world, and the executor would freeze.
func TestCollectionHoldsTheGuestInItsHostCall(t *testing.T) {
	in := &instance{}
	ran := false
	must.False(t, in.whileInHost(func() { ran = true }))
	must.False(t, ran, must.Sprint("a collection ran while the guest ran its own code"))

	in.CallHost()
	in.EnterHost()
	collecting, release := make(chan struct{}), make(chan struct{})
	collected := make(chan bool, 1)
	go func() { collected <- in.whileInHost(func() { close(collecting); <-release }) }()
	<-collecting
	returned := make(chan struct{})
	go func() { in.LeaveHost(); close(returned) }()
	select {
	case <-returned:
		t.Fatal("the guest came back from its host call while a collection ran")
	case <-time.After(100 * time.Millisecond): // a span in which it would have come back
	}
	close(release)
	must.True(t, <-collected)
	select {
	case <-returned:
	case <-time.After(10 * time.Second):
		t.Fatal("the guest stayed held after the collection")
	}
	must.Zero(t, in.calls.Inside())
}

// TestHTTPTriggerGCPercent: the trigger's GOGC is the process's, so only
// an executor of its own sets it, and has the previous one back once the
// trigger has ended; the shared executor's tasks leave it alone. (Not
// parallel: the setting is the process's.)
func TestHTTPTriggerGCPercent(t *testing.T) {
	before := debug.SetGCPercent(150)
	defer debug.SetGCPercent(before)
	gogc := func() int { return int(readMetric("/gc/gogc:percent")) }

	startServedHTTPTask(t, true, nil)
	must.Eq(t, 150, gogc(), must.Sprint("a task of the shared executor changed the process's GOGC"))

	own := startServedHTTPTask(t, false, nil).tk
	must.Eq(t, httpGCPercent, gogc())
	own.prog.stop(int32(syscall.SIGTERM))
	select {
	case <-own.run.done():
	case <-time.After(30 * time.Second):
		t.Fatal("the trigger did not drain")
	}
	must.Eq(t, 150, gogc(), must.Sprint("the trigger's GOGC outlived it"))
}

// TestGCBackOnceTheGuestEnds: once a guest without the per-loop check has
// ended, automatic collection is back, and the backstop limit is gone (a
// negative SetMemoryLimit would have left it). (Not parallel: the setting
// is the process's.)
func TestGCBackOnceTheGuestEnds(t *testing.T) {
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	defer debug.SetMemoryLimit(math.MaxInt64)
	s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
	s.disableGC()
	must.Less(t, int64(math.MaxInt64), debug.SetMemoryLimit(-1))
	in := &instance{ended: make(chan struct{})}
	close(in.ended)
	s.collectWhileBlocked(in)
	must.Eq(t, 100, debug.SetGCPercent(100))
	must.Eq(t, int64(math.MaxInt64), debug.SetMemoryLimit(-1))
}

// garbage is where TestPauseCollection's allocations go, so that the
// compiler keeps them.
var garbage []byte

// TestPauseCollection: while a task's module loads, the collector does not
// run for what the load allocates within loadHeadroom, and afterwards it
// is back as it was; under a guest without the per-loop check, whose
// collections the executor schedules itself, it changes nothing.
func TestPauseCollection(t *testing.T) {
	s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
	before := debug.SetGCPercent(100)
	defer debug.SetGCPercent(before)
	resume := s.pauseCollection()
	cycles := readMetric("/gc/cycles/automatic:gc-cycles")
	for range 16 {
		garbage = make([]byte, 1<<20)
	}
	must.Eq(t, cycles, readMetric("/gc/cycles/automatic:gc-cycles"), must.Sprint("16 MiB of garbage collected during the load"))
	resume()
	must.Eq(t, 100, debug.SetGCPercent(100))
	must.Eq(t, int64(math.MaxInt64), debug.SetMemoryLimit(-1))

	s.disableGC()
	defer func() {
		s.gcMu.Lock()
		s.gcOff = false
		s.gcMu.Unlock()
		debug.SetGCPercent(100)
		debug.SetMemoryLimit(math.MaxInt64)
	}()
	limit := debug.SetMemoryLimit(-1)
	s.pauseCollection()()
	must.Eq(t, -1, debug.SetGCPercent(-1))
	must.Eq(t, limit, debug.SetMemoryLimit(-1))
}
