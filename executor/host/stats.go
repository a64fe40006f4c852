// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"bytes"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// cpuSample is the executor's CPU time at one instant.
type cpuSample struct {
	at           time.Time
	user, system time.Duration
}

func sampleCPU() cpuSample {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return cpuSample{
		at:     time.Now(),
		user:   time.Duration(ru.Utime.Nano()),
		system: time.Duration(ru.Stime.Nano()),
	}
}

// percent returns the user, system and total CPU use between two samples,
// as percentages of one core.
func (s cpuSample) percent(prev cpuSample) (user, system, total float64) {
	wall := s.at.Sub(prev.at)
	if wall <= 0 {
		return 0, 0, 0
	}
	user = 100 * float64(s.user-prev.user) / float64(wall)
	system = 100 * float64(s.system-prev.system) / float64(wall)
	return user, system, user + system
}

// residentBytes is the executor's resident set size: the guest's linear
// memory, its compiled code and the executor's own runtime together.
func residentBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		// Not Linux: the peak is the best the portable API offers.
		var ru syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		return uint64(ru.Maxrss)
	}
	fields := bytes.Fields(b)
	if len(fields) < 2 {
		return 0
	}
	pages, _ := strconv.ParseUint(string(fields[1]), 10, 64)
	return pages * uint64(os.Getpagesize())
}

// sampleCPU is the CPU time of the instance's guest: of the thread it runs
// on where it has one of its own (ownThread: in the shared executor), or
// nothing until that thread is known; else the process's, which is the
// guest's. A thread's clock does not tell user from system time: both are
// counted as user.
func (in *instance) sampleCPU() cpuSample {
	if !in.ownThread {
		return sampleCPU()
	}
	return cpuSample{at: time.Now(), user: threadCPU(int(in.tid.Load()))}
}

// cpuMeter sums the CPU time of runs, each measured on the OS thread it is
// held to while it runs; a run in progress counts up to now. It is how the
// shared executor tells an http task's CPU from its neighbours': the
// task's instances run on its handlers' goroutines (one per request), not
// on a thread of their own as a command task's guest does.
//
// A goroutine held to its thread that blocks hands its processor on and
// takes it back with a thread switch, so only the shared executor, where
// the process's CPU is not the task's, meters its runs.
type cpuMeter struct {
	mu    sync.Mutex
	ended time.Duration
	// running holds the runs in progress: their thread's CPU time when
	// they began, by thread ID (a thread holds one run at a time).
	running map[int]time.Duration
}

func newCPUMeter() *cpuMeter { return &cpuMeter{running: map[int]time.Duration{}} }

// maxMeteredRuns bounds the runs metered at once in the process. A run
// holds its OS thread for as long as it lasts, sleeping or waiting in a
// poll too, and Go ends a process that reaches 10,000 threads: past the
// bound (a node's HTTP tasks with thousands of slow requests in flight),
// a run is not metered, and its task's CPU is under-reported rather than
// the shared executor, with every task in it, ended.
const maxMeteredRuns = 1024

// meteredRuns counts the runs metered at once, in every meter.
var meteredRuns atomic.Int32

// run runs fn held to the calling goroutine's thread, and counts the CPU
// time the thread spent meanwhile. A nil meter runs fn and counts nothing,
// as does any meter past maxMeteredRuns.
func (m *cpuMeter) run(fn func()) {
	if m == nil {
		fn()
		return
	}
	if meteredRuns.Add(1) > maxMeteredRuns {
		meteredRuns.Add(-1)
		fn()
		return
	}
	defer meteredRuns.Add(-1)
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	tid := threadID()
	began := threadCPU(tid)
	m.mu.Lock()
	m.running[tid] = began
	m.mu.Unlock()
	defer func() {
		spent := threadCPU(tid) - began
		m.mu.Lock()
		m.ended += spent
		delete(m.running, tid)
		m.mu.Unlock()
	}()
	fn()
}

// sample is the CPU time of the runs so far, ended and in progress. A
// thread's clock does not tell user from system time: both are counted as
// user.
func (m *cpuMeter) sample() cpuSample {
	m.mu.Lock()
	defer m.mu.Unlock()
	total := m.ended
	for tid, began := range m.running {
		total += threadCPU(tid) - began
	}
	return cpuSample{at: time.Now(), user: total}
}

// sharedRSS is residentBytes for the shared executor's many stats streams:
// read at most once per interval, whatever the number of tasks.
type sharedRSS struct {
	mu    sync.Mutex
	at    time.Time
	bytes uint64
}

func (r *sharedRSS) get(maxAge time.Duration) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := time.Now(); now.Sub(r.at) >= maxAge {
		r.at, r.bytes = now, residentBytes()
	}
	return r.bytes
}

func (s *server) Stats(req *proto.StatsRequest, stream proto.Executor_StatsServer) error {
	t, err := s.current(req.TaskId)
	if err != nil {
		return err
	}
	interval := time.Duration(req.IntervalNanos)
	if interval <= 0 {
		interval = time.Second
	}
	// Samples are sent on the interval's boundaries of the wall clock, so
	// that the streams of the shared executor's many tasks send together
	// and their messages share writes to the driver's connection.
	untilNext := func() time.Duration {
		now := time.Now()
		return now.Truncate(interval).Add(interval).Sub(now)
	}
	tick := time.NewTimer(untilNext())
	defer tick.Stop()
	// The task's CPU is its runner's (its guest's thread or its requests'
	// instances' in the shared executor, the process's in one of its own);
	// the shared executor's RSS is the process's, read once for all tasks.
	sample, rss := t.run.sampleCPU, residentBytes
	if s.shared {
		rss = func() uint64 { return s.rss.get(interval / 2) }
	}
	prev := sample()
	for {
		select {
		case <-stream.Context().Done():
			return nil
		case <-t.run.done():
			return nil
		case <-s.quit:
			return nil
		case <-tick.C:
			tick.Reset(untilNext())
		}
		cur := sample()
		user, system, total := cur.percent(prev)
		prev = cur
		opened, refused := t.prog.spec.Network.counts()
		err := stream.Send(&proto.StatsResponse{
			TimestampUnixNano: cur.at.UnixNano(),
			Pid:               int32(os.Getpid()),
			RssBytes:          rss(),
			CpuUserPercent:    user,
			CpuSystemPercent:  system,
			CpuPercent:        total,
			CpuUserSeconds:    cur.user.Seconds(),
			CpuSystemSeconds:  cur.system.Seconds(),
			LinearMemoryBytes: t.run.linearMemory(),
			Shared:            s.shared,
			OutboundOpened:    opened,
			OutboundRefused:   refused,
		})
		if err != nil {
			return err
		}
	}
}

// Notices streams the task's notices (task events the driver reports: an
// outbound connection refused) as they come, until the task's guest ends,
// the task is released or the driver ends the stream.
func (s *server) Notices(req *proto.NoticesRequest, stream proto.Executor_NoticesServer) error {
	t, err := s.current(req.TaskId)
	if err != nil {
		return err
	}
	n := t.prog.spec.Network
	var more <-chan struct{}
	if n != nil {
		more = n.more
	}
	send := func() error {
		for _, m := range n.takeNotices() {
			if err := stream.Send(m); err != nil {
				return err
			}
		}
		return nil
	}
	for {
		if err := send(); err != nil {
			return err
		}
		select {
		case <-more:
		case <-t.run.done():
			// Its guest has ended: what it made is sent, and the stream
			// ends, so that it holds nothing open after its task.
			return send()
		case <-t.released:
			return nil
		case <-stream.Context().Done():
			return nil
		}
	}
}
