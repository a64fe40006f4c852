// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tetratelabs/wazero"
)

// Engine names, as written in the plugin config and reported in attributes.
const (
	EngineCompiler    = "compiler"
	EngineInterpreter = "interpreter"
)

// wazeroModuleVersion is the wazero version in go.mod, for binaries built
// without module information (test binaries); a test keeps it in step.
const wazeroModuleVersion = "v1.12.0"

// WazeroVersion is the version of wazero linked into this binary, as the Go
// toolchain recorded it.
var WazeroVersion = sync.OnceValue(func() string {
	if info, ok := debug.ReadBuildInfo(); ok {
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
})

// ModuleCache is the node's on-disk cache of compiled modules, shared by
// every executor on the node.
//
// Layout (persisted; changing it orphans existing entries, which is safe but
// costs one compile per module):
//
//	<dir>/wazero-<version>/<engine>/<module sha256>/   wazero's cache for one module
//	<dir>/wazero-<version>/<engine>/<module sha256>.lock
//
// Giving each module its own wazero cache directory lets the executor tell a
// cache hit from a compile (the directory has an entry or not), and the lock
// file makes concurrent first starts of one module on a node compile it once:
// the first holds an exclusive flock while it compiles, the others wait and
// then load what it wrote. A start that finds an entry loads it without the
// lock. wazero keys its entries by module content and CPU features, so an
// entry is never reused on a CPU it was not compiled for.
type ModuleCache struct {
	Dir string
}

// compiled is a module compiled by a runtime that must outlive it.
type compiled struct {
	runtime  wazero.Runtime
	module   wazero.CompiledModule
	cacheHit bool
	took     time.Duration
}

// compile compiles b (whose SHA-256 is digest) with cfg. The compiler
// engine goes through the on-disk cache; the interpreter has none.
func (c ModuleCache) compile(ctx context.Context, cfg wazero.RuntimeConfig, engine, digest string, b []byte) (*compiled, error) {
	start := time.Now()
	if engine != EngineCompiler {
		rt := wazero.NewRuntimeWithConfig(ctx, cfg)
		mod, err := rt.CompileModule(ctx, b)
		if err != nil {
			_ = rt.Close(ctx)
			return nil, err
		}
		return &compiled{runtime: rt, module: mod, took: time.Since(start)}, nil
	}

	base := filepath.Join(c.Dir, "wazero-"+WazeroVersion(), engine)
	dir := filepath.Join(base, digest)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, cacheError{err}
	}
	// wazero writes an entry to a temporary file and renames it into place,
	// so an entry that exists is complete: a hit loads it without the lock,
	// and starts of a cached module never queue behind each other.
	hit := hasEntry(dir)
	if !hit {
		unlock, err := lockFile(dir + ".lock")
		if err != nil {
			return nil, cacheError{err}
		}
		defer unlock()
		hit = hasEntry(dir)
	}
	cache, err := wazero.NewCompilationCacheWithDir(dir)
	if err != nil {
		return nil, cacheError{err}
	}
	rt := wazero.NewRuntimeWithConfig(ctx, cfg.WithCompilationCache(cache))
	mod, err := rt.CompileModule(ctx, b)
	if err != nil {
		_ = rt.Close(ctx)
		_ = cache.Close(ctx)
		return nil, err
	}
	return &compiled{runtime: closeBoth{rt, cache}, module: mod, cacheHit: hit, took: time.Since(start)}, nil
}

// cacheError is a failure of the cache itself (its directory, its lock),
// not of the module being compiled.
type cacheError struct{ err error }

func (e cacheError) Error() string { return e.err.Error() }
func (e cacheError) Unwrap() error { return e.err }

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
