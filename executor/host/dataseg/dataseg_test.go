// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package dataseg

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/shoenig/test/must"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

// module is a module with one memory of pages and a data section holding
// the data section content data (nil: none), preceded by a data count
// section when dataCount.
func module(pages byte, data []byte, dataCount bool) []byte {
	b := []byte("\x00asm\x01\x00\x00\x00")
	b = append(b, 5, 3, 1, 0, pages) // memory section: one memory, min pages
	if dataCount {
		b = append(b, sectionDataCount, 1, 1)
	}
	if data != nil {
		b = append(b, sectionData)
		b = binary.AppendUvarint(b, uint64(len(data)))
		b = append(b, data...)
	}
	return b
}

// segments is a data section's content: active segments at the offsets,
// each holding its data.
func segments(offsets []uint32, data [][]byte) []byte {
	segs := make([]Segment, len(offsets))
	for i := range offsets {
		segs[i] = Segment{Offset: offsets[i], Data: data[i]}
	}
	return encode(segs)
}

// image applies the data section of module b to a zero memory of n bytes.
func image(t *testing.T, b []byte, n int) []byte {
	t.Helper()
	mem := make([]byte, n)
	for p := 8; p < len(b); {
		id := b[p]
		size, k, ok := uleb32(b[p+1:])
		must.True(t, ok)
		p += 1 + k
		if id == sectionData {
			segs, ok := parseSegments(b[p : p+int(size)])
			must.True(t, ok)
			for _, s := range segs {
				copy(mem[s.Offset:], s.Data)
			}
		}
		p += int(size)
	}
	return mem
}

// TestCoalesce: many neighbouring segments become few, with the same
// image; segments far apart stay apart.
func TestCoalesce(t *testing.T) {
	var offsets []uint32
	var data [][]byte
	for i := range 200 {
		offsets = append(offsets, uint32(1000+i*10)) // 4 bytes, then a gap of 6
		data = append(data, []byte{byte(i), byte(i + 1), 2, 3})
	}
	offsets = append(offsets, 60000) // far: a segment of its own
	data = append(data, []byte("far"))
	// Out of order in the module: the order does not matter without overlaps.
	offsets[3], offsets[7] = offsets[7], offsets[3]
	data[3], data[7] = data[7], data[3]
	b := module(1, segments(offsets, data), false)
	out, ok := Coalesce(b)
	must.True(t, ok)
	must.Eq(t, image(t, b, 65536), image(t, out, 65536))
	var merged []Segment
	for p := 8; p < len(out); {
		id := out[p]
		size, k, _ := uleb32(out[p+1:])
		p += 1 + k
		if id == sectionData {
			merged, _ = parseSegments(out[p : p+int(size)])
		}
		p += int(size)
	}
	must.Len(t, 2, merged)
	must.Eq(t, uint32(1000), merged[0].Offset)
	must.Eq(t, uint32(60000), merged[1].Offset)
}

// TestCoalesceLeavesAlone: a module it must not rewrite comes back as it
// is: too few segments, overlapping ones, a passive one, an offset that is
// not a constant, a data count section, no data, malformed bytes.
func TestCoalesceLeavesAlone(t *testing.T) {
	many := func(mutate func(offsets []uint32)) []byte {
		offsets := make([]uint32, 100)
		data := make([][]byte, 100)
		for i := range offsets {
			offsets[i], data[i] = uint32(i*8), []byte("12345678")
		}
		if mutate != nil {
			mutate(offsets)
		}
		return segments(offsets, data)
	}
	passive := append([]byte{1, 1, 2, 'h', 'i'}, many(nil)[1:]...)
	passive[0] = 101 // 101 segments: the passive one, then 100
	global := append([]byte{1, 0, 0x23, 0, 0x0b, 1, 'x'}, many(nil)[1:]...)
	global[0] = 101
	for name, b := range map[string][]byte{
		"few segments":   module(1, segments([]uint32{0, 8}, [][]byte{[]byte("a"), []byte("b")}), false),
		"overlapping":    module(1, many(func(o []uint32) { o[50] = o[49] + 4 }), false),
		"passive":        module(1, passive, false),
		"global offset":  module(1, global, false),
		"data count":     module(1, many(nil), true),
		"no data":        module(1, nil, false),
		"truncated":      module(1, many(nil), false)[:60],
		"not a module":   []byte("#!/bin/sh\n"),
		"section beyond": append(module(1, many(nil), false), sectionData, 0xff, 0xff, 0xff, 0xff, 0x0f),
	} {
		out, ok := Coalesce(b)
		must.False(t, ok, must.Sprint(name))
		must.Eq(t, b, out, must.Sprint(name))
	}
}

// TestCoalesceGoModule: a real Go module (the test guests' hello-go) is
// rewritten, to a fraction of its segments, and wazero instantiates both
// to the same memory.
func TestCoalesceGoModule(t *testing.T) {
	dir := t.TempDir()
	testmodule.Install(t, "hello-go", dir, "hello.wasm")
	b, err := os.ReadFile(filepath.Join(dir, "hello.wasm"))
	must.NoError(t, err)
	out, ok := Coalesce(b)
	must.True(t, ok)
	ctx := context.Background()
	memoryOf := func(b []byte) []byte {
		r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
		defer r.Close(ctx)
		wasi_snapshot_preview1.MustInstantiate(ctx, r)
		mod, err := r.InstantiateWithConfig(ctx, b, wazero.NewModuleConfig().WithStartFunctions())
		must.NoError(t, err)
		mem, ok := mod.Memory().Read(0, mod.Memory().Size())
		must.True(t, ok)
		return bytes.Clone(mem)
	}
	must.True(t, bytes.Equal(memoryOf(b), memoryOf(out)), must.Sprint("the rewritten module's memory differs"))
}

// FuzzCoalesce: Coalesce never panics, and a module it rewrites has the
// same data image as the original.
func FuzzCoalesce(f *testing.F) {
	var offsets []uint32
	var data [][]byte
	for i := range 70 {
		offsets = append(offsets, uint32(i*5))
		data = append(data, []byte{byte(i), 1, 2})
	}
	f.Add(module(1, segments(offsets, data), false))
	f.Add(module(1, segments([]uint32{0, 5000, 9000}, [][]byte{[]byte("a"), []byte("b"), []byte("c")}), false))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x0b\x01\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		out, ok := Coalesce(b)
		if !ok {
			if !bytes.Equal(out, b) {
				t.Fatal("a module left alone changed")
			}
			return
		}
		if maxEnd(t, b) > 1<<20 {
			return
		}
		n := int(maxEnd(t, b))
		if !bytes.Equal(image(t, b, n), image(t, out, n)) {
			t.Fatal("the rewritten module's data differs")
		}
	})
}

// maxEnd is where the last of b's segments ends.
func maxEnd(t *testing.T, b []byte) uint64 {
	var end uint64
	for p := 8; p < len(b); {
		id := b[p]
		size, k, _ := uleb32(b[p+1:])
		p += 1 + k
		if id == sectionData {
			segs, _ := parseSegments(b[p : p+int(size)])
			for _, s := range segs {
				end = max(end, uint64(s.Offset)+uint64(len(s.Data)))
			}
		}
		p += int(size)
	}
	return end
}

// laid lays segs into a zero memory of n bytes, as a caller of Split does.
func laid(segs []Segment, n int) []byte {
	mem := make([]byte, n)
	for _, s := range segs {
		copy(mem[s.Offset:], s.Data)
	}
	return mem
}

// TestSplit: the module loses its data section, and the segments lay the
// same bytes as the section did; a module Split cannot take whole is
// returned as it is.
func TestSplit(t *testing.T) {
	b := module(1, segments([]uint32{100, 3000, 40000}, [][]byte{[]byte("abc"), []byte("de"), []byte("f")}), false)
	out, segs, ok := Split(b, 65536)
	must.True(t, ok)
	must.Eq(t, module(1, nil, false), out, must.Sprint("the module without its data section"))
	must.Eq(t, image(t, b, 65536), laid(segs, 65536))
	must.Len(t, 2, segs, must.Sprint("the first two are within 4 KiB of each other"))
	for _, s := range segs {
		must.Positive(t, len(s.Data))
	}
	b2 := bytes.Clone(b)
	segs[0].Data[0] = 'X'
	must.Eq(t, b2, b, must.Sprint("the segments are copies, not b's bytes"))

	for name, c := range map[string]struct {
		b      []byte
		memory uint64
	}{
		"past the initial memory":   {module(1, segments([]uint32{65535}, [][]byte{[]byte("ab")}), false), 65536},
		"a data count section":      {module(1, segments([]uint32{0}, [][]byte{[]byte("a")}), true), 65536},
		"no data section":           {module(1, nil, false), 65536},
		"only empty segments":       {module(1, segments([]uint32{0, 10}, [][]byte{nil, nil}), false), 65536},
		"overlapping segments":      {module(1, segments([]uint32{0, 1}, [][]byte{[]byte("ab"), []byte("c")}), false), 65536},
		"a passive segment":         {module(1, []byte{1, 1, 1, 'a'}, false), 65536},
		"truncated":                 {module(1, segments([]uint32{0}, [][]byte{[]byte("ab")}), false)[:20], 65536},
		"not a module":              {[]byte("hello, world"), 65536},
		"a segment at the very end": {module(1, segments([]uint32{65534}, [][]byte{[]byte("ab")}), false), 65535},
	} {
		t.Run(name, func(t *testing.T) {
			out, segs, ok := Split(c.b, c.memory)
			must.False(t, ok)
			must.Nil(t, segs)
			must.Eq(t, c.b, out)
		})
	}
}

// TestSplitGoModule: a Go module's instance without its data section,
// with the segments laid into its memory, holds what the whole module's
// instance holds.
func TestSplitGoModule(t *testing.T) {
	dir := t.TempDir()
	testmodule.Install(t, "hello-go", dir, "hello.wasm")
	b, err := os.ReadFile(filepath.Join(dir, "hello.wasm"))
	must.NoError(t, err)
	ctx := context.Background()
	memoryOf := func(b []byte, segs []Segment) []byte {
		r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
		defer r.Close(ctx)
		wasi_snapshot_preview1.MustInstantiate(ctx, r)
		mod, err := r.InstantiateWithConfig(ctx, b, wazero.NewModuleConfig().WithStartFunctions())
		must.NoError(t, err)
		for _, s := range segs {
			must.True(t, mod.Memory().Write(s.Offset, s.Data))
		}
		mem, ok := mod.Memory().Read(0, mod.Memory().Size())
		must.True(t, ok)
		return bytes.Clone(mem)
	}
	whole := memoryOf(b, nil)
	out, segs, ok := Split(b, uint64(len(whole)))
	must.True(t, ok)
	must.Less(t, len(b)-900<<10, len(out), must.Sprint("the Go module's data section, about a megabyte, is gone"))
	must.True(t, bytes.Equal(whole, memoryOf(out, segs)), must.Sprint("the split module's memory, segments laid, differs"))
}

// FuzzSplit: Split never panics; a module it splits, its segments laid,
// has the data image of the original, and is the original less its data
// section.
func FuzzSplit(f *testing.F) {
	f.Add(module(1, segments([]uint32{0, 5000, 9000}, [][]byte{[]byte("a"), []byte("b"), []byte("c")}), false), uint32(65536))
	f.Add(module(1, segments([]uint32{65535}, [][]byte{[]byte("ab")}), false), uint32(65536))
	f.Add([]byte("\x00asm\x01\x00\x00\x00\x0b\x01\x00"), uint32(0))
	f.Fuzz(func(t *testing.T, b []byte, memory uint32) {
		out, segs, ok := Split(b, uint64(memory))
		if !ok {
			if !bytes.Equal(out, b) || segs != nil {
				t.Fatal("a module left alone changed")
			}
			return
		}
		end := maxEnd(t, b)
		if end > uint64(memory) {
			t.Fatalf("split a module whose data ends at %d, past its memory's %d bytes", end, memory)
		}
		if len(out) >= len(b) {
			t.Fatal("the split module kept its data section")
		}
		if end > 1<<20 {
			return
		}
		if !bytes.Equal(image(t, b, int(end)), laid(segs, int(end))) {
			t.Fatal("the segments lay other bytes than the data section")
		}
	})
}

// BenchmarkSplit splits the Go module (tens of thousands of segments, a
// megabyte of data), as every cached start of it does.
func BenchmarkSplit(b *testing.B) {
	dir := b.TempDir()
	testmodule.Install(b, "hello-go", dir, "hello.wasm")
	module, err := os.ReadFile(filepath.Join(dir, "hello.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, ok := Split(module, 64<<20); !ok {
			b.Fatal("not split")
		}
	}
}
