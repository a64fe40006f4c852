// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"context"

	"github.com/tetratelabs/wazero/api"
)

// The guest's arguments and environment come from the instance's own
// lists (Instance.Args, Instance.Environ), not from a module
// configuration: wazero's WithEnv copies the configuration and all the
// variables set so far on every call, so a task's fifty NOMAD_* variables
// plus an HTTP request's twenty cost thousands of map inserts per
// instance (a third of the CPU of a small HTTP handler's instance).
// Without an instance, both are empty.

// listSize is what args_sizes_get and environ_sizes_get report: the bytes
// of all entries, each with its NUL.
func listSize(list []string) uint32 {
	n := 0
	for _, kv := range list {
		n += len(kv) + 1
	}
	return uint32(n)
}

// sizesGet writes the count of list's entries at stack[0] and their size
// at stack[1].
func sizesGet(mod api.Module, stack []uint64, list []string) {
	mem := mod.Memory()
	if !mem.WriteUint32Le(uint32(stack[0]), uint32(len(list))) || !mem.WriteUint32Le(uint32(stack[1]), listSize(list)) {
		stack[0] = errnoFault
		return
	}
	stack[0] = errnoSuccess
}

// listGet writes a pointer per entry of list at stack[0], the
// NUL-terminated entries at stack[1].
func listGet(mod api.Module, stack []uint64, list []string) {
	ptrs, buf := uint32(stack[0]), uint32(stack[1])
	mem := mod.Memory()
	offsets, ok := mem.Read(ptrs, uint32(len(list))*4)
	if !ok {
		stack[0] = errnoFault
		return
	}
	bytes, ok := mem.Read(buf, listSize(list))
	if !ok {
		stack[0] = errnoFault
		return
	}
	at := uint32(0)
	for i, kv := range list {
		le.PutUint32(offsets[i*4:], buf+at)
		copy(bytes[at:], kv)
		at += uint32(len(kv))
		bytes[at] = 0
		at++
	}
	stack[0] = errnoSuccess
}

// argsSizesGet is WASI's args_sizes_get(result.argc, result.argv_len).
func argsSizesGet(ctx context.Context, mod api.Module, stack []uint64) {
	sizesGet(mod, stack, instance(ctx).Args())
}

// argsGet is WASI's args_get(argv, argv_buf).
func argsGet(ctx context.Context, mod api.Module, stack []uint64) {
	listGet(mod, stack, instance(ctx).Args())
}

// environSizesGet is WASI's environ_sizes_get(result.environc,
// result.environv_len).
func environSizesGet(ctx context.Context, mod api.Module, stack []uint64) {
	sizesGet(mod, stack, instance(ctx).Environ())
}

// environGet is WASI's environ_get(environ, environ_buf).
func environGet(ctx context.Context, mod api.Module, stack []uint64) {
	listGet(mod, stack, instance(ctx).Environ())
}
