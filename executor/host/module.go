// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"bytes"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
)

var (
	wasmMagic         = []byte("\x00asm")
	coreModuleVersion = []byte{0x01, 0x00, 0x00, 0x00}
)

// moduleHeader is what the executor learns from a module's bytes before
// handing them to wazero: enough to refuse the common mistakes with a
// message that says what the file is and what to do instead.
type moduleHeader struct {
	// hasMemory is true when the module defines or imports a linear memory.
	hasMemory bool
	// minPages is the declared minimum of its first memory.
	minPages uint32
	// memoryImported: that memory is imported, not the module's own.
	memoryImported bool
	// hasStart is true when the module has a start function (a start
	// section), which runs while it is instantiated.
	hasStart bool
}

// inspectModule checks that b is a WebAssembly core module and reads its
// memory declaration. wazero validates everything else at compile time.
func inspectModule(b []byte) (moduleHeader, error) {
	if len(b) == 0 {
		return moduleHeader{}, errors.New("the file is empty: expected a WebAssembly module (a .wasm file starting with \\0asm)")
	}
	if len(b) < 8 || !bytes.Equal(b[:4], wasmMagic) {
		if bytes.HasPrefix(wasmMagic, b) || bytes.HasPrefix(b, wasmMagic) {
			return moduleHeader{}, fmt.Errorf("the file is truncated: %d bytes, shorter than a WebAssembly header", len(b))
		}
		return moduleHeader{}, fmt.Errorf("not a WebAssembly module: %s", describe(b))
	}
	version := b[4:8]
	if !bytes.Equal(version, coreModuleVersion) {
		// The component model keeps the magic and uses version 0x0d with
		// layer 1 in the next two bytes.
		if version[2] == 0x01 && version[3] == 0x00 {
			return moduleHeader{}, errors.New("this is a WebAssembly component (WASI preview 2), and components are not supported: " +
				"this driver runs WASI preview 1 core modules. Build for wasm32-wasip1 instead " +
				"(Rust: --target wasm32-wasip1; Go: GOOS=wasip1 GOARCH=wasm; TinyGo: -target=wasip1; C: clang --target=wasm32-wasi)")
		}
		return moduleHeader{}, fmt.Errorf("unsupported WebAssembly binary version % x: only version 1 core modules are supported", version)
	}
	return readSections(b[8:])
}

// describe says what a file that is not WebAssembly looks like.
func describe(b []byte) string {
	head := b[:min(len(b), 64)]
	switch {
	case bytes.HasPrefix(b, []byte("\x7fELF")):
		return "it is an ELF binary (a native Linux executable or library); build the program for WebAssembly instead, e.g. GOOS=wasip1 GOARCH=wasm or clang --target=wasm32-wasi"
	case bytes.HasPrefix(b, []byte{0xcf, 0xfa, 0xed, 0xfe}), bytes.HasPrefix(b, []byte{0xca, 0xfe, 0xba, 0xbe}):
		return "it is a Mach-O binary (a native macOS executable); build the program for WebAssembly instead"
	case bytes.HasPrefix(b, []byte("MZ")):
		return "it is a Windows PE executable; build the program for WebAssembly instead"
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		return "it is gzip-compressed; unpack it first (an artifact block unpacks .gz/.tar.gz archives)"
	case bytes.HasPrefix(b, []byte("PK\x03\x04")):
		return "it is a zip archive; unpack it first (an artifact block unpacks .zip archives)"
	case bytes.HasPrefix(b, []byte("#!")):
		return fmt.Sprintf("it is a script (starts with %q)", firstLine(head))
	case utf8.Valid(head) && printable(head):
		text := bytes.TrimSpace(head)
		switch {
		case bytes.HasPrefix(text, []byte("(module")), bytes.HasPrefix(text, []byte("(component")):
			return "it is WebAssembly text format (WAT); compile it to binary first, e.g. with wat2wasm"
		case bytes.HasPrefix(text, []byte("<")):
			return fmt.Sprintf("it looks like HTML or XML (starts with %q), perhaps an error page saved by a failed download", firstLine(head))
		}
		return fmt.Sprintf("it looks like text (starts with %q)", firstLine(head))
	}
	return fmt.Sprintf("unrecognised content (first bytes % x)", b[:min(len(b), 8)])
}

func firstLine(b []byte) string {
	line, _, _ := bytes.Cut(bytes.TrimSpace(b), []byte("\n"))
	return string(line)
}

func printable(b []byte) bool {
	for _, r := range string(b) {
		if r < 0x20 && r != '\n' && r != '\r' && r != '\t' {
			return false
		}
	}
	return true
}

// Section IDs and import kinds from the WebAssembly core specification.
const (
	sectionImport = 2
	sectionMemory = 5
	sectionStart  = 8

	importFunc   = 0
	importTable  = 1
	importMemory = 2
	importGlobal = 3
	importTag    = 4
)

// errSectionOverrun marks a module with a section that runs past its end:
// no decoder can accept it, and wazero's may take seconds to find out (a
// section that declares a huge count of entries), so it is refused here,
// before wazero sees it. It adds nothing to the message.
var errSectionOverrun = errors.New("")

// readSections walks the section headers so that a truncated module is
// reported as such, and decodes the first memory's limits.
func readSections(b []byte) (moduleHeader, error) {
	var h moduleHeader
	r := &byteReader{b: b, base: 8}
	for !r.done() {
		start := r.offset()
		id, err := r.byte()
		if err != nil {
			return h, err
		}
		size, err := r.u32()
		if err != nil {
			return h, malformed(start, err)
		}
		if int(size) > r.remaining() {
			return h, fmt.Errorf("the module is truncated or malformed: section %d at offset %d declares %d bytes but only %d remain%w", id, start, size, r.remaining(), errSectionOverrun)
		}
		body := &byteReader{b: r.take(int(size)), base: r.offset() - int(size)}
		if id == sectionStart {
			h.hasStart = true
		}
		if h.hasMemory {
			continue
		}
		switch id {
		case sectionImport:
			h, err = readMemoryImport(body)
		case sectionMemory:
			h, err = readMemorySection(body)
		}
		if err != nil {
			return h, malformed(start, err)
		}
	}
	return h, nil
}

func malformed(offset int, err error) error {
	return fmt.Errorf("the module is truncated or malformed at offset %d: %w", offset, err)
}

func readMemoryImport(r *byteReader) (moduleHeader, error) {
	n, err := r.u32()
	if err != nil {
		return moduleHeader{}, err
	}
	for range n {
		for range 2 { // module name, field name
			l, err := r.u32()
			if err != nil {
				return moduleHeader{}, err
			}
			if int(l) > r.remaining() {
				return moduleHeader{}, errors.New("import name runs past its section")
			}
			r.take(int(l))
		}
		kind, err := r.byte()
		if err != nil {
			return moduleHeader{}, err
		}
		switch kind {
		case importFunc:
			_, err = r.u32()
		case importTable:
			if _, err = r.byte(); err == nil {
				_, _, err = r.limits()
			}
		case importMemory:
			min, _, err := r.limits()
			return moduleHeader{hasMemory: true, minPages: min, memoryImported: true}, err
		case importGlobal:
			_, err = r.byte()
			if err == nil {
				_, err = r.byte()
			}
		case importTag:
			if _, err = r.byte(); err == nil {
				_, err = r.u32()
			}
		default:
			return moduleHeader{}, fmt.Errorf("unknown import kind %d", kind)
		}
		if err != nil {
			return moduleHeader{}, err
		}
	}
	return moduleHeader{}, nil
}

func readMemorySection(r *byteReader) (moduleHeader, error) {
	n, err := r.u32()
	if err != nil || n == 0 {
		return moduleHeader{}, err
	}
	min, _, err := r.limits()
	return moduleHeader{hasMemory: true, minPages: min}, err
}

// byteReader decodes the few WebAssembly encodings the header check needs.
type byteReader struct {
	b    []byte
	pos  int
	base int // offset of b[0] in the file, for messages
}

var errEOF = errors.New("unexpected end of data")

func (r *byteReader) done() bool     { return r.pos >= len(r.b) }
func (r *byteReader) remaining() int { return len(r.b) - r.pos }
func (r *byteReader) offset() int    { return r.base + r.pos }
func (r *byteReader) take(n int) []byte {
	s := r.b[r.pos : r.pos+n]
	r.pos += n
	return s
}

func (r *byteReader) byte() (byte, error) {
	if r.done() {
		return 0, errEOF
	}
	c := r.b[r.pos]
	r.pos++
	return c, nil
}

// u32 reads an unsigned LEB128 number of at most 32 bits.
func (r *byteReader) u32() (uint32, error) {
	var v uint32
	for shift := uint(0); shift < 35; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("integer too long")
}

// limits reads a limits type; memory64 and its 64-bit limits are refused.
func (r *byteReader) limits() (min uint32, max *uint32, err error) {
	flags, err := r.byte()
	if err != nil {
		return 0, nil, err
	}
	if flags&0x04 != 0 {
		return 0, nil, errors.New("64-bit memories (memory64) are not supported")
	}
	if min, err = r.u32(); err != nil {
		return 0, nil, err
	}
	if flags&0x01 != 0 {
		m, err := r.u32()
		if err != nil {
			return 0, nil, err
		}
		max = &m
	}
	return min, max, nil
}

// formatPages renders a page count as bytes a person reads.
func formatPages(pages uint32) string {
	return formatBytes(uint64(pages) * executor.PageSize)
}

func formatBytes(n uint64) string {
	switch {
	case n >= 1<<30 && n%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", n>>30)
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
