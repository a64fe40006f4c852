// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// The executor's garbage collector and a guest without the per-loop check.
//
// Go stops the world at the start and at the end of every collection, and
// the world stops only once every goroutine has reached a safe point.
// Code that wazero compiled without the per-loop check has none: a
// goroutine running it is not preempted until the guest calls the host. A
// collection that starts while such a guest computes therefore stalls the
// whole executor (its protocol server included: no stop, no stats, no
// exec) until the guest's next host call, which for a guest in a long
// computation may be never.
//
// So while such a guest runs, the executor collects only when the guest
// cannot stall it: automatic collection is off (debug.SetGCPercent(-1),
// which also turns off the runtime's periodic forced collection), and
// collectWhileBlocked collects when the guest has been inside one host call
// (a sleep, a poll, an accept, a read) for a while, which is where an idle
// task spends its life, or calls the host often, and only while it is
// inside a host call, where it is held until the collection is done
// (whileInHost; a guest that left its host call between the probe and the
// collection froze the executor, seen on a starved CPU). A guest that
// computes for long without calling the host is not collected under: the executor
// allocates little on its own (a stats message a second), and gcBackstop
// bounds the heap anyway (a collection forced by it can stall as above:
// it takes an alloc exec that compiles a large module in the middle of a
// long computation). The executor also keeps a second processor
// (GOMAXPROCS), so that its protocol server runs while the guest holds
// one, and has set it explicitly from its start (Serve), so that the
// runtime never changes it, which would stop the world. (A guest's
// sockets are closed when it closes them, not left to the collector: the
// WASI host's descriptor table holds them by their descriptors.)

// blockedProbe is how often collectWhileBlocked looks at the guest, and
// how long it must have stayed inside one host call to be collected under;
// firstProbe is the same until the first collection, which hands back
// what start-up left and should come as soon as the guest first waits.
const (
	blockedProbe = 250 * time.Millisecond
	firstProbe   = 10 * time.Millisecond
)

// busyHostCalls is how many host calls per blockedProbe make a guest safe
// to collect under although it is not blocked: one at least every 10 ms.
const busyHostCalls = uint64(blockedProbe / (10 * time.Millisecond))

// gcPeriod is how often collectWhileBlocked collects, at most, when the
// heap has grown by less than gcGrowth (the runtime's own forced
// collection is every two minutes).
const (
	gcPeriod = 2 * time.Minute
	gcGrowth = 4 << 20
)

// gcBackstop is how far the Go heap may grow past what it was when the
// guest started before the runtime collects regardless.
const gcBackstop = 256 << 20

// loadHeadroom is how much the executor's memory may grow while it loads
// its task's module before the collector runs (see pauseCollection).
const loadHeadroom = 32 << 20

// pauseCollection defers automatic collection while an executor of its own
// loads its task's module (reads and hashes it, and wazero decodes,
// validates and loads it from the cache), and returns what puts it back
// as it was. Start-up leaves the heap small, so the collector ran several
// times over a Go module's load, each time marking what the load had
// built so far: 8–10 ms of a 55 ms start (GOGC=off against the default,
// BenchmarkTaskStart/go/cached). A load allocates about 20 MB; should it
// allocate more (a module compiled rather than loaded), the memory limit
// collects once the executor has grown by loadHeadroom, so that the task's
// memory cgroup, which the executor has joined, is not filled with
// garbage. What the load leaves is handed back after the start (Start).
func (s *server) pauseCollection() (resume func()) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	if s.gcOff {
		return func() {}
	}
	percent := debug.SetGCPercent(-1)
	limit := debug.SetMemoryLimit(int64(goMemory()) + loadHeadroom)
	return func() {
		s.gcMu.Lock()
		defer s.gcMu.Unlock()
		debug.SetGCPercent(percent)
		debug.SetMemoryLimit(limit)
	}
}

// disableGC turns automatic collection off for a guest without the
// per-loop check, before it runs, unless something may still collect
// (s.collect), and gives the process a second processor.
func (s *server) disableGC() {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	s.gcOff = true
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(int64(goMemory()) + gcBackstop)
	if runtime.GOMAXPROCS(0) < 2 {
		runtime.GOMAXPROCS(2)
	}
}

// collect runs fn, a collection, unless a guest without the per-loop check
// runs in this process.
func (s *server) collect(fn func()) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	if !s.gcOff {
		fn()
	}
}

// collectWhileBlocked runs the collections of an executor whose guest runs
// without the per-loop check (see above) until the guest has exited, then
// turns automatic collection back on (not after an abandoned guest, which
// runs until the executor exits). The first one returns what start-up
// left behind (see Start).
func (s *server) collectWhileBlocked(in *instance) {
	tick := time.NewTicker(firstProbe)
	defer tick.Stop()
	first := true
	var last time.Time
	var lastHeap uint64
	seq, inside := in.calls.Made(), in.calls.Inside() > 0
	for {
		select {
		case <-in.ended:
			if in.abandoned.Load() {
				return // it still runs, until the executor exits
			}
			s.gcMu.Lock()
			s.gcOff = false
			debug.SetGCPercent(100)
			// No limit (a negative one would leave the backstop in place).
			debug.SetMemoryLimit(math.MaxInt64)
			s.gcMu.Unlock()
			return
		case <-s.quit:
			return
		case <-tick.C:
		}
		nseq, ninside := in.calls.Made(), in.calls.Inside() > 0
		safe := (inside && ninside && nseq == seq) || nseq-seq >= busyHostCalls
		seq, inside = nseq, ninside
		if !safe {
			continue
		}
		heap := heapBytes()
		switch {
		case first:
			if !in.whileInHost(func() { debug.FreeOSMemory(); trimBinaryPages() }) {
				continue
			}
			first = false
			tick.Reset(blockedProbe)
		case time.Since(last) >= gcPeriod || heap > lastHeap+gcGrowth:
			if !in.whileInHost(runtime.GC) {
				continue
			}
		default:
			continue
		}
		last, lastHeap = time.Now(), heapBytes()
	}
}

// whileInHost runs fn, a collection, if the guest is inside a host call,
// and keeps it there until fn returns: a guest without the per-loop check
// that went back to its own code while the collection ran would keep the
// collection from stopping the world, and the whole executor with it, for
// as long as it computes. The probes above only say the guest was waiting;
// this makes sure it still is. It reports whether fn ran.
func (in *instance) whileInHost(fn func()) bool {
	in.hostReturn.Lock()
	defer in.hostReturn.Unlock()
	if in.calls.Inside() == 0 {
		return false
	}
	fn()
	return true
}

// heapBytes is the size of the heap's objects, garbage included.
func heapBytes() uint64 { return readMetric("/memory/classes/heap/objects:bytes") }

// goMemory is the memory the Go runtime has mapped.
func goMemory() uint64 { return readMetric("/memory/classes/total:bytes") }

// readMetric reads one of the runtime's uint64 metrics (which stops no
// world, unlike runtime.ReadMemStats).
func readMetric(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}
