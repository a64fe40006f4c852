// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"errors"
	"io/fs"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoenig/test/must"
)

// TestThreadCPU: another thread's CPU clock, read from this one, counts
// what that thread spent spinning (it spins until its own clock, which
// does not count time on a busy machine's run queue, says 150 ms more than
// when it began: the thread may be one the runtime reuses, with the CPU
// time of earlier tests on it), and nothing for a thread that is gone.
func TestThreadCPU(t *testing.T) {
	type began struct {
		tid int
		cpu time.Duration
	}
	spun := make(chan began)
	done := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		self := threadID()
		before := threadCPU(self)
		for deadline := time.Now().Add(10 * time.Second); threadCPU(self)-before < 150*time.Millisecond && time.Now().Before(deadline); {
		}
		spun <- began{self, before}
		<-done
	}()
	b := <-spun
	spent := threadCPU(b.tid) - b.cpu
	close(done)
	must.Between(t, 150*time.Millisecond, spent, 2*time.Second)
	must.Zero(t, threadCPU(0))
}

// TestForbidNewPrivileges: no_new_privs is set on every thread of the
// process (only the calling one where cgo is linked: make test runs this
// once more without cgo, as the executor's program is built), and on a
// thread made afterwards. It stays set for the rest of the test binary,
// which execs nothing that needs more privileges than it has.
func TestForbidNewPrivileges(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	parkThreads(t, release, 4)
	// Never unlocked: with cgo linked, only this thread gets the
	// attribute, and it ends with the test rather than run other tests.
	runtime.LockOSThread()
	everyThread, err := forbidNewPrivileges()
	must.NoError(t, err)
	must.Eq(t, !cgoLinked, everyThread)
	self := strconv.Itoa(threadID())
	tasks, err := os.ReadDir("/proc/self/task")
	must.NoError(t, err)
	must.Greater(t, 4, len(tasks))
	for _, task := range tasks {
		if cgoLinked && task.Name() != self {
			continue
		}
		if v, ok := noNewPrivs(t, task.Name()); ok {
			must.Eq(t, "1", v, must.Sprintf("thread %s", task.Name()))
		}
	}
	// A thread made afterwards, by whichever thread the runtime makes it
	// from.
	hold := make(chan struct{})
	defer close(hold)
	id := strconv.Itoa(newThread(t, hold))
	if !cgoLinked {
		v, ok := noNewPrivs(t, id)
		must.True(t, ok, must.Sprintf("thread %s, made after, is gone", id))
		must.Eq(t, "1", v, must.Sprintf("thread %s, made after", id))
	}
}

// noNewPrivs is the NoNewPrivs field of thread tid of this process; false
// when the thread has ended since it was listed (a thread an earlier
// test locked ends with its goroutine).
func noNewPrivs(t *testing.T, tid string) (string, bool) {
	t.Helper()
	b, err := os.ReadFile("/proc/self/task/" + tid + "/status")
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return "", false
	}
	must.NoError(t, err)
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "NoNewPrivs:"); ok {
			return strings.TrimSpace(v), true
		}
	}
	t.Fatalf("no NoNewPrivs in the status of thread %s", tid)
	return "", false
}
