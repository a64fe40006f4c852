// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package wasmtest assembles tiny WebAssembly modules by hand, for the
// tests of the executor's host side (host functions that need a guest's
// memory or a guest that calls them, and modules that differ only in their
// contents): no toolchain, no libc start-up between a test and the call.
// It is for tests only; guests built from source are executor/testmodule's.
package wasmtest

import (
	"context"
	"errors"
	"testing"

	"github.com/shoenig/test/must"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

const wasmI32 = 0x7f

// Import is a function a tiny module imports.
type Import struct {
	Module, Name string
	Params       int // i32 each
	Results      int // i32 each
}

// Module assembles a module with one page of memory, exported as
// "memory", that imports imports and exports, for each of them, a function
// without parameters or results named after it which calls it (each
// parameter 3) and drops its results.
func Module(imports ...Import) []byte {
	var types, imps, funcs, exports, code [][]byte
	for i, im := range imports {
		params, results := make([]byte, im.Params), make([]byte, im.Results)
		for j := range params {
			params[j] = wasmI32
		}
		for j := range results {
			results[j] = wasmI32
		}
		types = append(types, cat([]byte{0x60}, byteVec(params), byteVec(results)))
		imps = append(imps, cat(name(im.Module), name(im.Name), []byte{0x00}, leb(uint32(i))))
	}
	exportType := uint32(len(types))
	types = append(types, []byte{0x60, 0x00, 0x00})
	for i, im := range imports {
		funcs = append(funcs, leb(exportType))
		exports = append(exports, cat(name(im.Name), []byte{0x00}, leb(uint32(len(imports)+i))))
		body := []byte{0x00} // no locals
		for range im.Params {
			body = append(body, 0x41, 0x03) // i32.const 3
		}
		body = append(append(body, 0x10), leb(uint32(i))...) // call
		for range im.Results {
			body = append(body, 0x1a) // drop
		}
		body = append(body, 0x0b) // end
		code = append(code, cat(leb(uint32(len(body))), body))
	}
	exports = append(exports, cat(name("memory"), []byte{0x02, 0x00}))
	return cat([]byte("\x00asm\x01\x00\x00\x00"),
		section(1, vec(types...)),
		section(2, vec(imps...)),
		section(3, vec(funcs...)),
		section(5, vec([]byte{0x00, 0x01})), // one memory, at least one page
		section(7, vec(exports...)),
		section(10, vec(code...)),
	)
}

// Runtime is an interpreter runtime closed when the test ends.
func Runtime(t testing.TB) wazero.Runtime {
	t.Helper()
	r := wazero.NewRuntimeWithConfig(context.Background(), wazero.NewRuntimeConfigInterpreter())
	t.Cleanup(func() { _ = r.Close(context.Background()) })
	return r
}

// Instantiate instantiates Module(imports...) in r, anonymous and without
// start functions.
func Instantiate(t testing.TB, ctx context.Context, r wazero.Runtime, imports ...Import) api.Module {
	t.Helper()
	mod, err := r.InstantiateWithConfig(ctx, Module(imports...), wazero.NewModuleConfig().WithName("").WithStartFunctions())
	must.NoError(t, err)
	return mod
}

func cat(parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = append(b, p...)
	}
	return b
}

func leb(n uint32) []byte {
	var b []byte
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// vec is a vector of items, each already encoded.
func vec(items ...[]byte) []byte { return cat(leb(uint32(len(items))), cat(items...)) }

// byteVec is a vector of bytes (value types, say).
func byteVec(b []byte) []byte { return cat(leb(uint32(len(b))), b) }

func name(s string) []byte { return cat(leb(uint32(len(s))), []byte(s)) }

func section(id byte, body []byte) []byte { return cat([]byte{id}, leb(uint32(len(body))), body) }

// Exit runs call, which may end a guest as wazero's host functions do, by
// a panic of a *sys.ExitError, and returns that exit, or nil; any other
// panic goes on.
func Exit(call func()) (exit *sys.ExitError) {
	defer func() {
		if p := recover(); p != nil {
			if err, ok := p.(error); !ok || !errors.As(err, &exit) {
				panic(p)
			}
		}
	}()
	call()
	return nil
}
