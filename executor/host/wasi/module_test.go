// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"bytes"
	"context"
	"maps"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/shoenig/test/must"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/internal/wasmtest"
)

// TestInstantiateExportsPreview1: the host module is wasi_snapshot_preview1
// whole: the 46 functions of the specification, each with its type (and
// the extensions it adds, which are not this test's).
func TestInstantiateExportsPreview1(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	defs := h.r.Module(ModuleName).ExportedFunctionDefinitions()
	must.Eq(t, 46, len(specSignatures))
	var extensions []string
	for name, def := range defs {
		want, ok := specSignatures[name]
		if !ok {
			extensions = append(extensions, name)
			continue
		}
		must.Eq(t, want.params, valueTypes(def.ParamTypes()), must.Sprintf("%s's parameters", name))
		must.Eq(t, want.results, valueTypes(def.ResultTypes()), must.Sprintf("%s's results", name))
	}
	for name := range specSignatures {
		_, ok := defs[name]
		must.True(t, ok, must.Sprintf("%s is not exported", name))
	}
	sort.Strings(extensions)
	t.Logf("beyond preview 1: %v", extensions)
}

// smallGuestImports are the WASI functions a small C module (WASI libc's
// printf and exit) imports.
var smallGuestImports = []wasmtest.Import{
	{Module: ModuleName, Name: "args_get", Params: 2, Results: 1},
	{Module: ModuleName, Name: "args_sizes_get", Params: 2, Results: 1},
	{Module: ModuleName, Name: "fd_close", Params: 1, Results: 1},
	{Module: ModuleName, Name: "fd_fdstat_get", Params: 2, Results: 1},
	{Module: ModuleName, Name: "fd_write", Params: 4, Results: 1},
	{Module: ModuleName, Name: "proc_exit", Params: 1},
	{Module: "env", Name: "other", Params: 1},
}

// importsOf compiles a module that imports imports, in r, and returns
// the functions it imports as wazero defines them.
func importsOf(t testing.TB, r wazero.Runtime, imports ...wasmtest.Import) []api.FunctionDefinition {
	t.Helper()
	compiled, err := r.CompileModule(context.Background(), wasmtest.Module(imports...))
	must.NoError(t, err)
	return compiled.ImportedFunctions()
}

// TestInstantiateForItsGuest: given a guest's imports, the host module
// has the WASI functions it imports and no other, so that the compiler
// makes code for those only; an import of another module is not one of
// them. Without imports, it has every function.
func TestInstantiateForItsGuest(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	t.Cleanup(func() { _ = r.Close(ctx) })
	m, err := Instantiate(ctx, r, false, importsOf(t, r, smallGuestImports...)...)
	must.NoError(t, err)
	got := slices.Sorted(maps.Keys(m.(api.Module).ExportedFunctionDefinitions()))
	must.Eq(t, []string{"args_get", "args_sizes_get", "fd_close", "fd_fdstat_get", "fd_write", "proc_exit"}, got)

	every := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	t.Cleanup(func() { _ = every.Close(ctx) })
	m, err = Instantiate(ctx, every, false)
	must.NoError(t, err)
	must.Eq(t, len(functions), len(m.(api.Module).ExportedFunctionDefinitions()))
}

// BenchmarkInstantiate: instantiating the host module with the compiler,
// for a small C module's imports and with every function.
func BenchmarkInstantiate(b *testing.B) {
	ctx := context.Background()
	for _, bc := range []struct {
		name    string
		imports []wasmtest.Import
	}{{"imported", smallGuestImports}, {"every", nil}} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				b.StopTimer()
				r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler())
				var imports []api.FunctionDefinition
				if bc.imports != nil {
					imports = importsOf(b, r, bc.imports...)
				}
				b.StartTimer()
				if _, err := Instantiate(ctx, r, true, imports...); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				_ = r.Close(ctx)
				b.StartTimer()
			}
		})
	}
}

func valueTypes(ts []api.ValueType) string {
	var b strings.Builder
	for _, vt := range ts {
		switch vt {
		case api.ValueTypeI32:
			b.WriteByte('i')
		case api.ValueTypeI64:
			b.WriteByte('I')
		default:
			b.WriteString(api.ValueTypeName(vt))
		}
	}
	return b.String()
}

// TestWithoutInstance: a call whose context carries no instance serves an
// instance without arguments, environment or descriptors but empty
// standard streams.
func TestWithoutInstance(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	ctx := t.Context()
	call := func(name string, args ...any) errno {
		res, err := h.callErr(ctx, name, args...)
		must.NoError(t, err)
		return errno(res[0])
	}
	vecs, n := h.ciovecs("discarded")
	out := h.alloc(4)
	must.Eq(t, errnoName(errnoSuccess), errnoName(call("fd_write", 1, vecs, n, out)))
	must.Eq(t, uint32(len("discarded")), h.u32(out))
	must.Eq(t, errnoName(errnoBadf), errnoName(call("fd_close", 3)))
	must.Eq(t, errnoName(errnoBadf), errnoName(call("fd_prestat_get", 3, out)))
}

// TestStdio: the standard streams are the instance's: stdin read (empty
// at its end), stdout and stderr written; each only in its direction; and
// character devices without seek or tell, which WASI libc's isatty
// takes for a terminal.
func TestStdio(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	var stdout, stderr bytes.Buffer
	h.in.table.Close()
	h.in.table = NewTable(Stdio{In: strings.NewReader("hello, stdin"), Out: &stdout, Err: &stderr})

	// Two buffers, filled in turn.
	vecs, n, bufs := h.iovecs(5, 100)
	out := h.alloc(4)
	h.expect(errnoSuccess, "fd_read", 0, vecs, n, out)
	must.Eq(t, uint32(12), h.u32(out))
	must.Eq(t, "hello", string(h.bytes(bufs[0], 5)))
	must.Eq(t, ", stdin", string(h.bytes(bufs[1], 7)))
	got, e := h.read(0, 10)
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, "", got, must.Sprint("stdin at its end"))

	written, e := h.write(1, "to ", "stdout")
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, uint32(9), written)
	must.Eq(t, "to stdout", stdout.String())
	_, e = h.write(2, "to stderr")
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, "to stderr", stderr.String())

	_, e = h.write(0, "x")
	must.Eq(t, errnoName(errnoNotcapable), errnoName(e), must.Sprint("a write to stdin"))
	_, e = h.read(1, 1)
	must.Eq(t, errnoName(errnoNotcapable), errnoName(e), must.Sprint("a read of stdout"))

	for fd := range uint32(3) {
		st := h.mustFdstat(fd)
		must.Eq(t, filetypeCharacterDevice, st.filetype)
		must.Eq(t, uint64(0), st.base&(rightFdSeek|rightFdTell), must.Sprintf("fd %d has seek or tell: not a tty to WASI libc", fd))
		fst, e := h.fdFilestat(fd)
		must.Eq(t, errnoName(errnoSuccess), errnoName(e))
		must.Eq(t, filetypeCharacterDevice, fst.filetype)
		h.expect(errnoBadf, "fd_prestat_get", fd, h.alloc(8))
	}
	must.True(t, h.mustFdstat(0).base&rightFdRead != 0)
	must.True(t, h.mustFdstat(1).base&rightFdWrite != 0)
}

// TestIovecsOutsideMemory: an iovec array, or a buffer one names, outside
// the guest's memory is EFAULT; so is a result pointer there.
func TestIovecsOutsideMemory(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	var stdout bytes.Buffer
	h.in.table.Close()
	h.in.table = NewTable(Stdio{Out: &stdout})
	out := h.alloc(4)
	h.expect(errnoFault, "fd_write", 1, pageSize-4, 1, out)
	h.expect(errnoFault, "fd_write", 1, 0, 0x2000_0000, out) // n*8 wraps to 0
	h.expect(errnoSuccess, "fd_write", 1, 0, 0, out)
	must.Eq(t, uint32(0), h.u32(out), must.Sprint("no iovec, nothing written"))
	vecs := h.alloc(iovecSize)
	must.True(t, h.mem.WriteUint32Le(vecs, pageSize-2))
	must.True(t, h.mem.WriteUint32Le(vecs+4, 4))
	h.expect(errnoFault, "fd_write", 1, vecs, 1, out)
	h.expect(errnoFault, "fd_read", 0, vecs, 1, out)
	vecs, n := h.ciovecs("x")
	h.expect(errnoFault, "fd_write", 1, vecs, n, pageSize-3)
	// A descriptor not open is EBADF before anything is read.
	h.expect(errnoBadf, "fd_write", 99, pageSize-4, 1, out)
	h.expect(errnoBadf, "fd_read", 99, pageSize-4, 1, out)
}
