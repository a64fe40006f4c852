// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"
	"github.com/tetratelabs/wazero"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

// TestCompileErrorClass: a compile failure is blamed on the module only if
// the module itself is at fault; running out of memory or disk, or a
// compiler failing on a valid module, is the node's.
func TestCompileErrorClass(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	valid, err := os.ReadFile(testmodule.Path(t, "probe"))
	must.NoError(t, err)
	malformed := []byte("\x00asm\x01\x00\x00\x00\x01\x03\xff\xff\xff")

	err = compileError(ctx, "m.wasm", valid, fmt.Errorf("mmap: %w", syscall.ENOMEM))
	must.Eq(t, executor.ClassNode, executor.ClassOf(err))
	must.ErrorContains(t, err, "for want of resources on this node")

	err = compileError(ctx, "m.wasm", valid, errors.New("compilationcache: checksum mismatch"))
	must.Eq(t, executor.ClassNode, executor.ClassOf(err))
	must.ErrorContains(t, err, "module m.wasm is valid, but this node failed to compile it")

	err = compileError(ctx, "m.wasm", malformed, errors.New("section 1: unexpected EOF"))
	must.Eq(t, executor.ClassJob, executor.ClassOf(err))
	must.ErrorContains(t, err, "module m.wasm is malformed or uses WebAssembly features this node does not support")
}

// TestCacheErrorClass: a cache directory that cannot be used is the
// operator's to fix, unless the disk is full.
func TestCacheErrorClass(t *testing.T) {
	t.Parallel()
	must.Eq(t, executor.ClassOperator, executor.ClassOf(cacheError(syscall.EACCES)))
	must.Eq(t, executor.ClassNode, executor.ClassOf(cacheError(fmt.Errorf("write: %w", syscall.ENOSPC))))
}

// TestReadOnlyCache: an executor that runs as a task's user loads entries
// that verify and compiles anything else in memory, writing nothing, not
// even over a damaged entry; a privileged executor's entries are readable
// by all.
func TestReadOnlyCache(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := os.ReadFile(testmodule.Path(t, "probe"))
	must.NoError(t, err)
	digest := moduleDigest(b)
	ro := ModuleCache{Dir: dir, Logger: hclog.NewNullLogger(), ReadOnly: true, Memory: wazero.NewCompilationCache()}
	rw := ModuleCache{Dir: dir, Logger: hclog.NewNullLogger()}
	compile := func(c ModuleCache) *compiled {
		t.Helper()
		comp, err := c.compile(ctx, executor.EngineCompiler, false, digest, "probe.wasm", b)
		must.NoError(t, err)
		must.NoError(t, comp.runtime.Close(ctx))
		return comp
	}
	files := func() map[string]string {
		t.Helper()
		out := map[string]string{}
		must.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			must.NoError(t, err)
			if p == dir {
				return nil
			}
			fi, err := d.Info()
			must.NoError(t, err)
			out[p] = fi.Mode().String()
			if d.Type().IsRegular() {
				c, err := os.ReadFile(p)
				must.NoError(t, err)
				out[p] += " " + moduleDigest(c)
			}
			return nil
		}))
		return out
	}

	// Nothing in the cache: compiled in memory, nothing written.
	must.False(t, compile(ro).cacheHit)
	must.MapEmpty(t, files())

	// Compiled by a privileged executor: recorded, readable by all.
	must.False(t, compile(rw).cacheHit)
	written := files()
	must.MapNotEmpty(t, written)
	var entry string
	for p, mode := range written {
		switch {
		case strings.HasSuffix(p, ".lock"):
		case strings.HasPrefix(mode, "d"):
			must.StrHasPrefix(t, "drwxr-xr-x", mode, must.Sprint(p))
		default:
			must.StrHasPrefix(t, "-rw-r--r--", mode, must.Sprint(p))
			if !strings.HasSuffix(p, ".sha256") {
				entry = p
			}
		}
	}
	must.NotEq(t, "", entry)

	// Read-only: a hit, and nothing changes.
	must.True(t, compile(ro).cacheHit)
	must.Eq(t, written, files())

	// A damaged entry is not run, and not repaired by a task's user: left
	// for a privileged executor.
	must.NoError(t, os.WriteFile(entry, []byte("not a compiled module"), 0o644))
	damaged := files()
	must.False(t, compile(ro).cacheHit)
	must.Eq(t, damaged, files())
	must.False(t, compile(rw).cacheHit) // replaced
	must.True(t, compile(ro).cacheHit)

	// An entry written before entries were shared (wazero's 0600) is shared
	// by the next privileged load.
	for p, mode := range files() {
		if !strings.HasPrefix(mode, "d") && !strings.HasSuffix(p, ".lock") && !strings.HasSuffix(p, ".sha256") {
			must.NoError(t, os.Chmod(p, 0o600))
		}
	}
	must.True(t, compile(rw).cacheHit)
	for p, mode := range files() {
		must.StrNotContains(t, mode, "-rw-------", must.Sprint(p))
	}
}

// TestCachedOnlyCompilesNothing: a spare's cache (CachedOnly) loads what a
// task compiled into the cache and compiles nothing else: compiling is
// paid for inside a task's cgroup, and the spare is in none.
func TestCachedOnlyCompilesNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, err := os.ReadFile(testmodule.Path(t, "probe"))
	must.NoError(t, err)
	digest := moduleDigest(b)
	dir := t.TempDir()
	spare := ModuleCache{Dir: dir, Logger: hclog.NewNullLogger(), CachedOnly: true}
	_, err = spare.compile(ctx, executor.EngineCompiler, false, digest, "probe.wasm", b)
	must.ErrorIs(t, err, errNotCached)
	_, err = spare.compile(ctx, executor.EngineInterpreter, false, digest, "probe.wasm", b)
	must.ErrorIs(t, err, errNotCached)
	entries, err := os.ReadDir(dir)
	must.NoError(t, err)
	must.SliceEmpty(t, entries, must.Sprint("a CachedOnly cache wrote to the cache"))

	task := ModuleCache{Dir: dir, Logger: hclog.NewNullLogger()}
	comp, err := task.compile(ctx, executor.EngineCompiler, false, digest, "probe.wasm", b)
	must.NoError(t, err)
	_ = comp.runtime.Close(ctx)
	comp, err = spare.compile(ctx, executor.EngineCompiler, false, digest, "probe.wasm", b)
	must.NoError(t, err)
	must.True(t, comp.cacheHit)
	_ = comp.runtime.Close(ctx)
	// The other kind of code is another entry, which no task compiled.
	_, err = spare.compile(ctx, executor.EngineCompiler, true, digest, "probe.wasm", b)
	must.ErrorIs(t, err, errNotCached)
}
