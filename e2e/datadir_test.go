// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/shoenig/test/must"
)

// These tests run on clients whose data_dir Nomad made itself (0700, see
// StartCluster), with the plugin's defaults: every executor becomes the
// task's user (nobody) and can resolve no path under the data_dir. What
// it reaches after that, it reaches through descriptors it opened before,
// or that the driver handed it (the shared executor).

// probeJob is a job of count tasks named "probe" that run the probe test
// module with args; extra goes into the task's config block.
func (c *Cluster) probeJob(t *testing.T, id string, count, memory int, args []string, extra string) *nomadapi.Job {
	t.Helper()
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = strconv.Quote(a)
	}
	return c.parseJob(t, fmt.Sprintf(`
job %q {
  type = "service"
  group "g" {
    count = %d
    restart {
      attempts = 0
      mode     = "fail"
    }
    task "probe" {
      driver = "wasm"
      artifact {
        source      = "%s/probe.wasm"
        destination = "local/"
      }
      config {
        module = "local/probe.wasm"
        args   = [%s]
        %s
      }
      resources {
        cpu    = 10
        memory = %d
      }
    }
  }
}`, id, count, c.ArtifactURL, strings.Join(quoted, ", "), extra, memory), nil)
}

var floodLine = regexp.MustCompile(`flood line (\d+):`)

// lastFloodLine is the number of the last whole flood line in out, or -1.
func lastFloodLine(out string) int {
	m := floodLine.FindAllStringSubmatch(out, -1)
	if len(m) == 0 {
		return -1
	}
	n, _ := strconv.Atoi(m[len(m)-1][1])
	return n
}

// TestLogsRotateAsTheTasksUser: a guest flooding stdout rotates through
// several files, made by an executor that runs as nobody, and nomad alloc
// logs keeps up with it.
func TestLogsRotateAsTheTasksUser(t *testing.T) {
	c := StartCluster(t)
	job := c.probeJob(t, "flood", 1, 64, []string{"flood"}, "logs {\n max_files = 3\n max_file_size = 1\n }")
	c.register(t, job)
	alloc := c.waitAllocs(t, *job.ID, 1, status("running"))[0]
	defer func() { _, _, _ = c.Nomad.Jobs().Deregister(*job.ID, true, nil) }()

	var names []string
	waitFor(t, func() bool {
		files, _, err := c.Nomad.AllocFS().List(alloc, "alloc/logs", nil)
		if err != nil {
			names = []string{err.Error()}
			return false
		}
		names = names[:0]
		highest := -1
		for _, f := range files {
			names = append(names, fmt.Sprintf("%s (%d bytes)", f.Name, f.Size))
			if n, ok := strings.CutPrefix(f.Name, "probe.stdout."); ok {
				i, _ := strconv.Atoi(n)
				highest = max(highest, i)
			}
		}
		return highest >= 4
	}, func() string { return fmt.Sprintf("the log directory holds %v", names) })
	files, _, err := c.Nomad.AllocFS().List(alloc, "alloc/logs", nil)
	must.NoError(t, err)
	stdout := 0
	for _, f := range files {
		if strings.HasPrefix(f.Name, "probe.stdout.") {
			stdout++
			must.LessEq(t, int64(1<<20), f.Size, must.Sprintf("%s is larger than max_file_size", f.Name))
		}
	}
	must.Eq(t, 3, stdout, must.Sprintf("max_files = 3, and the log directory holds %v", names))

	// The logs API reads what the guest writes now: the last line goes on
	// growing.
	var before, last int
	waitFor(t, func() bool {
		out, err := c.readLogsFrom(alloc, "probe", "stdout", nomadapi.OriginEnd, 4096)
		if err != nil {
			return false
		}
		before = lastFloodLine(out)
		return before > 0
	})
	waitFor(t, func() bool {
		out, err := c.readLogsFrom(alloc, "probe", "stdout", nomadapi.OriginEnd, 4096)
		last = lastFloodLine(out)
		return err == nil && last > before+1000
	}, func() string { return fmt.Sprintf("the log's last line stays at %d (it was %d)", last, before) })
	must.Eq(t, "running", c.taskState(t, alloc.ID, "probe").State)
}

// TestExecAsTheTasksUser: nomad alloc exec of a module of the task's view
// returns its whole output, 30 times of 30, on a client whose data_dir
// only root can enter. An exec that ends in "unexpected EOF" (Nomad's own
// race, hashicorp/nomad#9892 and #27146: the stream ends before its last
// frames, with the output whole or cut) is run again, at most twice, as
// Cluster.exec does, and counted; one that never returns its output
// fails, as every exec did when the executor could not reach the view.
func TestExecAsTheTasksUser(t *testing.T) {
	c := StartCluster(t)
	job := c.probeJob(t, "execs", 1, 32, []string{"sleep"}, "")
	c.register(t, job)
	alloc := c.waitAllocs(t, *job.ID, 1, status("running"))[0]
	c.waitLogs(t, alloc, "probe", "stdout", "sleeping\n")
	failed, raced := 0, 0
	for i := range 30 {
		want := fmt.Sprintf("argv[0]=probe.wasm\nargv[1]=args\nargv[2]=%d\n", i)
		for attempt := 1; ; attempt++ {
			var stdout, stderr strings.Builder
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			code, err := c.Nomad.Allocations().Exec(ctx, alloc, "probe", false, []string{"/local/probe.wasm", "args", strconv.Itoa(i)},
				strings.NewReader(""), &stdout, &stderr, nil, nil)
			cancel()
			if err == nil && code == 0 && stdout.String() == want {
				break
			}
			if err != nil && err.Error() == io.ErrUnexpectedEOF.Error() && attempt < 3 {
				raced++
				t.Logf("exec %d: %v after %q (Nomad's exec race); running it again", i, err, stdout.String())
				continue
			}
			failed++
			t.Errorf("exec %d: code %d, error %v, stdout %q, stderr %q", i, code, err, stdout.String(), stderr.String())
			break
		}
	}
	must.Zero(t, failed, must.Sprint("execs failed"))
	must.Less(t, 10, raced, must.Sprint("Nomad's exec race hit a third of the execs or more: look again"))
}

// TestSharedExecutorAsItsUser: 200 idle tasks run in the shared executor,
// which runs as nobody from its start and gets each task's files from the
// driver; each task's log reads back through the API, and an exec into
// one works.
func TestSharedExecutorAsItsUser(t *testing.T) {
	const n = 200
	c := StartCluster(t, ClientOptions{Addr: "127.0.0.1", SharedExecutor: true})
	job := c.probeJob(t, "idle", n, 16, []string{"sleep"}, "")
	c.register(t, job)
	defer func() { _, _, _ = c.Nomad.Jobs().Deregister(*job.ID, true, nil) }()
	allocs := c.waitAllocs(t, *job.ID, n, status("running"))
	pid := executorPid(t, c, allocs[0])
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	must.NoError(t, err)
	must.StrContains(t, string(st), "\nUid:\t65534\t65534\t65534\t65534\n", must.Sprint("the shared executor must run as nobody"))
	// Its protocol's socket (go-plugin's, made in the temporary directory)
	// and its handoff socket are root's: no process of nobody's can
	// replace or connect to them.
	sockets := listeningSockets(t, pid)
	must.Len(t, 2, sockets, must.Sprintf("the shared executor's listening sockets: %v", sockets))
	for _, path := range sockets {
		fi, err := os.Stat(path)
		must.NoError(t, err)
		must.Eq(t, uint32(0), fi.Sys().(*syscall.Stat_t).Uid, must.Sprintf("%s is not root's", path))
	}

	// One at a time: Nomad's agent allows a client 100 connections, and
	// log streams in parallel reached it.
	for _, a := range allocs {
		c.waitLogs(t, a, "probe", "stdout", "sleeping\n")
	}
	for _, a := range allocs {
		ts := c.taskState(t, a.ID, "probe")
		must.Eq(t, "running", ts.State)
		must.Zero(t, ts.Restarts, must.Sprintf("allocation %s restarted: %s", a.ID, eventList(ts)))
	}
	code, out, _, err := c.exec(t, allocs[n/2], "probe", "/local/probe.wasm", "hello")
	must.NoError(t, err)
	must.Zero(t, code)
	must.StrContains(t, out, "hello from wasm")
}

// listeningSockets are the paths of the Unix sockets that process pid
// listens on: its descriptors' socket inodes (/proc/<pid>/fd) found among
// the listening sockets of /proc/net/unix.
func listeningSockets(t *testing.T, pid int) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/net/unix")
	must.NoError(t, err)
	listening := map[string]string{} // inode: path
	for _, line := range strings.Split(string(b), "\n")[1:] {
		// Num RefCount Protocol Flags Type St Inode Path
		f := strings.Fields(line)
		if len(f) == 8 && f[3] == "00010000" {
			listening[f[6]] = f[7]
		}
	}
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	must.NoError(t, err)
	var paths []string
	for _, fd := range fds {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err != nil {
			continue
		}
		if inode, ok := strings.CutPrefix(link, "socket:["); ok {
			if path, ok := listening[strings.TrimSuffix(inode, "]")]; ok {
				paths = append(paths, path)
			}
		}
	}
	return paths
}

// hugeModule is a valid WASI command of about 3*instructions bytes: one
// function of that many i32.const 0; drop pairs, exported as _start. It
// compiles in about 55 times its size.
func hugeModule(instructions int) []byte {
	uleb := binary.AppendUvarint
	section := func(out []byte, id byte, body []byte) []byte {
		return append(uleb(append(out, id), uint64(len(body))), body...)
	}
	m := []byte("\x00asm\x01\x00\x00\x00")
	m = section(m, 1, []byte{1, 0x60, 0, 0}) // type: () -> ()
	m = section(m, 3, []byte{1, 0})          // function 0 of type 0
	m = section(m, 5, []byte{1, 0, 1})       // memory: min 1 page
	exports := []byte{2, 6, '_', 's', 't', 'a', 'r', 't', 0, 0, 6, 'm', 'e', 'm', 'o', 'r', 'y', 2, 0}
	m = section(m, 7, exports)
	code := make([]byte, 0, 3*instructions+2)
	code = append(code, 0) // no locals
	for range instructions {
		code = append(code, 0x41, 0x00, 0x1a)
	}
	code = append(code, 0x0b)
	body := uleb([]byte{1}, uint64(len(code)))
	body = append(body, code...)
	return section(m, 10, body)
}

// memAvailable is the node's MemAvailable, in bytes, or an error (it runs
// on a sampling goroutine, which must not fail the test itself).
func memAvailable() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "MemAvailable:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no MemAvailable in /proc/meminfo")
}

// TestCompileWithinTheTasksMemory: a module whose compilation needs far
// more than the task's memory fails with a job error that says so, and the
// node's available memory barely moves while it is tried; with enough
// memory the same module runs. In an executor of its own the executor
// compiles in the task's cgroups; for the shared executor, which compiles
// nothing, a process of its own does.
func TestCompileWithinTheTasksMemory(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) {
			compileWithinTheTasksMemory(t, ClientOptions{Addr: "127.0.0.1", SharedExecutor: shared})
		})
	}
}

func compileWithinTheTasksMemory(t *testing.T, client ClientOptions) {
	c := StartCluster(t, client)
	module := hugeModule(10_000_000)
	must.NoError(t, os.WriteFile(filepath.Join(c.ArtifactDir, "huge.wasm"), module, 0o644))
	job := func(id string, memory int) *nomadapi.Job {
		return c.parseJob(t, fmt.Sprintf(`
job %q {
  type = "batch"
  group "g" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      attempts  = 0
      unlimited = false
    }
    task "huge" {
      driver = "wasm"
      artifact {
        source      = "%s/huge.wasm"
        destination = "local/"
      }
      config {
        module = "local/huge.wasm"
      }
      resources {
        cpu    = 100
        memory = %d
      }
    }
  }
}`, id, c.ArtifactURL, memory), nil)
	}

	// The node's available memory is sampled while the small task tries.
	before, err := memAvailable()
	must.NoError(t, err)
	lowest := before
	var sampleErr error
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				now, err := memAvailable()
				if err != nil {
					sampleErr = err
					return
				}
				lowest = min(lowest, now)
			}
		}
	}()
	small := job("huge-small", 64)
	c.register(t, small)
	alloc := c.waitAllocs(t, *small.ID, 1, status("failed"))[0]
	close(stop)
	<-sampled
	must.NoError(t, sampleErr)
	ts := c.taskState(t, alloc.ID, "huge")
	must.True(t, hasEvent(ts, "could not be loaded within the task's memory (resources.memory = 64 MiB)"), must.Sprintf("events: %s", eventList(ts)))
	must.True(t, hasEvent(ts, "Rejected by the wasm driver"), must.Sprintf("a module too large for its task's memory is the job's to fix; events: %s", eventList(ts)))
	must.Less(t, int64(512<<20), before-lowest, must.Sprintf("the node's available memory fell by %d MiB while the module was compiled", (before-lowest)>>20))

	big := job("huge-big", 4096)
	c.register(t, big)
	alloc = c.waitAllocs(t, *big.ID, 1, status("complete"))[0]
	must.Eq(t, 0, exitCode(c.taskState(t, alloc.ID, "huge")))
}
