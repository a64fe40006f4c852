// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package modcache is the node's cache of compiled modules: a directory
// shared by every executor on the node, in which each module is compiled
// once per engine and kind of code, verified before it is loaded, and
// written only by a privileged executor; beside it, the record of the
// modules started recently, which a spare executor prepares ahead of the
// next task.
//
// It compiles with the wazero configuration its caller gives it, keys
// entries by what its caller says that configuration is (Key), and hands
// back a runtime and its compiled module: what a program does with them
// (the WASI host, instances, interruption) is the executor's, and this
// package must not import the executor (executor/host) or call back into
// it. Its errors are classified (executor.Error).
package modcache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
)

// wazeroModuleVersion is the wazero version in go.mod, for binaries built
// without module information; TestWazeroVersionMatchesGoMod keeps it in
// step.
const wazeroModuleVersion = "v1.12.0"

// WazeroVersion is the version of wazero linked into this binary, as the Go
// toolchain recorded it. Entries are kept per version: code one release
// compiled is never loaded by another.
var WazeroVersion = sync.OnceValue(func() string {
	info, _ := debug.ReadBuildInfo()
	return wazeroVersionFrom(info)
})

func wazeroVersionFrom(info *debug.BuildInfo) string {
	if info != nil {
		for _, dep := range info.Deps {
			if dep.Path == "github.com/tetratelabs/wazero" {
				if dep.Replace != nil {
					return dep.Replace.Version
				}
				return dep.Version
			}
		}
	}
	return wazeroModuleVersion
}

// Cache is the node's on-disk cache of compiled modules, shared by every
// executor on the node.
//
// Layout (persisted; changing it orphans existing entries, which is safe but
// costs one compile per module):
//
//	<dir>/wazero-<version>-<form>/<engine>/<code>/<module sha256>/   wazero's cache for one module
//	<dir>/wazero-<version>-<form>/<engine>/<code>/<module sha256>.lock
//
// where <code> is "interruptible" for code compiled with wazero's per-loop
// check and "uninterruptible" for code without it (Key.Interruptible): a
// module can have both, and each is a hit or a compile of its own.
// (Before the two existed, entries were in <engine>/<module sha256>; those
// directories are no longer read.)
//
// Giving each module its own wazero cache directory lets the cache tell a
// hit from a compile (the directory has an entry or not), and the lock
// file makes concurrent first starts of one module on a node compile it once:
// the first holds an exclusive flock while it compiles, the others wait and
// then load what it wrote. A start that finds an entry loads it without the
// lock. wazero keys its entries by module content and CPU features, so an
// entry is never reused on a CPU it was not compiled for.
//
// Beside the compiled entries, recent/ holds a copy of each module started
// on the node within executor.RecentWindow, named by its digest, its
// modification time the time of its last start:
//
//	<dir>/recent/<module sha256>.wasm
//
// A spare executor prepares the most recent of them ahead of the next task
// (see Recent). Copies older than the window are removed.
//
// An entry that wazero cannot load (truncated, overwritten: its checksum
// does not match) is a fault of the node, not of the module: it is removed
// and the module compiled again, and Compiled.Repaired says so.
//
// Only a privileged executor writes the cache: one that has not become a
// task's user yet. One that has (ReadOnly) loads entries that verify, and
// compiles anything else in memory, through Memory when set (an executor's
// own in-memory cache, so that repeated execs of one module compile it
// once), never writing a file: the code that every task of a module runs
// is written only by root, and the entries are made readable by all (see
// recordEntry).
type Cache struct {
	Dir    string
	Logger hclog.Logger
	// ReadOnly: this executor runs as a task's user and may not write.
	ReadOnly bool
	// Memory caches, in this process, what a read-only cache compiles.
	Memory wazero.CompilationCache
	// CachedOnly: load only what a task compiled into the cache before,
	// and compile nothing (ErrNotCached). A spare prepares modules this
	// way: it runs in no task's cgroup, and compiling takes many times a
	// module's size, which only a task's memory may pay for.
	CachedOnly bool
	// Validate is what a module that failed to compile is compiled again
	// with, to tell a module at fault from a node that is: a configuration
	// that decodes and validates a module but allocates no executable
	// memory and touches no cache (the interpreter's), with the features
	// that guests get. Unset, wazero's interpreter with its defaults.
	Validate wazero.RuntimeConfig
	// Blank, when set, is a runtime made ahead that Compile loads the
	// module into, where its entry is in the cache and checked and the
	// blank stands for the Key's engine and kind of code; it is then
	// Compiled.Runtime (Compiled.FromBlank). Compile leaves it to its
	// caller to close otherwise.
	Blank *Blank
}

// form names, in the cache's directories, the form of the bytes the
// executor compiles for a module's digest: "ds2", its data section taken
// out where its instances map their data (a module with its own memory and
// at least 64 KiB of data), its data segments merged otherwise
// (executor/host/dataseg, splitData in executor/host). A change of it is a
// new directory, so that code compiled from another form of the module is
// never taken for it (wazero keys its entries by the bytes it compiled).
const form = "ds2"

// Key names a module's entry: the engine it is compiled for, whether its
// code has wazero's per-loop check, and the module's SHA-256 (lowercase
// hex). The configuration a module is compiled with must follow from its
// key alone: an entry is shared by every compile with that key.
type Key struct {
	Engine        string // executor.EngineCompiler or executor.EngineInterpreter
	Interruptible bool
	Digest        string
}

// Compiled is a module compiled by a runtime that must outlive it: closing
// Runtime releases both, and the cache's files that it holds.
type Compiled struct {
	Runtime wazero.Runtime
	Module  wazero.CompiledModule
	// Hit: loaded from the node's cache, not compiled.
	Hit bool
	// Took is the time spent compiling or loading.
	Took time.Duration
	// Repaired says what was wrong with a damaged entry that was replaced;
	// empty when none was.
	Repaired string
	// FromBlank: Runtime is Cache.Blank's, with what its holder added.
	FromBlank bool
}

// ErrNotCached: a CachedOnly cache holds no entry of the module (nor can
// it have one: the interpreter's code is not cached).
var ErrNotCached = errors.New("the module has no entry in the compiled-module cache")

// Compile compiles the module that key names (module names it in
// messages), which source makes, with a runtime of cfg, which must be the
// configuration key stands for. The compiler goes through the on-disk
// cache; the interpreter has none. Its errors are classified: a module
// wazero refuses is the job's, a cache directory that cannot be used the
// operator's, anything else the node's.
//
// source is called once, while the module's entry is checked against its
// record on another goroutine (a 2.5 MB Go module's source, split from
// its data, takes about as long as hashing its 9 MB entry); wazero reads
// the entry only once the check has passed.
func (c Cache) Compile(ctx context.Context, cfg wazero.RuntimeConfig, key Key, module string, source func() []byte) (*Compiled, error) {
	start := time.Now()
	if key.Engine != executor.EngineCompiler {
		if c.CachedOnly {
			return nil, ErrNotCached
		}
		return c.compileWith(ctx, cfg, module, source(), start)
	}

	code := "uninterruptible"
	if key.Interruptible {
		code = "interruptible"
	}
	digest := key.Digest
	dir := filepath.Join(c.Dir, "wazero-"+WazeroVersion()+"-"+form, key.Engine, code, digest)
	checked := make(chan entryState, 1)
	go func() { checked <- checkEntry(dir) }()
	b := source()
	entry := <-checked
	blank := c.Blank.matching(key)
	if c.CachedOnly {
		if !entry.exists || entry.verr != nil {
			return nil, ErrNotCached
		}
		comp, err := c.load(ctx, cfg, dir, b, blank)
		if err != nil {
			return nil, err
		}
		comp.Hit, comp.Took = true, time.Since(start)
		return comp, nil
	}
	if c.ReadOnly {
		return c.compileReadOnly(ctx, cfg, dir, digest, module, b, entry, blank, start)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, cacheError(err)
	}
	// wazero writes an entry to a temporary file and renames it into place,
	// and the digest of a complete entry is recorded after it (see
	// recordEntry), so an entry with a recorded digest is complete: a hit
	// checks it against the digest and loads it without the lock, and
	// starts of a cached module never queue behind each other. An entry
	// without a record may be one being written: it is looked at again
	// under the lock.
	verr := errEntryUnrecorded
	if entry.exists {
		verr = entry.verr
	}
	if verr != nil && !errors.Is(verr, errEntryUnrecorded) {
		return c.replace(ctx, cfg, dir, digest, module, b, verr, start)
	}
	if verr == nil {
		comp, err := c.load(ctx, cfg, dir, b, blank)
		if err == nil {
			if err := shareEntry(dir); err != nil {
				c.Logger.Warn("cannot make the compiled entry readable by tasks' users", "sha256", digest, "error", err)
			}
			comp.Hit, comp.Took = true, time.Since(start)
			return comp, nil
		}
		// wazero decodes and validates the module before it reads the
		// entry, so a module it refuses is refused here the same way.
		if cerr := c.compileError(ctx, module, b, err); executor.ClassOf(cerr) == executor.ClassJob {
			return nil, cerr
		}
		return c.replace(ctx, cfg, dir, digest, module, b, err, start)
	}
	unlock, err := lockFile(dir + ".lock")
	if err != nil {
		return nil, cacheError(err)
	}
	defer unlock()
	// Compiled by another executor while this one waited: it recorded the
	// digest before it let go of the lock. An entry without one was left
	// by an executor that died between the two, or by an older release.
	hit := hasEntry(dir)
	if hit {
		if verr := verifyEntry(dir); verr != nil {
			c.Logger.Warn("compiled entry is damaged; removing it and compiling the module again", "sha256", digest, "error", verr)
			comp, err := c.recompile(ctx, cfg, dir, module, b)
			if err != nil {
				return nil, err
			}
			comp.Repaired, comp.Took = verr.Error(), time.Since(start)
			return comp, nil
		}
	}
	comp, err := c.load(ctx, cfg, dir, b, nil)
	if err != nil {
		return nil, c.compileError(ctx, module, b, err)
	}
	if !hit {
		if err := recordEntry(dir); err != nil {
			_ = comp.Runtime.Close(ctx)
			return nil, cacheError(err)
		}
	}
	comp.Hit, comp.Took = hit, time.Since(start)
	return comp, nil
}

// compileReadOnly loads the entry in dir if it verifies (entry, checked
// by the caller), and otherwise compiles b in memory, writing nothing: the
// entry is left for a privileged executor to repair or add.
func (c Cache) compileReadOnly(ctx context.Context, cfg wazero.RuntimeConfig, dir, digest, module string, b []byte, entry entryState, blank *Blank, start time.Time) (*Compiled, error) {
	if entry.exists {
		verr := entry.verr
		if verr == nil {
			comp, err := c.load(ctx, cfg, dir, b, blank)
			if err == nil {
				comp.Hit, comp.Took = true, time.Since(start)
				return comp, nil
			}
			verr = err
		}
		c.Logger.Warn("compiled entry cannot be used by this task's user; compiling the module in memory", "sha256", digest, "error", verr)
	}
	if c.Memory != nil {
		cfg = cfg.WithCompilationCache(c.Memory)
	}
	return c.compileWith(ctx, cfg, module, b, start)
}

// compileWith compiles b with a runtime of cfg, outside the node's cache.
func (c Cache) compileWith(ctx context.Context, cfg wazero.RuntimeConfig, module string, b []byte, start time.Time) (*Compiled, error) {
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	mod, err := rt.CompileModule(ctx, b)
	if err != nil {
		_ = rt.Close(ctx)
		return nil, c.compileError(ctx, module, b, err)
	}
	return &Compiled{Runtime: rt, Module: mod, Took: time.Since(start)}, nil
}

// replace replaces the damaged entry in dir (why says what is wrong with
// it), under the module's lock, with the module compiled again.
func (c Cache) replace(ctx context.Context, cfg wazero.RuntimeConfig, dir, digest, module string, b []byte, why error, start time.Time) (*Compiled, error) {
	c.Logger.Warn("compiled entry is damaged; removing it and compiling the module again", "sha256", digest, "error", why)
	unlock, err := lockFile(dir + ".lock")
	if err != nil {
		return nil, cacheError(err)
	}
	defer unlock()
	comp, err := c.recompile(ctx, cfg, dir, module, b)
	if err != nil {
		return nil, err
	}
	comp.Repaired, comp.Took = why.Error(), time.Since(start)
	return comp, nil
}

// recompile removes the entry in dir and its record, compiles the module
// again into dir and records the new entry. The caller holds the lock.
func (c Cache) recompile(ctx context.Context, cfg wazero.RuntimeConfig, dir, module string, b []byte) (*Compiled, error) {
	if err := os.RemoveAll(dir); err != nil {
		return nil, cacheError(err)
	}
	if err := os.Remove(recordPath(dir)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, cacheError(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, cacheError(err)
	}
	comp, err := c.load(ctx, cfg, dir, b, nil)
	if err != nil {
		return nil, c.compileError(ctx, module, b, err)
	}
	if err := recordEntry(dir); err != nil {
		_ = comp.Runtime.Close(ctx)
		return nil, cacheError(err)
	}
	return comp, nil
}

// load compiles b with a runtime whose compilation cache is dir: a hit
// when dir has the entry, a compile that adds it otherwise. The runtime is
// blank's, pointed at dir, where blank is set (only for an entry that is
// there and checked) and has not been taken yet.
func (c Cache) load(ctx context.Context, cfg wazero.RuntimeConfig, dir string, b []byte, blank *Blank) (*Compiled, error) {
	if rt, ok := blank.take(dir); ok {
		mod, err := rt.CompileModule(ctx, b)
		if err != nil {
			_ = rt.Close(ctx)
			return nil, err
		}
		return &Compiled{Runtime: rt, Module: mod, FromBlank: true}, nil
	}
	cache, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return nil, cacheError(err)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, cfg.WithCompilationCache(cache))
	mod, err := rt.CompileModule(ctx, b)
	if err != nil {
		_ = rt.Close(ctx)
		_ = cache.Close(ctx)
		return nil, err
	}
	return &Compiled{Runtime: closeBoth{rt, cache}, Module: mod}, nil
}

// Check reports whether the cache's directory can be used as c would use
// it: created if need be and written or, ReadOnly, read.
func (c Cache) Check() error {
	if c.ReadOnly {
		return checkReadable(c.Dir)
	}
	return checkWritable(c.Dir)
}

// checkWritable checks that dir exists or can be created, and is
// writable.
func checkWritable(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name)
}

// checkReadable checks that dir can be read, by an executor that writes
// nothing there.
func checkReadable(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.ReadDir(1)
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// compileError classifies a failure to compile module b. wazero's errors
// carry no type, so the module is checked again with c.Validate (the
// interpreter), which decodes and validates it but allocates no executable
// memory and touches no cache: if that refuses it too, the module is at
// fault; if not, the node is (out of memory, disk full, a damaged cache
// entry) or the compiler is. This runs only on the failure path.
func (c Cache) compileError(ctx context.Context, module string, b []byte, err error) error {
	if isResourceError(err) {
		return executor.NodeErrorf("compiling module %s failed for want of resources on this node: %v", module, err)
	}
	validate := c.Validate
	if validate == nil {
		validate = wazero.NewRuntimeConfigInterpreter()
	}
	rt := wazero.NewRuntimeWithConfig(ctx, validate)
	defer rt.Close(ctx)
	if _, verr := rt.CompileModule(ctx, b); verr != nil {
		return executor.JobErrorf("module %s is malformed or uses WebAssembly features this node does not support: %v", module, verr)
	}
	return executor.NodeErrorf("module %s is valid, but this node failed to compile it: %v", module, err)
}

// cacheError classifies a failure of the cache directory itself.
func cacheError(err error) error {
	if isResourceError(err) {
		return executor.NodeErrorf("the node's compiled-module cache is out of space: %v", err)
	}
	return executor.OperatorErrorf("the node's compiled-module cache cannot be used: %v: the plugin's cache_dir must be a directory the Nomad client can write", err)
}

// isResourceError reports whether err is the system running out of
// memory or disk.
func isResourceError(err error) bool {
	return errors.Is(err, syscall.ENOMEM) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// closeBoth closes the compilation cache with the runtime that uses it.
type closeBoth struct {
	wazero.Runtime
	cache wazero.CompilationCache
}

func (c closeBoth) Close(ctx context.Context) error {
	err := c.Runtime.Close(ctx)
	if cerr := c.cache.Close(ctx); err == nil {
		err = cerr
	}
	return err
}

// hasEntry reports whether wazero has written a compiled entry below dir
// (temporary files of an interrupted write do not count).
func hasEntry(dir string) bool {
	found := false
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && !strings.HasSuffix(d.Name(), ".tmp") {
			found = true
			return filepath.SkipAll
		}
		return nil
	})
	return found
}

// lockFile takes an exclusive flock on path, waiting for other holders.
func lockFile(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}
