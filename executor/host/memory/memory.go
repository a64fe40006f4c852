// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package memory is the linear memory of WebAssembly guests, kept off the
// Go heap: one anonymous mapping of a guest's whole cap (Linear), which
// starts with its program's data (Image), a pool of mappings that
// instances which have ended hand on, reset, to the next (Pool), and a
// budget that instances running side by side share (Budget). Linear is
// what wazero's experimental.LinearMemory asks for (Reallocate, Free),
// without this package importing wazero.
//
// It must not know instances, programs or wazero, and must never hand a
// guest memory that another guest has written: a pooled mapping comes back
// as a fresh one would be, its image and zeros. It uses the standard
// library and golang.org/x/sys/unix only.
package memory

import (
	"sync"
	"sync/atomic"
	"syscall"
)

// Linear is a guest's linear memory: one anonymous mapping of its whole
// cap, made when the instance starts and unmapped when it ends. Growing
// never moves or copies it, nothing of it is on the Go heap (so a large
// guest memory neither triggers nor slows garbage collection), and only
// the pages the guest touches use memory.
type Linear struct {
	mapped []byte // the whole reservation, nil once freed or if mapping failed
	max    uint64 // the cap
	size   *atomic.Uint64

	// budget, when set, is shared with other instances; held is what this
	// memory has taken from it, and denied is set when it refused a grow.
	budget *Budget
	held   uint64
	denied *atomic.Bool

	// image, when set, is what the memory starts with; mapped over its
	// first image.Size() bytes where image.Mapped().
	image *Image
	// pool, when set, takes the mapping back when the memory is freed;
	// resident is how much of it is known to be faulted in and zero.
	pool     *Pool
	resident uint64
	used     uint64
}

// Pool keeps the mappings of instances that have ended for the next
// ones (the HTTP trigger's, one per request): mapping a fresh cap and
// faulting its first pages in cost more than the rest of a small
// instance's life. A mapping comes back as a fresh one starts: where
// the program's Image is mapped, it is mapped again over what the
// instance wrote there; up to Keep bytes the rest is cleared and stays
// faulted in; beyond, it is handed back to the kernel (MADV_DONTNEED),
// which makes it read as zero; a copied image is copied again. Nothing an
// instance leaves in its memory reaches the next. The pool holds at most
// Max mappings, so it keeps at most Max × Keep bytes resident.
//
// Its fields are set before it is first used, and not changed after.
type Pool struct {
	// Max is how many mappings the pool keeps.
	Max int
	// Size is the size of every mapping: the program's cap. A memory whose
	// cap is larger maps its own.
	Size int
	// Keep is how much of a pooled mapping stays faulted in.
	Keep uint64
	// Image is what every memory of the pool starts with, or nil.
	Image *Image

	mu   sync.Mutex
	free [][]byte
}

func (p *Pool) get() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		m := p.free[n-1]
		p.free = p.free[:n-1]
		return m
	}
	return nil
}

// put resets the first used bytes of mapped to what a fresh memory holds
// and keeps it, or says it is full (or could not reset it).
func (p *Pool) put(mapped []byte, used uint64) bool {
	if len(mapped) != p.Size {
		return false
	}
	p.mu.Lock()
	full := len(p.free) >= p.Max
	p.mu.Unlock()
	if full {
		return false
	}
	var zeroFrom uint64 // what a mapped image does not cover
	if p.Image != nil && p.Image.Mapped() {
		if err := p.Image.lay(mapped); err != nil {
			return false
		}
		zeroFrom = uint64(p.Image.Size())
	}
	kept := max(zeroFrom, min(used, p.Keep))
	clear(mapped[zeroFrom:kept])
	if used > kept {
		if err := discard(mapped[kept:used]); err != nil {
			return false
		}
	}
	if p.Image != nil && !p.Image.Mapped() {
		if err := p.Image.lay(mapped); err != nil {
			return false
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) >= p.Max {
		return false
	}
	p.free = append(p.free, mapped)
	return true
}

// Close unmaps the pooled mappings.
func (p *Pool) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.free {
		_ = syscall.Munmap(m)
	}
	p.free = nil
}

// Budget bounds the linear memory of instances that run side by side
// (the HTTP trigger's, one per request): together they stay within the
// task's memory.
type Budget struct {
	// Limit is the bytes the memories may hold together; it is set before
	// the budget is first used.
	Limit uint64
	used  atomic.Uint64
}

// Reserve takes n bytes from the budget, or nothing if they do not fit.
func (b *Budget) Reserve(n uint64) bool {
	for {
		used := b.used.Load()
		if used+n > b.Limit {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

// Release gives n bytes that Reserve took back to the budget.
func (b *Budget) Release(n uint64) { b.used.Add(-n) }

// Used is how many bytes the memories hold together.
func (b *Budget) Used() uint64 { return b.used.Load() }

// maxPopulate is how much of a guest's memory is faulted in as it is
// allocated (see populate), rather than a page at a time as the guest
// first touches it: the initial memory, where data segments are copied,
// and the first grows. Beyond it, pages are committed on first touch, so
// that a guest that grows much and touches little does not hold it all.
const maxPopulate = 32 << 20

// NewLinear maps a memory capped at max bytes, or takes a mapping of
// pool's when pool is set (and has the same image), which starts with
// image when it is set. It keeps its current size in size, for whoever
// reports it.
func NewLinear(max uint64, size *atomic.Uint64, pool *Pool, image *Image) *Linear {
	m := &Linear{max: max, size: size, image: image}
	if pool != nil && max <= uint64(pool.Size) && pool.Image == image {
		m.pool = pool
		if m.mapped = pool.get(); m.mapped != nil {
			m.resident = pool.Keep
			return m
		}
		m.mapped, _ = mapMemory(pool.Size)
	} else if max > 0 {
		m.mapped, _ = mapMemory(int(max))
	}
	// A failed mapping leaves mapped nil: every allocation then fails
	// inside the guest, as an allocation past the cap does; and so does an
	// image that cannot be laid, which would leave the guest's data out.
	if m.mapped != nil && image != nil {
		if err := image.lay(m.mapped); err != nil {
			_ = syscall.Munmap(m.mapped)
			m.mapped = nil
		}
	}
	return m
}

// ChargeTo makes the memory take what it grows to from budget: held is
// what was taken from budget for it before it existed (its initial size),
// which it gives back, with the rest, when it is freed; denied is set when
// budget refuses it a grow. It is called before the memory is first used.
func (m *Linear) ChargeTo(budget *Budget, held uint64, denied *atomic.Bool) {
	m.budget, m.held, m.denied = budget, held, denied
}

// Reallocate grows the memory to size bytes and returns them, or returns
// nil (a failed memory.grow inside the guest) past the cap, the mapping or
// the budget. The bytes never move: wazero's experimental.LinearMemory.
func (m *Linear) Reallocate(size uint64) []byte {
	if size > m.max || size > uint64(len(m.mapped)) {
		return nil
	}
	if m.budget != nil && size > m.held {
		if !m.budget.Reserve(size - m.held) {
			m.denied.Store(true)
			return nil
		}
		m.held = size
	}
	if from := max(m.size.Load(), m.resident, m.imageMapped()); size > from && from < maxPopulate {
		populate(m.mapped[from:min(size, maxPopulate)])
	}
	m.size.Store(size)
	m.used = max(m.used, size)
	return m.mapped[:size:size]
}

// imageMapped is how much of the memory the image is mapped over: those
// pages are not populated (which would copy each), but faulted in, shared,
// as the guest reads them, and copied as it writes them.
func (m *Linear) imageMapped() uint64 {
	if m.image == nil || !m.image.Mapped() {
		return 0
	}
	return uint64(m.image.Size())
}

// Free gives the mapping back to the pool, or unmaps it, and what the
// memory took back to the budget. The memory is empty after.
func (m *Linear) Free() {
	if m.mapped != nil && (m.pool == nil || !m.pool.put(m.mapped, m.used)) {
		_ = syscall.Munmap(m.mapped)
	}
	m.mapped = nil
	m.size.Store(0)
	if m.budget != nil {
		m.budget.Release(m.held)
		m.held = 0
	}
}
