// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build !linux

package driver

import (
	"os"
	"testing"
	"time"
)

// firstOutput returns a channel that receives when the first byte is in
// the log file at path, which it polls every 100 µs, and is closed if none
// is within a minute, or the test ends first (its cleanup waits for it).
func firstOutput(tb testing.TB, path string) <-chan time.Time {
	ch := make(chan time.Time, 1)
	stop, done := make(chan struct{}), make(chan struct{})
	tb.Cleanup(func() {
		close(stop)
		<-done
	})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Microsecond)
		defer tick.Stop()
		deadline := time.After(time.Minute)
		for {
			if st, err := os.Stat(path); err == nil && st.Size() > 0 {
				ch <- time.Now()
				return
			}
			select {
			case <-tick.C:
			case <-deadline:
				close(ch)
				return
			case <-stop:
				close(ch)
				return
			}
		}
	}()
	return ch
}
