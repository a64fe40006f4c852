// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
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
}

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
	m.size.Store(size)
	return m.mapped[:size:size]
}

func (m *linearMemory) Free() {
	if m.mapped != nil {
		_ = syscall.Munmap(m.mapped)
	}
	m.mapped = nil
	m.size.Store(0)
}
