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
// what that thread spent spinning, and nothing for a thread that is gone.
func TestThreadCPU(t *testing.T) {
	tid := make(chan int)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		for end := time.Now().Add(200 * time.Millisecond); time.Now().Before(end); {
		}
		tid <- threadID()
		<-done
	}()
	id := <-tid
	spent := threadCPU(id)
	close(done)
	must.Between(t, 100*time.Millisecond, spent, 2*time.Second)
	must.Zero(t, threadCPU(0))
}
