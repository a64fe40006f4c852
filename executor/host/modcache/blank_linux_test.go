// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package modcache

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

// TestBlankLoadsACheckedEntry: a blank runtime, with what its holder
// added to it, gets the module of a Compile whose entry is in the cache
// and checked, for the engine and kind of code it stands for, through its
// descriptor and without writing anything; for another kind of code, a
// module not in the cache, or an entry that does not match its record,
// the Compile makes its own runtime and leaves the blank to its holder.
func TestBlankLoadsACheckedEntry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, err := os.ReadFile(testmodule.Path(t, "probe"))
	must.NoError(t, err)
	key := Key{Engine: executor.EngineCompiler, Digest: digestOf(b)}
	dir := t.TempDir()
	cache := Cache{Dir: dir, Logger: hclog.NewNullLogger()}
	comp, err := cache.Compile(ctx, compilerConfig(false), key, "probe.wasm", source(b))
	must.NoError(t, err)
	must.False(t, comp.FromBlank)
	want := slices.Sorted(maps.Keys(comp.Module.ExportedFunctions()))
	must.NoError(t, comp.Runtime.Close(ctx))

	newBlank := func() *Blank {
		t.Helper()
		blank, err := NewBlank(ctx, compilerConfig(false), executor.EngineCompiler, false)
		must.NoError(t, err)
		_, err = blank.Runtime().NewHostModuleBuilder("env").NewFunctionBuilder().WithFunc(func() {}).Export("f").Instantiate(ctx)
		must.NoError(t, err)
		return blank
	}
	// Another kind of code, in the cache too, is not the blank's.
	other := key
	other.Interruptible = true
	comp, err = cache.Compile(ctx, compilerConfig(true), other, "probe.wasm", source(b))
	must.NoError(t, err)
	must.NoError(t, comp.Runtime.Close(ctx))
	blank := newBlank()
	cache.Blank = blank
	comp, err = cache.Compile(ctx, compilerConfig(true), other, "probe.wasm", source(b))
	must.NoError(t, err)
	must.True(t, comp.Hit)
	must.False(t, comp.FromBlank)
	must.NoError(t, comp.Runtime.Close(ctx))
	before := filesUnder(t, dir)
	// Nor a directory without wazero's entries directory.
	_, ok := blank.take(t.TempDir())
	must.False(t, ok)

	comp, err = cache.Compile(ctx, compilerConfig(false), key, "probe.wasm", source(b))
	must.NoError(t, err)
	must.True(t, comp.FromBlank)
	must.True(t, comp.Hit)
	must.Eq(t, want, slices.Sorted(maps.Keys(comp.Module.ExportedFunctions())))
	must.NotNil(t, comp.Runtime.Module("env"), must.Sprint("what the holder added to the blank is in the program's runtime"))
	byFD := fmt.Sprintf("/proc/self/fd/%d", blank.fd)
	entryDir := filepath.Join(dir, "wazero-"+WazeroVersion()+"-"+form, key.Engine, "uninterruptible", key.Digest)
	must.True(t, names(byFD, entryDir), must.Sprint("the blank's descriptor names the module's entry directory"))
	// Taken: its holder's Close leaves it to the program, whose Close
	// releases it, descriptor included.
	blank.Close()
	must.NotNil(t, comp.Runtime.Module("env"))
	must.NoError(t, comp.Runtime.Close(ctx))
	must.Nil(t, comp.Runtime.Module("env"))
	must.False(t, names(byFD, entryDir), must.Sprint("the blank's descriptor is still open"))
	blank.Close()
	_, ok = blank.take(entryDir)
	must.False(t, ok, must.Sprint("a released blank was taken again"))
	must.Eq(t, before, filesUnder(t, dir), must.Sprint("loading into the blank changed the cache"))

	// A module not in the cache is compiled in a runtime of its own.
	fresh := Cache{Dir: t.TempDir(), Logger: hclog.NewNullLogger(), Blank: newBlank()}
	comp, err = fresh.Compile(ctx, compilerConfig(false), key, "probe.wasm", source(b))
	must.NoError(t, err)
	must.False(t, comp.FromBlank)
	must.False(t, comp.Hit)
	must.NoError(t, comp.Runtime.Close(ctx))
	fresh.Blank.Close()

	// An entry that does not match its record is never read through it.
	for path := range before {
		if filepath.Ext(path) != ".sha256" && filepath.Ext(path) != ".lock" {
			must.NoError(t, os.WriteFile(filepath.Join(dir, path), []byte("WAZEVO altered"), 0o644))
		}
	}
	cache.Blank = newBlank()
	comp, err = cache.Compile(ctx, compilerConfig(false), key, "probe.wasm", source(b))
	must.NoError(t, err)
	must.False(t, comp.FromBlank)
	must.StrContains(t, comp.Repaired, "does not match")
	must.NoError(t, comp.Runtime.Close(ctx))
	cache.Blank.Close()
}

// names says whether path names the directory dir.
func names(path, dir string) bool {
	a, err := os.Stat(path)
	return err == nil && sameAs(a, dir)
}

// filesUnder maps each regular file under dir (its path relative to dir)
// to its content.
func filesUnder(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	must.NoError(t, filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		files[rel] = string(b)
		return err
	}))
	return files
}
