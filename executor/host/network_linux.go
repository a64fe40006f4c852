// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// newSocket makes a socket, non-blocking and close-on-exec, in the
// calling thread's network namespace.
func newSocket(family, typ int) (int, error) {
	return unix.Socket(family, typ|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
}

// nsThread is an OS thread that stays in an allocation's network
// namespace, where it makes the task's outbound sockets: a socket belongs
// to the namespace it is made in, wherever it is used, and a thread that
// entered the namespace while the executor could (setns needs
// CAP_SYS_ADMIN) stays there after the executor has become the task's
// user.
type nsThread struct {
	work chan func()
	done chan struct{}
}

// newNSThread starts the thread in the namespace at path.
func newNSThread(path string) (*nsThread, error) {
	t := &nsThread{work: make(chan func()), done: make(chan struct{})}
	entered := make(chan error, 1)
	go func() {
		// Never unlocked: the thread ends with the goroutine, so no other
		// goroutine ever runs in the namespace.
		runtime.LockOSThread()
		if err := enterNetNS(path); err != nil {
			entered <- err
			return
		}
		entered <- nil
		for {
			select {
			case f := <-t.work:
				f()
			case <-t.done:
				return
			}
		}
	}()
	if err := <-entered; err != nil {
		return nil, err
	}
	return t, nil
}

// do runs f on the thread and waits for it.
func (t *nsThread) do(f func()) {
	ran := make(chan struct{})
	t.work <- func() { f(); close(ran) }
	<-ran
}

func (t *nsThread) close() { close(t.done) }
