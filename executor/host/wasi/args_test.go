// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"testing"

	"github.com/shoenig/test/must"
)

// TestArgsAndEnviron: args_sizes_get and environ_sizes_get count the
// instance's entries and their bytes, each with its NUL; args_get and
// environ_get write a pointer per entry and the NUL-terminated entries;
// all refuse memory outside the guest's, and without an instance both
// lists are empty.
func TestArgsAndEnviron(t *testing.T) {
	t.Parallel()
	const (
		countAt, sizeAt = 0, 4
		ptrsAt, bufAt   = 16, 64
	)
	lists := map[string][]string{
		"environ": {"A=1", "HTTP_Z=z", "PATH_INFO=/x"},
		"args":    {"main.wasm", "", "--flag=été"},
	}
	for kind, list := range lists {
		size := uint32(0)
		var entries string
		for _, s := range list {
			size += uint32(len(s)) + 1
			entries += s + "\x00"
		}
		for _, tc := range []struct {
			name                       string
			instance                   bool
			countAt, sizeAt, ptrs, buf uint32
			wantSizes, wantGet         errno
			count, bytes               uint32
			entries                    string
		}{
			{name: "the instance's", instance: true, countAt: countAt, sizeAt: sizeAt, ptrs: ptrsAt, buf: bufAt,
				count: uint32(len(list)), bytes: size, entries: entries},
			{name: "without an instance", countAt: countAt, sizeAt: sizeAt, ptrs: ptrsAt, buf: bufAt},
			{name: "count past the memory", instance: true, countAt: pageSize - 3, sizeAt: sizeAt, ptrs: ptrsAt, buf: bufAt,
				wantSizes: errnoFault, count: uint32(len(list)), bytes: size, entries: entries},
			{name: "size past the memory", instance: true, countAt: countAt, sizeAt: pageSize - 2, ptrs: ptrsAt, buf: bufAt,
				wantSizes: errnoFault, count: uint32(len(list)), bytes: size, entries: entries},
			{name: "pointers past the memory", instance: true, countAt: countAt, sizeAt: sizeAt, ptrs: pageSize - 8, buf: bufAt,
				wantGet: errnoFault, count: uint32(len(list)), bytes: size},
			{name: "entries past the memory", instance: true, countAt: countAt, sizeAt: sizeAt, ptrs: ptrsAt, buf: pageSize - size + 1,
				wantGet: errnoFault, count: uint32(len(list)), bytes: size},
		} {
			t.Run(kind+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				h := newHost(t)
				h.in.args, h.in.env = lists["args"], lists["environ"]
				ctx := h.ctx()
				if !tc.instance {
					ctx = t.Context()
				}
				call := func(name string, a, b uint32) errno {
					res, err := h.callErr(ctx, name, a, b)
					must.NoError(t, err)
					return errno(res[0])
				}

				got := call(kind+"_sizes_get", tc.countAt, tc.sizeAt)
				must.Eq(t, errnoName(tc.wantSizes), errnoName(got))
				if tc.wantSizes == errnoSuccess {
					must.Eq(t, tc.count, h.u32(tc.countAt))
					must.Eq(t, tc.bytes, h.u32(tc.sizeAt))
				}

				got = call(kind+"_get", tc.ptrs, tc.buf)
				must.Eq(t, errnoName(tc.wantGet), errnoName(got))
				if tc.wantGet != errnoSuccess || tc.entries == "" {
					return
				}
				must.Eq(t, tc.entries, string(h.bytes(tc.buf, uint32(len(tc.entries)))))
				at := tc.buf
				for i, kv := range list {
					must.Eq(t, at, h.u32(tc.ptrs+uint32(i)*4), must.Sprintf("pointer to %q", kv))
					at += uint32(len(kv)) + 1
				}
			})
		}
	}
}
