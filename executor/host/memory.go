// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
)

// linearMemory is a guest's linear memory: one anonymous mapping of its
// whole cap, made when the instance starts and unmapped when it ends.
// Growing never moves or copies it, nothing of it is on the Go heap (so a
// large guest memory neither triggers nor slows garbage collection), and
// only the pages the guest touches use memory.
type linearMemory struct {
	mapped []byte // the whole reservation, nil once freed or if mapping failed
	max    uint64 // the cap
	size   *atomic.Uint64

	// budget, when set, is shared with other instances; held is what this
	// memory has taken from it, and denied is set when it refused a grow.
	budget *memBudget
	held   uint64
	denied *atomic.Bool

	// pool, when set, takes the mapping back when the memory is freed;
	// resident is how much of it is known to be faulted in and zero.
	pool     *memPool
	resident uint64
	used     uint64
}

// memPool keeps the mappings of instances that have ended for the next
// ones (the HTTP trigger's, one per request): mapping a fresh cap and
// faulting its first pages in cost more than the rest of a small
// instance's life. A mapping comes back zeroed: the first keep bytes are
// cleared and stay faulted in, the rest is handed back to the kernel
// (MADV_DONTNEED), which makes it read as zero. Nothing an instance leaves
// in its memory reaches the next. The pool holds at most max mappings, so
// it keeps at most max × keep bytes resident.
type memPool struct {
	mu   sync.Mutex
	free [][]byte
	max  int
	size int    // the size of every mapping: the program's cap
	keep uint64 // how much of a pooled mapping stays faulted in
}

func (p *memPool) get() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		m := p.free[n-1]
		p.free = p.free[:n-1]
		return m
	}
	return nil
}

// put zeroes the first used bytes of mapped and keeps it, or says it is
// full.
func (p *memPool) put(mapped []byte, used uint64) bool {
	if len(mapped) != p.size {
		return false
	}
	p.mu.Lock()
	full := len(p.free) >= p.max
	p.mu.Unlock()
	if full {
		return false
	}
	clear(mapped[:min(used, p.keep)])
	if used > p.keep {
		if err := discard(mapped[p.keep:used]); err != nil {
			return false
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) >= p.max {
		return false
	}
	p.free = append(p.free, mapped)
	return true
}

// close unmaps the pooled mappings.
func (p *memPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.free {
		_ = syscall.Munmap(m)
	}
	p.free = nil
}

// memBudget bounds the linear memory of instances that run side by side
// (the HTTP trigger's, one per request): together they stay within the
// task's memory.
type memBudget struct {
	limit uint64
	used  atomic.Uint64
}

// reserve takes n bytes from the budget, or nothing if they do not fit.
func (b *memBudget) reserve(n uint64) bool {
	for {
		used := b.used.Load()
		if used+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

func (b *memBudget) release(n uint64) { b.used.Add(-n) }

// errNoMemory: an instance could not get its initial memory from its budget.
var errNoMemory = errors.New("the task's memory is taken by the instances already running")

// maxPopulate is how much of a guest's memory is faulted in as it is
// allocated (see populate), rather than a page at a time as the guest
// first touches it: the initial memory, where data segments are copied,
// and the first grows. Beyond it, pages are committed on first touch, so
// that a guest that grows much and touches little does not hold it all.
const maxPopulate = 32 << 20

// newLinearMemory maps a memory capped at max bytes, or takes a mapping of
// pool's when pool is set.
func newLinearMemory(max uint64, size *atomic.Uint64, pool *memPool) *linearMemory {
	m := &linearMemory{max: max, size: size}
	if pool != nil && max <= uint64(pool.size) {
		m.pool = pool
		if m.mapped = pool.get(); m.mapped != nil {
			m.resident = pool.keep
			return m
		}
		m.mapped, _ = mapMemory(pool.size)
		return m
	}
	if max > 0 {
		// A failed mapping leaves mapped nil: every allocation then fails
		// inside the guest, as an allocation past the cap does.
		m.mapped, _ = mapMemory(int(max))
	}
	return m
}

func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > m.max || size > uint64(len(m.mapped)) {
		return nil
	}
	if m.budget != nil && size > m.held {
		if !m.budget.reserve(size - m.held) {
			m.denied.Store(true)
			return nil
		}
		m.held = size
	}
	if from := max(m.size.Load(), m.resident); size > from && from < maxPopulate {
		populate(m.mapped[from:min(size, maxPopulate)])
	}
	m.size.Store(size)
	m.used = max(m.used, size)
	return m.mapped[:size:size]
}

func (m *linearMemory) Free() {
	if m.mapped != nil && (m.pool == nil || !m.pool.put(m.mapped, m.used)) {
		_ = syscall.Munmap(m.mapped)
	}
	m.mapped = nil
	m.size.Store(0)
	if m.budget != nil {
		m.budget.release(m.held)
		m.held = 0
	}
}
