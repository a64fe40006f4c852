// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package dataseg rewrites a WebAssembly module's data section so that
// instantiating it is cheap: the active data segments, which a Go
// (GOOS=wasip1) module has by the tens of thousands, are merged into few,
// each covering a run of neighbouring segments, with the short gaps
// between them filled with zeros. Instantiation applies each segment in
// turn (wazero evaluates its offset expression and allocates for it), so a
// module whose instances start by the thousand pays for every segment
// every time: merged, a Go module's instance starts without most of that.
//
// The rewrite changes nothing a guest can observe: a fresh linear memory
// is zero, so the zeros written in the gaps are what was there; the
// merged segments write the same bytes at the same offsets. It is made
// only where that holds: every segment active, in memory 0, at a constant
// offset (i32.const), none overlapping another, and no data count section
// (whose presence means code may name segments by index, with
// memory.init or data.drop). Anything else, or anything it cannot parse,
// leaves the module as it is: wazero then decodes and validates it, and
// says what is wrong.
//
// It links no wazero.
package dataseg

import (
	"encoding/binary"
	"slices"
)

// maxGap is the longest run of zeros put between two segments to merge
// them; a longer gap starts a new segment.
const maxGap = 4096

// minSegments is the fewest segments worth a rewrite.
const minSegments = 64

// Section ids of the binary format.
const (
	sectionData      = 11
	sectionDataCount = 12
)

// Coalesce returns module b with its data segments merged, and whether it
// rewrote it (false: b itself, unchanged). b is not modified.
func Coalesce(b []byte) ([]byte, bool) {
	dataStart, dataEnd, segs, ok := dataSegments(b)
	if !ok || len(segs) < minSegments {
		return b, false
	}
	merged := merge(segs)
	if merged == nil {
		return b, false
	}
	section := encode(merged)
	out := make([]byte, 0, len(b)-(dataEnd-dataStart)+len(section)+6)
	out = append(out, b[:dataStart]...)
	out = append(out, sectionData)
	out = binary.AppendUvarint(out, uint64(len(section)))
	out = append(out, section...)
	out = append(out, b[dataEnd:]...)
	return out, true
}

// Segment is bytes a module's data section writes into memory 0, at
// Offset, when it is instantiated.
type Segment struct {
	Offset uint32
	Data   []byte
}

// Split returns module b without its data section, and what that section
// writes into a fresh memory 0: its segments merged as Coalesce merges
// them (gaps of up to 4 KiB filled with zeros), in offset order, none
// empty, each holding its own copy of the bytes. Whoever instantiates the
// module without its data section then lays the segments into each
// instance's memory itself, before the instance's code runs (package
// memory maps them copy-on-write).
//
// ok is false, and b is returned as it is, where Coalesce's conditions do
// not hold (whatever the number of segments), where there is no data, or
// where a segment would not fit in memoryBytes, the module's initial
// memory: instantiating the module must then fail, as wazero says. Split
// does not know whether memory 0 is the module's own or imported: a
// caller splits only a module that defines it.
func Split(b []byte, memoryBytes uint64) (module []byte, segments []Segment, ok bool) {
	dataStart, dataEnd, segs, ok := dataSegments(b)
	if !ok {
		return b, nil, false
	}
	merged := merge(segs)
	if len(merged) == 0 {
		return b, nil, false
	}
	if last := merged[len(merged)-1]; uint64(last.Offset)+uint64(len(last.Data)) > memoryBytes {
		return b, nil, false
	}
	out := make([]byte, 0, len(b)-(dataEnd-dataStart))
	out = append(out, b[:dataStart]...)
	out = append(out, b[dataEnd:]...)
	return out, merged, true
}

// dataSegments finds module b's data section (its start and end, id and
// size included) and parses its segments; ok is false where the module
// has a data count section, no data section, or one that is not all
// active segments of memory 0 at constant offsets, or where it cannot be
// parsed.
func dataSegments(b []byte) (start, end int, segs []Segment, ok bool) {
	if len(b) < 8 || string(b[:4]) != "\x00asm" {
		return 0, 0, nil, false
	}
	var content []byte
	for p := 8; p < len(b); {
		sectionStart := p
		id := b[p]
		p++
		size, n, ok := uleb32(b[p:])
		if !ok || uint64(p+n)+uint64(size) > uint64(len(b)) {
			return 0, 0, nil, false
		}
		p += n
		switch id {
		case sectionDataCount:
			return 0, 0, nil, false
		case sectionData:
			if content != nil {
				return 0, 0, nil, false // two data sections: malformed
			}
			start, end, content = sectionStart, p+int(size), b[p:p+int(size)]
		}
		p += int(size)
	}
	if content == nil {
		return 0, 0, nil, false
	}
	segs, ok = parseSegments(content)
	return start, end, segs, ok
}

// parseSegments parses a data section's content: only active segments of
// memory 0 at an i32.const offset; anything else is not ok.
func parseSegments(c []byte) ([]Segment, bool) {
	count, n, ok := uleb32(c)
	if !ok {
		return nil, false
	}
	c = c[n:]
	if uint64(count) > uint64(len(c)) { // each takes a byte at least
		return nil, false
	}
	segs := make([]Segment, 0, count)
	for range count {
		flags, n, ok := uleb32(c)
		if !ok || flags != 0 {
			return nil, false
		}
		c = c[n:]
		if len(c) < 1 || c[0] != 0x41 { // i32.const
			return nil, false
		}
		offset, n, ok := sleb32(c[1:])
		if !ok {
			return nil, false
		}
		c = c[1+n:]
		if len(c) < 1 || c[0] != 0x0b { // end
			return nil, false
		}
		c = c[1:]
		size, n, ok := uleb32(c)
		if !ok || uint64(n)+uint64(size) > uint64(len(c)) {
			return nil, false
		}
		segs = append(segs, Segment{Offset: uint32(offset), Data: c[n : n+int(size)]})
		c = c[n+int(size):]
	}
	return segs, len(c) == 0
}

// merge merges segments that follow each other within maxGap; nil when
// two overlap (which one wins would then depend on their order). Each
// merged segment is allocated once, at its size, and its parts copied in:
// a Go module has tens of thousands of segments, and growing the merged
// ones segment by segment cost more than the rest of a split.
func merge(segs []Segment) []Segment {
	sorted := make([]Segment, 0, len(segs))
	for _, s := range segs {
		if len(s.Data) > 0 {
			sorted = append(sorted, s)
		}
	}
	slices.SortStableFunc(sorted, func(a, b Segment) int {
		switch {
		case a.Offset < b.Offset:
			return -1
		case a.Offset > b.Offset:
			return 1
		}
		return 0
	})
	var out []Segment
	for i := 0; i < len(sorted); {
		start := uint64(sorted[i].Offset)
		end := start + uint64(len(sorted[i].Data))
		j := i + 1
		for ; j < len(sorted); j++ {
			next := uint64(sorted[j].Offset)
			if next < end {
				return nil
			}
			if next-end > maxGap {
				break
			}
			end = next + uint64(len(sorted[j].Data))
		}
		data := make([]byte, end-start)
		for _, s := range sorted[i:j] {
			copy(data[uint64(s.Offset)-start:], s.Data)
		}
		out = append(out, Segment{Offset: sorted[i].Offset, Data: data})
		i = j
	}
	return out
}

// encode is a data section's content holding segs.
func encode(segs []Segment) []byte {
	var out []byte
	out = binary.AppendUvarint(out, uint64(len(segs)))
	for _, s := range segs {
		out = append(out, 0x00, 0x41)
		out = appendSleb(out, int64(int32(s.Offset)))
		out = append(out, 0x0b)
		out = binary.AppendUvarint(out, uint64(len(s.Data)))
		out = append(out, s.Data...)
	}
	return out
}

// uleb32 decodes an unsigned LEB128 of at most 32 bits.
func uleb32(b []byte) (uint32, int, bool) {
	var v uint64
	for i := 0; i < 5 && i < len(b); i++ {
		v |= uint64(b[i]&0x7f) << (7 * i)
		if b[i]&0x80 == 0 {
			if v > 0xffffffff {
				return 0, 0, false
			}
			return uint32(v), i + 1, true
		}
	}
	return 0, 0, false
}

// sleb32 decodes a signed LEB128 of at most 32 bits.
func sleb32(b []byte) (int32, int, bool) {
	var v int64
	var shift uint
	for i := 0; i < 5 && i < len(b); i++ {
		v |= int64(b[i]&0x7f) << shift
		shift += 7
		if b[i]&0x80 == 0 {
			if shift < 64 && b[i]&0x40 != 0 {
				v |= -1 << shift
			}
			if v < -1<<31 || v > 1<<31-1 {
				return 0, 0, false
			}
			return int32(v), i + 1, true
		}
	}
	return 0, 0, false
}

// appendSleb appends v as a signed LEB128.
func appendSleb(b []byte, v int64) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 && c&0x40 == 0 || v == -1 && c&0x40 != 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
