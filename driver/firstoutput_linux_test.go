// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// firstOutput returns a channel that receives when the first byte is in
// the log file at path, and is closed if none is within a minute. It is
// told by inotify (a write to any file of path's directory wakes it, then
// a stat reads the size): the time it takes is the kernel's wake-up, as
// with the native baseline's pipe, where polling would add half its period
// to every start it times. The goroutine that waits ends with the test
// at the latest.
func firstOutput(tb testing.TB, path string) <-chan time.Time {
	tb.Helper()
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := unix.InotifyAddWatch(fd, filepath.Dir(path), unix.IN_CREATE|unix.IN_MODIFY); err != nil {
		_ = unix.Close(fd)
		tb.Fatal(err)
	}
	// Closing stop's write end ends the wait early: the test's cleanup
	// does, and waits for the goroutine.
	var stop [2]int
	if err := unix.Pipe2(stop[:], unix.O_CLOEXEC); err != nil {
		_ = unix.Close(fd)
		tb.Fatal(err)
	}
	ch := make(chan time.Time, 1)
	done := make(chan struct{})
	tb.Cleanup(func() {
		_ = unix.Close(stop[1])
		<-done
	})
	go func() {
		defer close(done)
		defer func() {
			_ = unix.Close(fd)
			_ = unix.Close(stop[0])
		}()
		deadline := time.Now().Add(time.Minute)
		buf := make([]byte, 64<<10)
		for {
			if st, err := os.Stat(path); err == nil && st.Size() > 0 {
				ch <- time.Now()
				return
			}
			left := time.Until(deadline)
			if left <= 0 {
				close(ch)
				return
			}
			pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}, {Fd: int32(stop[0]), Events: unix.POLLIN}}
			if _, err := unix.Poll(pfd, int(left.Milliseconds())+1); (err != nil && err != unix.EINTR) || pfd[1].Revents != 0 {
				close(ch)
				return
			}
			// Drain the events: the stat above is what tells.
			for {
				if _, err := unix.Read(fd, buf); err != nil {
					break
				}
			}
		}
	}()
	return ch
}
