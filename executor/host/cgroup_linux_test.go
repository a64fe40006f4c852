// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver/cgroups/cgroupstest"
)

func TestFavoursDynamicChanges(t *testing.T) {
	const v1 = `25 1 0:23 / /sys/fs/cgroup rw,nosuid shared:9 - tmpfs tmpfs rw,mode=755
26 25 0:24 / /sys/fs/cgroup/cpu rw,relatime shared:10 - cgroup cgroup rw,cpu
27 25 0:25 / /sys/fs/cgroup/memory rw,relatime shared:11 - cgroup cgroup rw,memory
`
	for name, c := range map[string]struct {
		mountinfo string
		want      bool
	}{
		"v1":                  {v1, false},
		"v1, a named one":     {v1 + "28 1 0:26 / /run/favor rw,relatime - cgroup cgroup rw,name=favor,favordynmods\n", true},
		"v2":                  {"30 1 0:27 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n", false},
		"v2 favouring":        {"30 1 0:27 / /sys/fs/cgroup rw,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,favordynmods\n", true},
		"not a cgroup's":      {"40 1 0:30 / /mnt rw - tmpfs favordynmods rw,favordynmods\n", false},
		"an optional field":   {"26 25 0:24 / /sys/fs/cgroup/cpu rw shared:10 master:3 - cgroup cgroup rw,cpu,favordynmods\n", true},
		"no separator at all": {"26 25 0:24 / /x rw cgroup cgroup rw,favordynmods\n", false},
	} {
		t.Run(name, func(t *testing.T) {
			must.Eq(t, c.want, favoursDynamicChanges(strings.NewReader(c.mountinfo)))
		})
	}
}

// TestJoinCgroupEveryThread: whichever way the executor joins a cgroup,
// every thread it has ends up in it, and so does every thread it makes
// afterwards. On cgroup v1 the way by thread is taken (the tasks file) in
// a program without cgo, as the executor's is (make test runs this test
// once more with CGO_ENABLED=0); with cgo, and on v2, the process moves.
func TestJoinCgroupEveryThread(t *testing.T) {
	version := cgroupstest.Require(t, hostCgroupVersion)
	release := make(chan struct{})
	defer close(release)
	parkThreads(t, release, 4)
	for _, byThread := range []bool{true, false} {
		t.Run(fmt.Sprintf("byThread=%v", byThread), func(t *testing.T) {
			dirs := testCgroups(t, version)
			for _, dir := range dirs {
				if byThread {
					done, err := joinByThread(dir)
					must.NoError(t, err)
					must.Eq(t, version == "v1" && !cgoLinked, done, must.Sprintf("joined thread by thread (cgroup %s, cgo linked %v)", version, cgoLinked))
					if !done {
						must.NoError(t, joinCgroup(dir, byThread))
					}
				} else {
					must.NoError(t, joinCgroup(dir, byThread))
				}
			}
			for _, dir := range dirs {
				assertEveryThreadIn(t, dir)
			}
			// A thread made after the join.
			hold := make(chan struct{})
			defer close(hold)
			tid := newThread(t, hold)
			for _, dir := range dirs {
				mustBeIn(t, fmt.Sprintf("/proc/self/task/%d/cgroup", tid), dir)
			}
		})
	}
}

// TestSameForEveryThread: a cgroup whose pids controller or moved memory
// charges could refuse some threads and not others is joined by the
// process.
func TestSameForEveryThread(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		files map[string]string
		want  bool
	}{
		"cpu":                              {map[string]string{"cpu.shares": "1024\n"}, true},
		"memory":                           {map[string]string{"memory.move_charge_at_immigrate": "0\n"}, true},
		"memory, moving charges":           {map[string]string{"memory.move_charge_at_immigrate": "3\n"}, false},
		"pids, co-mounted":                 {map[string]string{"cpu.shares": "1024\n", "pids.max": "max\n"}, false},
		"memory without the charges' file": {map[string]string{"memory.limit_in_bytes": "1\n"}, true},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			for f, content := range c.files {
				must.NoError(t, os.WriteFile(filepath.Join(dir, f), []byte(content), 0o644))
			}
			must.Eq(t, c.want, sameForEveryThread(dir))
		})
	}
}

// hostCgroupVersion is the node's cgroups: v2, v1 (its cpu hierarchy at
// least), or an error.
func hostCgroupVersion() (string, error) {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return "v2", nil
	}
	if _, err := os.Stat("/sys/fs/cgroup/cpu/tasks"); err == nil {
		return "v1", nil
	}
	return "", fmt.Errorf("neither cgroup v2 nor v1's cpu hierarchy at /sys/fs/cgroup")
}

// executorThreads is how many threads an executor has when a task starts
// in it (a spare's, seen in /proc/<pid>/task).
const executorThreads = 7

// parkThreads makes n threads of the process's own, each parked (as an
// executor's idle threads are) until release is closed.
func parkThreads(t testing.TB, release <-chan struct{}, n int) {
	locked := make(chan struct{})
	for range n {
		go func() {
			runtime.LockOSThread()
			locked <- struct{}{}
			<-release
		}()
	}
	for range n {
		<-locked
	}
}

// newThread is the ID of a thread the process did not have before, held
// until hold is closed: goroutines each hold a thread of their own until
// one runs on a new one.
func newThread(t *testing.T, hold <-chan struct{}) int {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	must.NoError(t, err)
	had := map[string]bool{}
	for _, task := range tasks {
		had[task.Name()] = true
	}
	for range 64 {
		got := make(chan int)
		go func() {
			runtime.LockOSThread()
			got <- threadID()
			<-hold
		}()
		if id := <-got; !had[strconv.Itoa(id)] {
			return id
		}
	}
	t.Fatal("no new thread in 64 goroutines that each hold one")
	return 0
}

// testCgroups makes empty cgroups for the test process (cpu and memory on
// v1, one on v2), and moves the process back where it was, then removes
// them, when the test ends.
func testCgroups(t *testing.T, version string) []string {
	name := fmt.Sprintf("wasm-join-test-%d", os.Getpid())
	var dirs []string
	if version == "v2" {
		dirs = []string{filepath.Join("/sys/fs/cgroup", name)}
	} else {
		dirs = []string{filepath.Join("/sys/fs/cgroup/cpu", name), filepath.Join("/sys/fs/cgroup/memory", name)}
	}
	for _, dir := range dirs {
		was := filepath.Join(filepath.Dir(dir), currentCgroup(t, dir))
		must.NoError(t, os.Mkdir(dir, 0o755))
		t.Cleanup(func() {
			must.NoError(t, joinCgroup(was, false))
			must.NoError(t, os.Remove(dir))
		})
	}
	return dirs
}

// currentCgroup is the process's cgroup in dir's hierarchy, relative to
// the hierarchy's root (dir's parent).
func currentCgroup(t testing.TB, dir string) string {
	b, err := os.ReadFile("/proc/self/cgroup")
	must.NoError(t, err)
	path, ok := cgroupLine(string(b), dir)
	if !ok {
		t.Fatalf("no line for %s's hierarchy in /proc/self/cgroup: %s", dir, b)
	}
	return path
}

// cgroupLine is the path in a /proc cgroup file's content b of the
// hierarchy that dir (a cgroup directly under a hierarchy's root) is in:
// the unified one (0::) for a cgroup under /sys/fs/cgroup itself, else
// the v1 one named as dir's parent.
func cgroupLine(b, dir string) (string, bool) {
	controller := filepath.Base(filepath.Dir(dir))
	unified := filepath.Dir(dir) == "/sys/fs/cgroup"
	for _, line := range strings.Split(strings.TrimSpace(b), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) == 3 && ((unified && f[0] == "0" && f[1] == "") || (!unified && f[1] == controller)) {
			return f[2], true
		}
	}
	return "", false
}

func assertEveryThreadIn(t *testing.T, dir string) {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	must.NoError(t, err)
	must.Greater(t, 4, len(tasks))
	for _, task := range tasks {
		file := filepath.Join("/proc/self/task", task.Name(), "cgroup")
		b, err := os.ReadFile(file)
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
			continue // a thread that has ended since the listing (a goroutine of an earlier subtest held it)
		}
		must.NoError(t, err)
		path, ok := cgroupLine(string(b), dir)
		must.True(t, ok, must.Sprintf("%s has no line for %s: %s", file, dir, b))
		must.Eq(t, "/"+filepath.Base(dir), path, must.Sprintf("%s: %s", file, b))
	}
}

// mustBeIn asserts that the thread whose /proc cgroup file is file is in
// cgroup dir.
func mustBeIn(t *testing.T, file, dir string) {
	t.Helper()
	b, err := os.ReadFile(file)
	must.NoError(t, err)
	path, ok := cgroupLine(string(b), dir)
	must.True(t, ok, must.Sprintf("%s has no line for %s: %s", file, dir, b))
	must.Eq(t, "/"+filepath.Base(dir), path, must.Sprintf("%s: %s", file, b))
}

// BenchmarkJoinCgroups is the executor's cgroup-join: this process, with
// as many threads as an idle executor has, moved into a task's v1 cgroups
// (cpu, memory, freezer), alternately two tasks', by its cgroup.procs
// (process) and thread by thread (thread); alone: 30 ms after the last
// move, as starts a while apart are; back-to-back: right after one. It
// reports the median and 90th percentile of each (ms), and thread's over
// process's when alone. make bench runs it with CGO_ENABLED=0, as the
// executor's program is built: with cgo only the process can move.
func BenchmarkJoinCgroups(b *testing.B) {
	if v := cgroupstest.Require(b, hostCgroupVersion); v != "v1" {
		b.Skipf("cgroup %s: threads move only within a threaded subtree there", v)
	}
	if cgoLinked {
		b.Fatal("built with cgo: run with CGO_ENABLED=0 (as make bench does), the executor's program is built without it")
	}
	release := make(chan struct{})
	defer close(release)
	parkThreads(b, release, executorThreads)
	var tasks [2][]string
	for i := range tasks {
		name := fmt.Sprintf("wasm-join-bench-%d.%d", os.Getpid(), i)
		for _, c := range []string{"cpu", "memory", "freezer"} {
			dir := filepath.Join("/sys/fs/cgroup", c, name)
			was := filepath.Join("/sys/fs/cgroup", c, currentCgroup(b, dir))
			must.NoError(b, os.Mkdir(dir, 0o755))
			b.Cleanup(func() {
				must.NoError(b, joinCgroup(was, false))
				must.NoError(b, os.Remove(dir))
			})
			tasks[i] = append(tasks[i], dir)
		}
	}
	const n = 40
	measure := func(byThread bool, gap time.Duration) (p50, p90 float64) {
		took := make([]time.Duration, n)
		for i := range took {
			time.Sleep(gap) // spacing the joins apart, not waiting for anything
			began := time.Now()
			for _, dir := range tasks[i%2] {
				if err := joinCgroup(dir, byThread); err != nil {
					b.Fatal(err)
				}
			}
			took[i] = time.Since(began)
		}
		slices.Sort(took)
		return float64(took[n/2].Microseconds()) / 1000, float64(took[n*9/10].Microseconds()) / 1000
	}
	for b.Loop() {
		for _, m := range []struct {
			name     string
			byThread bool
		}{{"process", false}, {"thread", true}} {
			p50, p90 := measure(m.byThread, 30*time.Millisecond)
			b.ReportMetric(p50, m.name+"-alone-p50-ms")
			b.ReportMetric(p90, m.name+"-alone-p90-ms")
			p50, p90 = measure(m.byThread, 0)
			b.ReportMetric(p50, m.name+"-back-to-back-p50-ms")
			b.ReportMetric(p90, m.name+"-back-to-back-p90-ms")
		}
	}
}
