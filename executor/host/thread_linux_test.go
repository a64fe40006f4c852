// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"runtime"
	"testing"
	"time"

	"github.com/shoenig/test/must"
)

// TestThreadCPU: another thread's CPU clock, read from this one, counts
// what that thread spent spinning (it spins until its own clock, which
// does not count time on a busy machine's run queue, says 150 ms more than
// when it began: the thread may be one the runtime reuses, with the CPU
// time of earlier tests on it), and nothing for a thread that is gone.
func TestThreadCPU(t *testing.T) {
	type began struct {
		tid int
		cpu time.Duration
	}
	spun := make(chan began)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		self := threadID()
		before := threadCPU(self)
		for deadline := time.Now().Add(10 * time.Second); threadCPU(self)-before < 150*time.Millisecond && time.Now().Before(deadline); {
		}
		spun <- began{self, before}
		<-done
	}()
	b := <-spun
	spent := threadCPU(b.tid) - b.cpu
	close(done)
	must.Between(t, 150*time.Millisecond, spent, 2*time.Second)
	must.Zero(t, threadCPU(0))
}
