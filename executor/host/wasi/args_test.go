// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"context"
	"testing"

	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/internal/wasmtest"
)

// TestEnviron: environ_sizes_get counts the instance's entries and their
// bytes, each with its NUL; environ_get writes a pointer per entry and the
// NUL-terminated entries; both refuse memory outside the guest's, and
// without an instance the environment is empty.
func TestEnviron(t *testing.T) {
	t.Parallel()
	const (
		countAt, sizeAt = 0, 4
		ptrsAt, bufAt   = 16, 64
		pageSize        = 65536
	)
	env := []string{"A=1", "HTTP_Z=z", "PATH_INFO=/x"}
	size := uint32(len("A=1") + 1 + len("HTTP_Z=z") + 1 + len("PATH_INFO=/x") + 1)
	for _, tc := range []struct {
		name                       string
		instance                   bool
		countAt, sizeAt, ptrs, buf uint32
		wantSizes, wantGet         uint32
		count, bytes               uint32
		entries                    string
	}{
		{name: "the instance's", instance: true, countAt: countAt, sizeAt: sizeAt, ptrs: ptrsAt, buf: bufAt,
			count: 3, bytes: size, entries: "A=1\x00HTTP_Z=z\x00PATH_INFO=/x\x00"},
		{name: "without an instance", countAt: countAt, sizeAt: sizeAt, ptrs: ptrsAt, buf: bufAt},
		{name: "sizes past the memory", instance: true, countAt: pageSize - 3, sizeAt: sizeAt, ptrs: ptrsAt, buf: bufAt,
			wantSizes: errnoFault, count: 0, bytes: size, entries: "A=1\x00HTTP_Z=z\x00PATH_INFO=/x\x00"},
		{name: "pointers past the memory", instance: true, countAt: countAt, sizeAt: sizeAt, ptrs: pageSize - 8, buf: bufAt,
			wantGet: errnoFault, count: 3, bytes: size},
		{name: "entries past the memory", instance: true, countAt: countAt, sizeAt: sizeAt, ptrs: ptrsAt, buf: pageSize - size + 1,
			wantGet: errnoFault, count: 3, bytes: size},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mod := wasmtest.Instantiate(t, context.Background(), wasmtest.Runtime(t))
			mem := mod.Memory()
			ctx := context.Background()
			if tc.instance {
				in := newTestInstance(t)
				in.env = env
				ctx = WithInstance(ctx, in)
			}

			stack := []uint64{uint64(tc.countAt), uint64(tc.sizeAt)}
			environSizesGet(ctx, mod, stack)
			must.Eq(t, uint64(tc.wantSizes), stack[0])
			if tc.wantSizes == errnoSuccess {
				count, _ := mem.ReadUint32Le(tc.countAt)
				bytes, _ := mem.ReadUint32Le(tc.sizeAt)
				must.Eq(t, tc.count, count)
				must.Eq(t, tc.bytes, bytes)
			}

			stack = []uint64{uint64(tc.ptrs), uint64(tc.buf)}
			environGet(ctx, mod, stack)
			must.Eq(t, uint64(tc.wantGet), stack[0])
			if tc.wantGet != errnoSuccess || tc.entries == "" {
				return
			}
			entries, ok := mem.Read(tc.buf, uint32(len(tc.entries)))
			must.True(t, ok)
			must.Eq(t, tc.entries, string(entries))
			at := tc.buf
			for i, kv := range env {
				ptr, _ := mem.ReadUint32Le(tc.ptrs + uint32(i)*4)
				must.Eq(t, at, ptr, must.Sprintf("pointer to %q", kv))
				at += uint32(len(kv)) + 1
			}
		})
	}
}
