// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package modcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"
	"github.com/tetratelabs/wazero"
	"golang.org/x/mod/modfile"

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
	var c Cache

	err = c.compileError(ctx, "m.wasm", valid, fmt.Errorf("mmap: %w", syscall.ENOMEM))
	must.Eq(t, executor.ClassNode, executor.ClassOf(err))
	must.ErrorContains(t, err, "for want of resources on this node")

	err = c.compileError(ctx, "m.wasm", valid, errors.New("compilationcache: checksum mismatch"))
	must.Eq(t, executor.ClassNode, executor.ClassOf(err))
	must.ErrorContains(t, err, "module m.wasm is valid, but this node failed to compile it")

	err = c.compileError(ctx, "m.wasm", malformed, errors.New("section 1: unexpected EOF"))
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
	digest := digestOf(b)
	ro := Cache{Dir: dir, Logger: hclog.NewNullLogger(), ReadOnly: true, Memory: wazero.NewCompilationCache()}
	rw := Cache{Dir: dir, Logger: hclog.NewNullLogger()}
	compile := func(c Cache) *Compiled {
		t.Helper()
		comp, err := c.Compile(ctx, compilerConfig(false), Key{Engine: executor.EngineCompiler, Digest: digest}, "probe.wasm", source(b))
		must.NoError(t, err)
		must.NoError(t, comp.Runtime.Close(ctx))
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
				out[p] += " " + digestOf(c)
			}
			return nil
		}))
		return out
	}

	// Nothing in the cache: compiled in memory, nothing written.
	must.False(t, compile(ro).Hit)
	must.MapEmpty(t, files())

	// Compiled by a privileged executor: recorded, readable by all.
	must.False(t, compile(rw).Hit)
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
	must.True(t, compile(ro).Hit)
	must.Eq(t, written, files())

	// A damaged entry is not run, and not repaired by a task's user: left
	// for a privileged executor.
	must.NoError(t, os.WriteFile(entry, []byte("not a compiled module"), 0o644))
	damaged := files()
	must.False(t, compile(ro).Hit)
	must.Eq(t, damaged, files())
	must.False(t, compile(rw).Hit) // replaced
	must.True(t, compile(ro).Hit)

	// An entry written before entries were shared (wazero's 0600) is shared
	// by the next privileged load.
	for p, mode := range files() {
		if !strings.HasPrefix(mode, "d") && !strings.HasSuffix(p, ".lock") && !strings.HasSuffix(p, ".sha256") {
			must.NoError(t, os.Chmod(p, 0o600))
		}
	}
	must.True(t, compile(rw).Hit)
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
	digest := digestOf(b)
	dir := t.TempDir()
	spare := Cache{Dir: dir, Logger: hclog.NewNullLogger(), CachedOnly: true}
	compiler := Key{Engine: executor.EngineCompiler, Digest: digest}
	_, err = spare.Compile(ctx, compilerConfig(false), compiler, "probe.wasm", source(b))
	must.ErrorIs(t, err, ErrNotCached)
	_, err = spare.Compile(ctx, wazero.NewRuntimeConfigInterpreter(), Key{Engine: executor.EngineInterpreter, Digest: digest}, "probe.wasm", source(b))
	must.ErrorIs(t, err, ErrNotCached)
	entries, err := os.ReadDir(dir)
	must.NoError(t, err)
	must.SliceEmpty(t, entries, must.Sprint("a CachedOnly cache wrote to the cache"))

	task := Cache{Dir: dir, Logger: hclog.NewNullLogger()}
	comp, err := task.Compile(ctx, compilerConfig(false), compiler, "probe.wasm", source(b))
	must.NoError(t, err)
	_ = comp.Runtime.Close(ctx)
	comp, err = spare.Compile(ctx, compilerConfig(false), compiler, "probe.wasm", source(b))
	must.NoError(t, err)
	must.True(t, comp.Hit)
	_ = comp.Runtime.Close(ctx)
	// The other kind of code is another entry, which no task compiled.
	compiler.Interruptible = true
	_, err = spare.Compile(ctx, compilerConfig(true), compiler, "probe.wasm", source(b))
	must.ErrorIs(t, err, ErrNotCached)
}

// TestAnotherModulesEntryIsNotLoaded: an entry replaced by another
// module's valid one (which wazero's CRC32 does not catch) is refused by
// every kind of cache, which checks it while the module's source is made,
// before wazero reads it: a spare's finds nothing cached and leaves the
// entry as it is (wazero, given an entry it takes for stale, would compile
// the module and write it, in no task's cgroup and without the module's
// lock), a task user's compiles in memory, a privileged executor's
// compiles it again. Each returns the module's own code.
func TestAnotherModulesEntryIsNotLoaded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	rw := Cache{Dir: dir, Logger: hclog.NewNullLogger()}
	compile := func(c Cache, name string) (*Compiled, string, error) {
		t.Helper()
		b, err := os.ReadFile(testmodule.Path(t, name))
		must.NoError(t, err)
		comp, err := c.Compile(ctx, compilerConfig(false), Key{Engine: executor.EngineCompiler, Digest: digestOf(b)}, name+".wasm", source(b))
		return comp, digestOf(b), err
	}
	entryOf := func(digest string) string {
		t.Helper()
		var found string
		must.NoError(t, filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() && strings.Contains(p, digest+string(filepath.Separator)) {
				found = p
			}
			return err
		}))
		must.NotEq(t, "", found, must.Sprintf("no entry of %s", digest))
		return found
	}
	exports := func(comp *Compiled) []string {
		defer func() { _ = comp.Runtime.Close(ctx) }()
		return slices.Sorted(maps.Keys(comp.Module.ExportedFunctions()))
	}
	probe, probeDigest, err := compile(rw, "probe")
	must.NoError(t, err)
	want := exports(probe)
	reactor, reactorDigest, err := compile(rw, "reactor")
	must.NoError(t, err)
	must.NotEq(t, want, exports(reactor))
	other, err := os.ReadFile(entryOf(reactorDigest))
	must.NoError(t, err)
	swap := func() { must.NoError(t, os.WriteFile(entryOf(probeDigest), other, 0o644)) }

	swap()
	_, _, err = compile(Cache{Dir: dir, Logger: hclog.NewNullLogger(), CachedOnly: true}, "probe")
	must.ErrorIs(t, err, ErrNotCached)
	// An entry that wazero would take for stale (another version's): left
	// unread, so not compiled and rewritten.
	stale := slices.Clone(other)
	must.Eq(t, "WAZEVO", string(stale[:6]), must.Sprint("wazero's entry header: magic, version length, version"))
	stale[7] ^= 1 // the version's first byte
	must.NoError(t, os.WriteFile(entryOf(probeDigest), stale, 0o644))
	_, _, err = compile(Cache{Dir: dir, Logger: hclog.NewNullLogger(), CachedOnly: true}, "probe")
	must.ErrorIs(t, err, ErrNotCached)
	after, err := os.ReadFile(entryOf(probeDigest))
	must.NoError(t, err)
	must.Eq(t, stale, after, must.Sprint("a spare's cache rewrote an entry that does not match its record"))
	swap()
	comp, _, err := compile(Cache{Dir: dir, Logger: hclog.NewNullLogger(), ReadOnly: true}, "probe")
	must.NoError(t, err)
	must.False(t, comp.Hit)
	must.Eq(t, want, exports(comp))
	comp, _, err = compile(rw, "probe")
	must.NoError(t, err)
	must.False(t, comp.Hit)
	must.StrContains(t, comp.Repaired, "does not match")
	must.Eq(t, want, exports(comp))
	comp, _, err = compile(rw, "probe")
	must.NoError(t, err)
	must.True(t, comp.Hit, must.Sprint("the repaired entry"))
	must.Eq(t, want, exports(comp))
}

// source is a Compile's source of b.
func source(b []byte) func() []byte { return func() []byte { return b } }

// compilerConfig is a configuration of wazero's compiler, with the
// per-loop check or not, as a key of the compiler's names it.
func compilerConfig(interruptible bool) wazero.RuntimeConfig {
	return wazero.NewRuntimeConfigCompiler().WithCloseOnContextDone(interruptible)
}

// digestOf is the lowercase hex SHA-256 of b.
func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// TestWazeroVersionMatchesGoMod: the fallback for binaries without module
// information names the wazero version that go.mod requires.
func TestWazeroVersionMatchesGoMod(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../../go.mod")
	must.NoError(t, err)
	f, err := modfile.Parse("go.mod", b, nil)
	must.NoError(t, err)
	for _, r := range f.Require {
		if r.Mod.Path == "github.com/tetratelabs/wazero" {
			must.Eq(t, r.Mod.Version, wazeroModuleVersion)
			return
		}
	}
	t.Fatal("wazero not in go.mod")
}

// TestWazeroVersionFromBuildInfo: the version comes from what the toolchain
// recorded, a replacement's version when wazero is replaced, and the
// fallback only without build information.
func TestWazeroVersionFromBuildInfo(t *testing.T) {
	t.Parallel()
	dep := func(v string, r *debug.Module) *debug.Module {
		return &debug.Module{Path: "github.com/tetratelabs/wazero", Version: v, Replace: r}
	}
	must.Eq(t, "v9.8.7", wazeroVersionFrom(&debug.BuildInfo{Deps: []*debug.Module{{Path: "x"}, dep("v9.8.7", nil)}}))
	must.Eq(t, "v1.0.0-fork", wazeroVersionFrom(&debug.BuildInfo{Deps: []*debug.Module{dep("v9.8.7", &debug.Module{Version: "v1.0.0-fork"})}}))
	must.Eq(t, wazeroModuleVersion, wazeroVersionFrom(nil))
	must.Eq(t, wazeroModuleVersion, wazeroVersionFrom(&debug.BuildInfo{}))
}
