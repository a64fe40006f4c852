// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/modcache"
)

// FuzzInspectModule: inspectModule never panics, never refuses a module
// that wazero accepts, and reads the memory minimum that wazero reads (for
// a memory wazero shows: imported or exported).
func FuzzInspectModule(f *testing.F) {
	header := []byte("\x00asm\x01\x00\x00\x00")
	for _, seed := range [][]byte{
		nil,
		header,
		header[:6],
		[]byte("\x00asm\x0d\x00\x01\x00"), // a component
		[]byte("\x7fELF\x02\x01\x01\x00"),
		// A memory of 2 pages, exported as "memory".
		append(append([]byte{}, header...), 0x05, 0x03, 0x01, 0x00, 0x02,
			0x07, 0x0a, 0x01, 0x06, 'm', 'e', 'm', 'o', 'r', 'y', 0x02, 0x00),
		// The same with a maximum, and a truncated LEB128.
		append(append([]byte{}, header...), 0x05, 0x04, 0x01, 0x01, 0x02, 0x03),
		append(append([]byte{}, header...), 0x05, 0x03, 0x01, 0x00, 0x82),
	} {
		f.Add(seed)
	}
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, runtimeConfig(executor.EngineInterpreter, false))
	f.Cleanup(func() { _ = rt.Close(ctx) })
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := inspectModule(b)
		if errors.Is(err, errSectionOverrun) {
			// No decoder accepts it, and wazero's can take seconds and
			// gigabytes to say so (a huge declared count in a section
			// that runs past the end: seen here, 7 s for 17 bytes), which
			// is why loadProgram checks first.
			return
		}
		mod, cerr := rt.CompileModule(ctx, b)
		if cerr != nil {
			return // refused by wazero: inspectModule may say anything but panic
		}
		defer mod.Close(ctx)
		if err != nil {
			t.Fatalf("inspectModule refuses a module wazero accepts: %v", err)
		}
		mems := mod.ImportedMemories()
		for _, m := range mod.ExportedMemories() {
			mems = append(mems, m)
		}
		if len(mems) == 0 {
			return
		}
		if !h.hasMemory || h.minPages != mems[0].Min() {
			t.Fatalf("inspectModule read memory %v min %d; wazero reads min %d", h.hasMemory, h.minPages, mems[0].Min())
		}
	})
}

// TestSectionOverrunIsRefusedFirst: a 17-byte module whose export section
// runs past its end and declares 234 million exports, found by
// FuzzInspectModule, keeps wazero's decoder busy for seconds; the module
// check refuses it first, as a job error.
func TestSectionOverrunIsRefusedFirst(t *testing.T) {
	b := []byte("\x00asm\x01\x00\x00\x00\x05\x03\x01\x00\x02\a\n\xe4\x95\xd1o")
	_, err := inspectModule(b)
	if !errors.Is(err, errSectionOverrun) {
		t.Fatalf("inspectModule: %v", err)
	}
	_, err = loadProgram(context.Background(), nil, modcache.Cache{}, programSpec{Module: "/local/x.wasm", Engine: executor.EngineInterpreter}, b, moduleDigest(b), nil)
	if executor.ClassOf(err) != executor.ClassJob || !strings.Contains(err.Error(), "section 7 at offset 13 declares 10 bytes but only 4 remain") {
		t.Fatalf("loadProgram: %v (class %v)", err, executor.ClassOf(err))
	}
}
