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
// is within a minute.
func firstOutput(_ testing.TB, path string) <-chan time.Time {
	ch := make(chan time.Time, 1)
	go func() {
		deadline := time.Now().Add(time.Minute)
		for time.Now().Before(deadline) {
			if st, err := os.Stat(path); err == nil && st.Size() > 0 {
				ch <- time.Now()
				return
			}
			time.Sleep(100 * time.Microsecond)
		}
		close(ch)
	}()
	return ch
}
