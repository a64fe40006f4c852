// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// inNetNS runs fn on an OS thread that has entered the network namespace
// at path (the allocation's, which Nomad made for bridge networking), so
// that the sockets fn creates live there; the executor itself stays where
// it is. An empty path runs fn as it is. fn must create its sockets on the
// calling goroutine, as net.Listen does.
//
// setns changes the calling thread only: the goroutine is locked to its
// thread, enters, runs fn, and returns to the namespace it came from. If
// it cannot return, the thread is left locked, and Go ends it when the
// goroutine exits, so no other goroutine ever runs in the wrong namespace.
func inNetNS(path string, fn func() error) error {
	if path == "" {
		return fn()
	}
	runtime.LockOSThread()
	origin, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return errNetNS{fmt.Errorf("open the executor's network namespace: %w", err)}
	}
	defer origin.Close()
	if err := enterNetNS(path); err != nil {
		runtime.UnlockOSThread()
		return errNetNS{err}
	}
	ferr := fn()
	if err := unix.Setns(int(origin.Fd()), unix.CLONE_NEWNET); err != nil {
		// The thread stays locked and dies with this goroutine's caller.
		return errNetNS{fmt.Errorf("return from the allocation's network namespace: %w", err)}
	}
	runtime.UnlockOSThread()
	return ferr
}

// enterNetNS moves the calling thread, which the caller has locked, into
// the network namespace at path.
func enterNetNS(path string) error {
	target, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open the allocation's network namespace: %w", err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter the allocation's network namespace %s: %w", path, err)
	}
	return nil
}
