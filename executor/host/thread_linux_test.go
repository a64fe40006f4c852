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
// does not count time on a busy machine's run queue, says 150 ms), and
// nothing for a thread that is gone.
func TestThreadCPU(t *testing.T) {
	tid := make(chan int)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		self := threadID()
		for deadline := time.Now().Add(10 * time.Second); threadCPU(self) < 150*time.Millisecond && time.Now().Before(deadline); {
		}
		tid <- self
		<-done
	}()
	id := <-tid
	spent := threadCPU(id)
	close(done)
	must.Between(t, 150*time.Millisecond, spent, 2*time.Second)
	must.Zero(t, threadCPU(0))
}
