// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"os"
	"testing"

	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

func TestInspectModule(t *testing.T) {
	t.Parallel()
	probe, err := os.ReadFile(testmodule.Path(t, "probe"))
	must.NoError(t, err)
	big, err := os.ReadFile(testmodule.Path(t, "bigmem"))
	must.NoError(t, err)

	h, err := inspectModule(probe)
	must.NoError(t, err)
	must.True(t, h.hasMemory)
	must.Positive(t, h.minPages)
	h, err = inspectModule(big)
	must.NoError(t, err)
	must.Eq(t, 2048, h.minPages)

	cases := []struct {
		name string
		b    []byte
		want string
	}{
		{"empty", nil, "the file is empty"},
		{"short", []byte("\x00as"), "the file is truncated: 3 bytes"},
		{"short header", []byte("\x00asm\x01\x00"), "the file is truncated: 6 bytes"},
		{"ELF", []byte("\x7fELF\x02\x01\x01\x00rest"), "it is an ELF binary"},
		{"Mach-O", []byte{0xcf, 0xfa, 0xed, 0xfe, 7, 0, 0, 1}, "it is a Mach-O binary"},
		{"PE", []byte("MZ\x90\x00\x03\x00\x00\x00"), "it is a Windows PE executable"},
		{"gzip", []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0}, "it is gzip-compressed"},
		{"zip", []byte("PK\x03\x04\x14\x00\x00\x00"), "it is a zip archive"},
		{"script", []byte("#!/bin/sh\necho hi\n"), `it is a script (starts with "#!/bin/sh")`},
		{"html", []byte("<!DOCTYPE html><html>404</html>"), "it looks like HTML or XML"},
		{"WAT", []byte("  (module)"), "WebAssembly text format (WAT)"},
		{"text", []byte("just some words"), `it looks like text (starts with "just some words")`},
		{"binary", []byte{0, 1, 2, 3, 4, 5, 6, 7, 8}, "unrecognised content (first bytes 00 01 02 03 04 05 06 07)"},
		{"component", []byte("\x00asm\x0d\x00\x01\x00"), "components are not supported"},
		{"version 2", []byte("\x00asm\x02\x00\x00\x00"), "unsupported WebAssembly binary version 02 00 00 00"},
		{"section overruns", []byte("\x00asm\x01\x00\x00\x00\x01\x7f\x00"), "section 1 at offset 8 declares 127 bytes but only 1 remain"},
		{"bad leb", []byte("\x00asm\x01\x00\x00\x00\x01\xff\xff\xff\xff\xff\xff"), "integer too long"},
		{"memory64", []byte("\x00asm\x01\x00\x00\x00\x05\x03\x01\x04\x01"), "memory64"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := inspectModule(c.b)
			must.ErrorContains(t, err, c.want)
		})
	}
}

func TestFormatPages(t *testing.T) {
	t.Parallel()
	must.Eq(t, "64 KiB", formatPages(1))
	must.Eq(t, "64 MiB", formatPages(1024))
	must.Eq(t, "4 GiB", formatPages(65536))
	must.Eq(t, "100 bytes", formatBytes(100))
}
