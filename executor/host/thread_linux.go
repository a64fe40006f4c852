// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"errors"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// threadID is the calling thread's ID.
func threadID() int { return syscall.Gettid() }

// threadCPU is the CPU time thread tid of this process has used (user and
// system together), or zero when tid is 0 or the thread is gone. It reads
// the thread's CPU clock: one clock_gettime, where /proc/self/task/<tid>/stat
// took an open, a read and a parse, about 30 µs, which for a thousand tasks
// sampled every second was a good part of a core.
func threadCPU(tid int) time.Duration {
	if tid == 0 {
		return 0
	}
	// Linux's MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED): the clock of one
	// thread, readable by any thread of the same process.
	const cpuclockSched, cpuclockPerThread = 2, 4
	clock := int32(^uint32(tid)<<3) | cpuclockSched | cpuclockPerThread
	var ts unix.Timespec
	if err := unix.ClockGettime(clock, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

// forbidNewPrivileges sets no_new_privs on every thread of the process:
// nothing it could exec would gain privileges through a set-user-ID bit
// or file capabilities. The attribute is each thread's own (prctl(2)),
// inherited by the threads a thread makes, so it is set on all of them at
// once, with the world stopped, as Go's own Setuid reaches every thread.
// Where cgo is linked, which AllThreadsSyscall refuses, only the calling
// thread's is set (becomeUser sets its thread's again), and everyThread
// is false.
func forbidNewPrivileges() (everyThread bool, err error) {
	_, _, errno := syscall.AllThreadsSyscall(syscall.SYS_PRCTL, unix.PR_SET_NO_NEW_PRIVS, 1, 0)
	if errors.Is(errno, syscall.ENOTSUP) {
		return false, unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
	}
	if errno != 0 {
		return false, errno
	}
	return true, nil
}
