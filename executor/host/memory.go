// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"errors"
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

// newLinearMemory maps a memory capped at max bytes.
func newLinearMemory(max uint64, size *atomic.Uint64) *linearMemory {
	m := &linearMemory{max: max, size: size}
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
	if old := m.size.Load(); size > old && old < maxPopulate {
		populate(m.mapped[old:min(size, maxPopulate)])
	}
	m.size.Store(size)
	return m.mapped[:size:size]
}

func (m *linearMemory) Free() {
	if m.mapped != nil {
		_ = syscall.Munmap(m.mapped)
	}
	m.mapped = nil
	m.size.Store(0)
	if m.budget != nil {
		m.budget.release(m.held)
		m.held = 0
	}
}
