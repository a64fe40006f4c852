// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"time"

	"golang.org/x/sys/unix"
)

// dupCloexec duplicates fd, close-on-exec.
func dupCloexec(fd int) (int, error) { return unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0) }

// acceptConn accepts a connection on listener fd, non-blocking and
// close-on-exec.
func acceptConn(fd int) (int, error) {
	nfd, _, err := unix.Accept4(fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
	return nfd, err
}

// pipe makes a non-blocking, close-on-exec pipe.
func pipe(p *[2]int) error { return unix.Pipe2(p[:], unix.O_NONBLOCK|unix.O_CLOEXEC) }

// pollFDs is poll(2) with a timeout in nanoseconds (negative: none).
func pollFDs(fds []unix.PollFd, timeout time.Duration) (int, error) {
	if timeout < 0 {
		return unix.Ppoll(fds, nil, nil)
	}
	ts := unix.NsecToTimespec(int64(timeout))
	return unix.Ppoll(fds, &ts, nil)
}
