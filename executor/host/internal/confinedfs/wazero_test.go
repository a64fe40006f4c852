// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package confinedfs

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/shoenig/test/must"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// WASI preview1 numbers used by the guest below (from the snapshot-01
// witx), spelled out because wazero keeps its constants internal.
const (
	wasiErrnoSuccess = 0
	wasiErrnoLoop    = 32
	wasiErrnoNoent   = 44
	wasiErrnoPerm    = 63

	wasiLookupSymlinkFollow = 1
	wasiOflagCreat          = 1
	wasiRightFdRead         = 1 << 1
	wasiRightFdWrite        = 1 << 6

	// Guest memory layout used by the module.
	memResultFd = 0  // path_open writes the new fd here
	memIovec    = 8  // fd_read's single iovec {buf, len}
	memNread    = 16 // fd_read writes the count here
	memPath     = 1024
	memBuf      = 2048
)

// guestModule returns a tiny module, hand-encoded so the test needs no
// wat2wasm. In WAT it is:
//
//	(module
//	  (import "wasi_snapshot_preview1" "path_open"
//	    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
//	  (import "wasi_snapshot_preview1" "fd_read"
//	    (func $fd_read (param i32 i32 i32 i32) (result i32)))
//	  (import "wasi_snapshot_preview1" "fd_close"
//	    (func $fd_close (param i32) (result i32)))
//	  (memory (export "memory") 1)
//	  ;; path_open relative to the first pre-open (fd 3); the new fd goes to 0.
//	  (func (export "open")
//	    (param $path i32) (param $len i32) (param $dirflags i32)
//	    (param $oflags i32) (param $rights i64) (param $fdflags i32) (result i32)
//	    (call $path_open (i32.const 3) (local.get $dirflags)
//	      (local.get $path) (local.get $len) (local.get $oflags)
//	      (local.get $rights) (i64.const 0) (local.get $fdflags) (i32.const 0)))
//	  ;; fd_read into [buf, buf+len) with the iovec at 8; the count goes to 16.
//	  (func (export "read") (param $fd i32) (param $buf i32) (param $len i32) (result i32)
//	    (i32.store (i32.const 8) (local.get $buf))
//	    (i32.store (i32.const 12) (local.get $len))
//	    (call $fd_read (local.get $fd) (i32.const 8) (i32.const 1) (i32.const 16)))
//	  (func (export "close") (param $fd i32) (result i32)
//	    (call $fd_close (local.get $fd))))
func guestModule() []byte {
	const (
		i32 = 0x7f
		i64 = 0x7e

		opLocalGet = 0x20
		opI32Store = 0x36
		opI32Const = 0x41
		opI64Const = 0x42
		opCall     = 0x10
		opEnd      = 0x0b
	)
	funcType := func(params []byte, results ...byte) []byte {
		return cat([]byte{0x60}, uleb(uint64(len(params))), params, uleb(uint64(len(results))), results)
	}
	imp := func(field string, typeIdx byte) []byte {
		return cat(name("wasi_snapshot_preview1"), name(field), []byte{0x00, typeIdx})
	}
	export := func(n string, kind, idx byte) []byte {
		return cat(name(n), []byte{kind, idx})
	}
	body := func(instrs ...[]byte) []byte {
		code := cat(append([][]byte{{0x00}}, append(instrs, []byte{opEnd})...)...) // no locals
		return cat(uleb(uint64(len(code))), code)
	}
	localGet := func(i byte) []byte { return []byte{opLocalGet, i} }
	i32Const := func(v int64) []byte { return cat([]byte{opI32Const}, sleb(v)) }
	i32Store := []byte{opI32Store, 2, 0} // align 2^2, offset 0
	call := func(i byte) []byte { return []byte{opCall, i} }

	types := vec(
		funcType([]byte{i32, i32, i32, i32, i32, i64, i64, i32, i32}, i32), // 0: path_open
		funcType([]byte{i32, i32, i32, i32}, i32),                          // 1: fd_read
		funcType([]byte{i32}, i32),                                         // 2: fd_close, close
		funcType([]byte{i32, i32, i32, i32, i64, i32}, i32),                // 3: open
		funcType([]byte{i32, i32, i32}, i32),                               // 4: read
	)
	imports := vec(imp("path_open", 0), imp("fd_read", 1), imp("fd_close", 2))
	funcs := vec([]byte{3}, []byte{4}, []byte{2}) // functions 3, 4, 5
	memory := vec([]byte{0x00, 0x01})             // min 1 page, no max
	exports := vec(
		export("memory", 0x02, 0),
		export("open", 0x00, 3),
		export("read", 0x00, 4),
		export("close", 0x00, 5),
	)
	code := vec(
		body(i32Const(3), localGet(2), localGet(0), localGet(1), localGet(3),
			localGet(4), []byte{opI64Const, 0x00}, localGet(5), i32Const(memResultFd), call(0)),
		body(i32Const(memIovec), localGet(1), i32Store,
			i32Const(memIovec+4), localGet(2), i32Store,
			localGet(0), i32Const(memIovec), i32Const(1), i32Const(memNread), call(1)),
		body(localGet(0), call(2)),
	)
	return cat(
		[]byte{0x00, 'a', 's', 'm', 0x01, 0x00, 0x00, 0x00},
		section(1, types), section(2, imports), section(3, funcs),
		section(5, memory), section(7, exports), section(10, code),
	)
}

func cat(parts ...[]byte) []byte {
	var out []byte
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func uleb(v uint64) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}

func sleb(v int64) []byte {
	var out []byte
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && b&0x40 == 0) || (v == -1 && b&0x40 != 0) {
			return append(out, b)
		}
		out = append(out, b|0x80)
	}
}

func name(s string) []byte { return cat(uleb(uint64(len(s))), []byte(s)) }

func vec(items ...[]byte) []byte { return cat(uleb(uint64(len(items))), cat(items...)) }

func section(id byte, content []byte) []byte {
	return cat([]byte{id}, uleb(uint64(len(content))), content)
}

// guest drives the module above.
type guest struct {
	t   *testing.T
	ctx context.Context
	mod api.Module
}

func (g *guest) call(fn string, params ...uint64) uint64 {
	g.t.Helper()
	res, err := g.mod.ExportedFunction(fn).Call(g.ctx, params...)
	must.NoError(g.t, err)
	return res[0]
}

// open runs path_open and returns the WASI errno and, on success, the fd.
func (g *guest) open(p string, dirflags, oflags, rights uint64) (errno uint64, fd uint32) {
	g.t.Helper()
	must.True(g.t, g.mod.Memory().Write(memPath, []byte(p)))
	errno = g.call("open", memPath, uint64(len(p)), dirflags, oflags, rights, 0)
	if errno == wasiErrnoSuccess {
		var ok bool
		fd, ok = g.mod.Memory().ReadUint32Le(memResultFd)
		must.True(g.t, ok)
	}
	return errno, fd
}

func (g *guest) readAll(fd uint32) string {
	g.t.Helper()
	var out []byte
	for {
		must.EqOp(g.t, wasiErrnoSuccess, g.call("read", uint64(fd), memBuf, 5))
		n, ok := g.mod.Memory().ReadUint32Le(memNread)
		must.True(g.t, ok)
		if n == 0 {
			must.EqOp(g.t, wasiErrnoSuccess, g.call("close", uint64(fd)))
			return string(out)
		}
		b, ok := g.mod.Memory().Read(memBuf, n)
		must.True(g.t, ok)
		out = append(out, b...)
	}
}

func TestWazero_MountPlugsIn(t *testing.T) {
	fx := newFixture(t, false)
	requireErrno(t, 0, fx.fs.Symlink("../outside/created", "dangle"))

	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	t.Cleanup(func() { _ = r.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, r)

	fsConfig := wazero.NewFSConfig().(sysfs.FSConfig).WithSysFSMount(fx.fs, "/local")
	mod, err := r.InstantiateWithConfig(ctx, guestModule(), wazero.NewModuleConfig().WithFSConfig(fsConfig))
	must.NoError(t, err)
	g := &guest{t: t, ctx: ctx, mod: mod}

	const follow = wasiLookupSymlinkFollow
	cases := []struct {
		name      string
		path      string
		dirflags  uint64
		oflags    uint64
		rights    uint64
		wantErrno uint64
		wantText  string
	}{
		{name: "plain file", path: "a.txt", dirflags: follow, rights: wasiRightFdRead, wantText: aText},
		{name: "nested file", path: "sub/b.txt", dirflags: follow, rights: wasiRightFdRead, wantText: bText},
		{name: "in-mount symlink", path: "inner", dirflags: follow, rights: wasiRightFdRead, wantText: aText},
		{name: "in-mount dir symlink", path: "sublink/up", dirflags: follow, rights: wasiRightFdRead, wantText: aText},
		{name: "symlink without follow", path: "inner", rights: wasiRightFdRead, wantErrno: wasiErrnoLoop},
		{name: "relative escape link", path: "rel", dirflags: follow, rights: wasiRightFdRead, wantErrno: wasiErrnoPerm},
		{name: "absolute escape link", path: "abs", dirflags: follow, rights: wasiRightFdRead, wantErrno: wasiErrnoPerm},
		{name: "directory escape link", path: "dirlink/secret.txt", dirflags: follow, rights: wasiRightFdRead, wantErrno: wasiErrnoPerm},
		{name: "dot-dot", path: "../outside/secret.txt", dirflags: follow, rights: wasiRightFdRead, wantErrno: wasiErrnoPerm},
		{name: "create through escape link", path: "dangle", dirflags: follow, oflags: wasiOflagCreat, rights: wasiRightFdWrite, wantErrno: wasiErrnoPerm},
		{name: "missing", path: "missing", dirflags: follow, rights: wasiRightFdRead, wantErrno: wasiErrnoNoent},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g.t = t
			errno, fd := g.open(tc.path, tc.dirflags, tc.oflags, tc.rights)
			must.EqOp(t, tc.wantErrno, errno)
			if errno == wasiErrnoSuccess {
				must.EqOp(t, tc.wantText, g.readAll(fd))
			}
		})
	}

	must.FileNotExists(t, filepath.Join(fx.outside, "created"))
	fx.requireSecretUntouched(t)
}
