// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package memory

import (
	"bytes"
	"sync/atomic"
	"testing"

	"github.com/shoenig/test/must"
	"github.com/tetratelabs/wazero/experimental"
)

// Linear is a wazero linear memory; the package itself links no wazero.
var _ experimental.LinearMemory = (*Linear)(nil)

// TestMemPoolZeroes: a pooled mapping comes back to the next instance all
// zero, below and above what it keeps resident, and the pool keeps at most max.
func TestMemPoolZeroes(t *testing.T) {
	t.Parallel()
	pool := &Pool{Max: 1, Size: 8 << 20, Keep: 1 << 20}
	defer pool.Close()
	var size atomic.Uint64
	for round := range 3 {
		m := NewLinear(8<<20, &size, pool)
		b := m.Reallocate(3 << 20)
		must.NotNil(t, b)
		must.True(t, bytes.Count(b, []byte{0}) == len(b), must.Sprintf("round %d: memory from the pool is not zero", round))
		for i := range b {
			b[i] = 0xff
		}
		m.Free()
		must.Len(t, 1, pool.free)
	}
	extra := NewLinear(8<<20, &size, pool)
	other := NewLinear(8<<20, &size, pool) // the pool is empty now: a fresh mapping
	must.NotNil(t, other.Reallocate(1))
	extra.Free()
	other.Free() // the pool is full: unmapped
	must.Len(t, 1, pool.free)
}
