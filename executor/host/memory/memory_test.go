// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package memory

import (
	"bytes"
	"runtime"
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
		m := NewLinear(8<<20, &size, pool, nil)
		b := m.Reallocate(3 << 20)
		must.NotNil(t, b)
		must.True(t, bytes.Count(b, []byte{0}) == len(b), must.Sprintf("round %d: memory from the pool is not zero", round))
		for i := range b {
			b[i] = 0xff
		}
		m.Free()
		must.Len(t, 1, pool.free)
	}
	extra := NewLinear(8<<20, &size, pool, nil)
	other := NewLinear(8<<20, &size, pool, nil) // the pool is empty now: a fresh mapping
	must.NotNil(t, other.Reallocate(1))
	extra.Free()
	other.Free() // the pool is full: unmapped
	must.Len(t, 1, pool.free)
}

// testImage is an image of two parts: a page of 0xaa at 4 KiB and "data"
// at 3 pages + 10: 4 pages in all.
func testImage(t *testing.T) (*Image, []byte) {
	page := bytes.Repeat([]byte{0xaa}, 4096)
	img := NewImage([]Part{{Offset: 4096, Data: page}, {Offset: 3*4096 + 10, Data: []byte("data")}})
	t.Cleanup(img.Close)
	want := make([]byte, 4*4096)
	copy(want[4096:], page)
	copy(want[3*4096+10:], "data")
	return img, want
}

// copiedImage is img as it is where it cannot be mapped.
func copiedImage(img *Image) *Image {
	return &Image{size: img.size, parts: []Part{{Offset: 4096, Data: bytes.Repeat([]byte{0xaa}, 4096)}, {Offset: 3*4096 + 10, Data: []byte("data")}}}
}

// TestImage: a memory made with an image starts with it and zeros after;
// what an instance writes, in the image's pages and past them, reaches
// neither the image nor the next memory, pooled or not; the image is
// mapped on Linux, copied elsewhere, and both ways hold the same.
func TestImage(t *testing.T) {
	t.Parallel()
	mapped, want := testImage(t)
	must.Eq(t, 4*4096, mapped.Size())
	must.Eq(t, runtime.GOOS == "linux", mapped.Mapped())
	for name, img := range map[string]*Image{"mapped": mapped, "copied": copiedImage(mapped)} {
		t.Run(name, func(t *testing.T) {
			pool := &Pool{Max: 1, Size: 1 << 20, Keep: 6 * 4096, Image: img}
			defer pool.Close()
			var size atomic.Uint64
			for round := range 3 {
				for _, p := range []*Pool{pool, nil} {
					m := NewLinear(1<<20, &size, p, img)
					b := m.Reallocate(512 << 10)
					must.NotNil(t, b)
					must.True(t, bytes.Equal(want, b[:len(want)]), must.Sprintf("round %d, pooled %v: the memory does not start with the image", round, p != nil))
					must.True(t, bytes.Count(b[len(want):], []byte{0}) == len(b)-len(want), must.Sprintf("round %d, pooled %v: the memory past the image is not zero", round, p != nil))
					for i := range b {
						b[i] = byte(i) | 1
					}
					m.Free()
				}
				must.Len(t, 1, pool.free)
			}
		})
	}
	if mapped.Mapped() {
		// The memfd itself still holds the image, sealed.
		got := make([]byte, mapped.Size())
		_, err := mapped.file.ReadAt(got, 0)
		must.NoError(t, err)
		must.Eq(t, want, got)
		_, err = mapped.file.WriteAt([]byte("x"), 0)
		must.Error(t, err, must.Sprint("the image's memfd is sealed against writes"))
	}
}

// TestImageLargerThanTheMemory: a memory too small for its image fails
// every allocation rather than start without its data.
func TestImageLargerThanTheMemory(t *testing.T) {
	t.Parallel()
	img, _ := testImage(t)
	var size atomic.Uint64
	m := NewLinear(2*4096, &size, nil, img)
	must.Nil(t, m.Reallocate(4096))
	m.Free()
}

// TestImageClosedLeavesMemories: closing an image keeps the memories that
// map it whole; a pool then no longer keeps their mappings.
func TestImageClosedLeavesMemories(t *testing.T) {
	t.Parallel()
	img, want := testImage(t)
	pool := &Pool{Max: 1, Size: 1 << 20, Keep: 4096, Image: img}
	defer pool.Close()
	var size atomic.Uint64
	m := NewLinear(1<<20, &size, pool, img)
	b := m.Reallocate(64 << 10)
	img.Close()
	must.Eq(t, want, b[:len(want)])
	m.Free()
	if img.Mapped() {
		must.Len(t, 0, pool.free)
	}
}
