// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"context"

	"github.com/tetratelabs/wazero/api"
)

// The guest's environment is served by the driver's environ_get and
// environ_sizes_get, from the instance's own list (Instance.Environ), not
// by wazero's from the module configuration: wazero's WithEnv copies the
// configuration and all the variables set so far on every call, so a
// task's fifty NOMAD_* variables plus an HTTP request's twenty cost
// thousands of map inserts per instance (a third of the CPU of a small
// HTTP handler's instance). Without an instance, the environment is
// empty.

// environOf is the environment of the instance ctx carries.
func environOf(ctx context.Context) []string {
	if in, ok := instanceOf(ctx); ok {
		return in.Environ()
	}
	return nil
}

// environSize is what environ_sizes_get reports: the bytes of all entries,
// each with its NUL.
func environSize(env []string) uint32 {
	n := 0
	for _, kv := range env {
		n += len(kv) + 1
	}
	return uint32(n)
}

// environSizesGet is WASI's environ_sizes_get(environc, environ_buf_size).
func environSizesGet(ctx context.Context, mod api.Module, stack []uint64) {
	env := environOf(ctx)
	mem := mod.Memory()
	if !mem.WriteUint32Le(uint32(stack[0]), uint32(len(env))) || !mem.WriteUint32Le(uint32(stack[1]), environSize(env)) {
		stack[0] = errnoFault
		return
	}
	stack[0] = errnoSuccess
}

// environGet is WASI's environ_get(environ, environ_buf): a pointer per
// entry at environ, the NUL-terminated entries at environ_buf.
func environGet(ctx context.Context, mod api.Module, stack []uint64) {
	env := environOf(ctx)
	ptrs, buf := uint32(stack[0]), uint32(stack[1])
	mem := mod.Memory()
	offsets, ok := mem.Read(ptrs, uint32(len(env))*4)
	if !ok {
		stack[0] = errnoFault
		return
	}
	bytes, ok := mem.Read(buf, environSize(env))
	if !ok {
		stack[0] = errnoFault
		return
	}
	at := uint32(0)
	for i, kv := range env {
		le.PutUint32(offsets[i*4:], buf+at)
		copy(bytes[at:], kv)
		at += uint32(len(kv))
		bytes[at] = 0
		at++
	}
	stack[0] = errnoSuccess
}
