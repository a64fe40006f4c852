// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package modcache

import (
	"context"
	"os"
	"path/filepath"
	"sync"

	"github.com/tetratelabs/wazero"
)

// A Blank is a runtime made before the module it will hold is known, so
// that a start which loads its module from the cache does not pay for
// making the runtime and what its holder adds to it first (the
// executor's WASI host, whose functions wazero compiles per runtime:
// 0.2 ms of a small C module's 0.85 ms load). A spare makes one while it
// waits; Cache.Compile uses it (Cache.Blank) for a module of its Key's
// engine and kind of code.
//
// A runtime's compilation cache is a directory fixed when the runtime is
// made, and the cache keeps each module's entry in a directory of its own
// (see Cache): so a blank runtime's cache directory is a descriptor of the
// process, /proc/self/fd/<n>, which the Compile that takes the blank
// points at the module's entry directory (dup3). wazero then opens the
// entry through it as it would by the directory's path: it reads, checks
// and writes the same files, after the same checks of ours. (Linux only:
// elsewhere NewBlank fails, and a start makes its runtime.)
type Blank struct {
	Engine        string
	Interruptible bool

	runtime wazero.Runtime
	cache   wazero.CompilationCache
	fd      int // the descriptor that names the cache directory
	// entries is the directory below the cache directory that wazero
	// reads and writes its entries in (named after its version): an
	// entry directory without it is not one this runtime can use.
	entries string

	mu    sync.Mutex
	taken bool // by a Compile, which closes it with its runtime
	done  bool // closed
}

// NewBlank makes a blank runtime of cfg, the configuration that engine
// and interruptible stand for (as in Key). Its holder adds what it needs
// to Runtime before a Compile takes it.
func NewBlank(ctx context.Context, cfg wazero.RuntimeConfig, engine string, interruptible bool) (*Blank, error) {
	fd, cache, entries, err := blankCache()
	if err != nil {
		return nil, err
	}
	return &Blank{Engine: engine, Interruptible: interruptible, fd: fd, cache: cache, entries: entries,
		runtime: wazero.NewRuntimeWithConfig(ctx, cfg.WithCompilationCache(cache))}, nil
}

// Runtime is the blank runtime, to which its holder adds what every
// module will need before a Compile takes it.
func (b *Blank) Runtime() wazero.Runtime { return b.runtime }

// matching is b where it stands for key's engine and kind of code, else
// nil.
func (b *Blank) matching(key Key) *Blank {
	if b != nil && b.Engine == key.Engine && b.Interruptible == key.Interruptible {
		return b
	}
	return nil
}

// take points b's cache at dir, the entry directory of one module, and
// hands over its runtime, which closes b with it; false when b was taken
// or closed already, or cannot be pointed there, or dir lacks the
// directory wazero keeps its entries in (an entry of another wazero
// version or platform: wazero, which makes that directory only when a
// cache is made, could not write the module's entry there).
func (b *Blank) take(dir string) (wazero.Runtime, bool) {
	if b == nil {
		return nil, false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.taken || b.done {
		return nil, false
	}
	if st, err := os.Stat(filepath.Join(dir, b.entries)); err != nil || !st.IsDir() {
		return nil, false
	}
	if err := pointAt(b.fd, dir); err != nil {
		return nil, false
	}
	b.taken = true
	return blankRuntime{Runtime: b.runtime, b: b}, true
}

// Close releases b unless a Compile took it (its runtime's Close does
// then).
func (b *Blank) Close() {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.taken || b.done {
		return
	}
	_ = b.release() // nothing of the blank was used
}

// release closes the runtime, its cache and the descriptor; b.mu held.
func (b *Blank) release() error {
	b.done = true
	ctx := context.Background()
	err := b.runtime.Close(ctx)
	if cerr := b.cache.Close(ctx); err == nil {
		err = cerr
	}
	closeFD(b.fd)
	return err
}

// blankRuntime is a taken blank's runtime, which releases the blank with
// it.
type blankRuntime struct {
	wazero.Runtime
	b *Blank
}

func (r blankRuntime) Close(context.Context) error {
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	if r.b.done {
		return nil
	}
	return r.b.release()
}
