// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"errors"
	"fmt"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// becomeUser makes the whole executor process, every thread of it, the
// user u, for good: supplementary groups, then group, then user (real,
// effective and saved), after which it holds no capability and cannot
// regain root. It is done once, after the executor has done what needs
// root (read the module, write the compiled-module cache, join the
// cgroups, bind the task's sockets in the allocation's network
// namespace) and before the guest runs.
//
// Go applies these calls to all the process's threads (syscall.Setuid and
// friends since Go 1.16), so no goroutine is left running as root.
func becomeUser(u *proto.RunAs) error {
	// No new privileges, ever: nothing the executor could exec (it execs
	// nothing) would gain any through a set-user-ID bit or file
	// capabilities. Serve set it on every thread already
	// (forbidNewPrivileges); again on this thread, the one that drops,
	// for a process that links cgo, where Serve could set only its own.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		return fmt.Errorf("set no_new_privs: %w", err)
	}
	// A spare took the default user's groups when it started (takeGroups):
	// one stop of every thread fewer for a task of that user.
	if err := setGroups(u.Groups); err != nil {
		return fmt.Errorf("set the supplementary groups of user %s: %w", u.Name, err)
	}
	if err := syscall.Setgid(int(u.Gid)); err != nil {
		return fmt.Errorf("become group %d of user %s: %w", u.Gid, u.Name, err)
	}
	if err := syscall.Setuid(int(u.Uid)); err != nil {
		return fmt.Errorf("become user %s (uid %d): %w", u.Name, u.Uid, err)
	}
	if u.Uid != 0 {
		// The drop must be final: a process that can become root again
		// was not dropped. Tried on this thread alone (a raw setuid, not
		// Go's, which stops the world to try it on every thread): if it
		// succeeds, the start fails and the executor, whose start failed,
		// exits.
		if _, _, e := unix.RawSyscall(unix.SYS_SETUID, 0, 0, 0); e == 0 {
			return errors.New("the executor could become root again after dropping to user " + u.Name)
		}
	}
	return nil
}

// takeGroups makes groups the process's supplementary groups, every
// thread's, while it runs as root and before it has a task, so that a
// task of the user they are the groups of need not set them (see
// executor.Warm.Groups); nothing where groups is empty or the process is
// not root. Files root makes get its group, not these; its access to
// files does not depend on them while it holds CAP_DAC_OVERRIDE (not
// where a file system ignores capabilities, as NFS with root squashing
// does, which then sees the default user's groups).
func takeGroups(groups []uint32) error {
	if len(groups) == 0 || os.Geteuid() != 0 {
		return nil
	}
	return setGroups(groups)
}

// setGroups makes groups the process's supplementary groups, every
// thread's (Go's Setgroups stops every thread to set them), unless they
// are already.
func setGroups(groups []uint32) error {
	gids := make([]int, len(groups))
	for i, g := range groups {
		gids[i] = int(g)
	}
	if haveGroups(gids) {
		return nil
	}
	return syscall.Setgroups(gids)
}

// haveGroups says whether the calling thread's supplementary groups, which
// Go keeps the same on every thread, are want, in any order.
func haveGroups(want []int) bool {
	have, err := unix.Getgroups()
	if err != nil || len(have) != len(want) {
		return false
	}
	slices.Sort(have)
	return slices.Equal(have, slices.Sorted(slices.Values(want)))
}

// asUserOnThread runs instantiate as user u on an OS thread that first
// entered the network namespace at netns (when set), so that the sockets
// wazero binds while it instantiates live there. With guestCodeFirst (the
// module has a start function, which runs inside instantiation) the
// process drops before instantiate, and the sockets are bound as u;
// otherwise instantiation runs no guest code, binds as root (ports below
// 1024 too) and the process drops right after.
//
// The thread never leaves the namespace (a dropped process cannot setns
// back): it stays locked to its goroutine, and Go ends it when the
// goroutine returns, so no other goroutine ever runs on it.
func asUserOnThread[T any](u *proto.RunAs, netns string, guestCodeFirst bool, instantiate func() (T, error), discard func(T), trace *executor.Trace) (T, error) {
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: see above
		var r result
		defer func() { done <- r }()
		if netns != "" {
			if err := enterNetNS(netns); err != nil {
				r.err = errNetNS{err}
				return
			}
		}
		if guestCodeFirst {
			trace.Mark(executor.SpanInstantiate)
			if err := becomeUser(u); err != nil {
				r.err = errDrop{err}
				return
			}
			trace.Mark(executor.SpanUser)
		}
		if r.v, r.err = instantiate(); r.err != nil || guestCodeFirst {
			return
		}
		trace.Mark(executor.SpanInstantiate)
		if err := becomeUser(u); err != nil {
			discard(r.v)
			var zero T
			r.v, r.err = zero, errDrop{err}
		}
		trace.Mark(executor.SpanUser)
	}()
	r := <-done
	return r.v, r.err
}

// rootOf makes the open directory d an os.Root of its own, through
// /proc/self/fd: the kernel follows that link to the directory itself,
// without resolving the path it was opened by, which a process that has
// become a task's user may not be able to (only the directory's own
// permissions apply). d stays the caller's.
func rootOf(d *os.File) (*os.Root, error) {
	return os.OpenRoot("/proc/self/fd/" + strconv.Itoa(int(d.Fd())))
}

// peerMayHandOver checks that the process at the other end of conn may
// hand a task's descriptors over: root, as the driver is (a driver that is
// not root hands nothing over: its shared executor runs as it does).
func peerMayHandOver(conn *net.UnixConn) error {
	cred, err := peerCredentials(conn)
	if err != nil {
		return err
	}
	if cred.Uid != 0 {
		return fmt.Errorf("uid %d (pid %d) may not hand over a task's descriptors: only root (the driver) may", cred.Uid, cred.Pid)
	}
	return nil
}

// peerCredentials are those of the process at the other end of conn, as
// the kernel recorded them when it connected (SO_PEERCRED).
func peerCredentials(conn *net.UnixConn) (*unix.Ucred, error) {
	raw, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return nil, err
	}
	return cred, credErr
}
