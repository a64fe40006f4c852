// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"unsafe"
)

// Why the executor joins a cgroup thread by thread.
//
// Moving a whole process into a cgroup (its pid written into cgroup.procs)
// takes the kernel's threadgroup lock for writing. Unless the node's
// cgroups favour dynamic changes (the mount option favordynmods), that
// waits for an RCU grace period: 7 ms at the median and 15 ms at the 90th
// percentile on a 2-core VM with cgroup v1 (BenchmarkJoin), once for each
// controller's directory, when no other migration took the lock in the
// last grace period. Most task starts paid it; it was most of a Go
// module's start. A thread that moves itself (0, "the caller", written
// into the v1 tasks file) takes no such lock: only the cgroup mutex.
// syscall.AllThreadsSyscall has every thread of the Go runtime make that
// one write, with the world stopped, so no thread is created or left out
// meanwhile; later threads are cloned from moved ones and start in the
// task's cgroups. It is how Go's own Setuid reaches every thread.
//
// It is not used where the node favours dynamic changes (the process's
// move is then cheaper than a signal to every thread), where the cgroup
// has no tasks file (cgroup v2 moves threads only within a threaded
// subtree, which the task's cgroups are not), or where the runtime cannot
// (AllThreadsSyscall refuses when cgo is linked): the process moves by
// its cgroup.procs.

// joinEachThread says whether the executor's threads should each move
// themselves: not where any cgroup hierarchy is mounted with
// favordynmods, which switches the kernel's lock for all of them.
var joinEachThread = sync.OnceValue(func() bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return true
	}
	defer f.Close()
	return !favoursDynamicChanges(f)
})

// favoursDynamicChanges reads mountinfo (proc(5)): whether a cgroup or
// cgroup2 filesystem is mounted with the super option favordynmods.
func favoursDynamicChanges(mountinfo io.Reader) bool {
	s := bufio.NewScanner(mountinfo)
	for s.Scan() {
		// ... optional fields - <fstype> <source> <super options>
		_, after, ok := bytes.Cut(s.Bytes(), []byte(" - "))
		if !ok {
			continue
		}
		f := strings.Fields(string(after))
		if len(f) < 3 || (f[0] != "cgroup" && f[0] != "cgroup2") {
			continue
		}
		for _, o := range strings.Split(f[2], ",") {
			if o == "favordynmods" {
				return true
			}
		}
	}
	return false
}

// sameForEveryThread says whether moving into the v1 cgroup dir succeeds
// or fails alike for every thread of the process, as AllThreadsSyscall
// needs (it ends the process when threads' results differ). Not where
// the pids controller is (its limit can refuse a later thread, not the
// first), nor where the memory controller moves charges with a process
// (memory.move_charge_at_immigrate: only the leader's move moves them,
// and can fail for want of room).
func sameForEveryThread(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, "pids.max")); err == nil {
		return false
	}
	b, err := os.ReadFile(filepath.Join(dir, "memory.move_charge_at_immigrate"))
	return err != nil || strings.TrimSpace(string(b)) == "0"
}

// caller is what each thread writes into the tasks file: itself.
var caller = [1]byte{'0'}

// joinByThread moves every thread of the process into the v1 cgroup dir,
// each thread itself. done is false, with no error, where dir has no tasks
// file or the runtime cannot reach every thread: the caller then moves
// the process. A write that fails fails on the first thread, before any
// other is moved (AllThreadsSyscall stops at the first failure).
func joinByThread(dir string) (done bool, err error) {
	if !sameForEveryThread(dir) {
		return false, nil
	}
	f, err := os.OpenFile(filepath.Join(dir, "tasks"), os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	defer f.Close()
	_, _, errno := syscall.AllThreadsSyscall(syscall.SYS_WRITE, f.Fd(), uintptr(unsafe.Pointer(&caller[0])), uintptr(len(caller)))
	switch {
	case errno == syscall.ENOTSUP:
		return false, nil
	case errno != 0:
		return false, errno
	}
	return true, nil
}
