// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"bytes"
	"context"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/memory"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/modcache"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/wasi"
)

// warmSet is what a spare executor prepares while it waits for a task:
// the modules started on this node most recently (modcache.Cache.Recent),
// compiled through the node's cache. A task that starts one of them skips
// decoding, validating and loading it, which is most of a repeated start of
// a large module. The first Start takes what it needs and closes the rest.
type warmSet struct {
	// engine is what every prepared module was compiled for, without the
	// per-loop check: a command-mode task runs such code (see
	// interruptible).
	engine string
	cancel context.CancelFunc

	mu      sync.Mutex
	entries map[string]*warmEntry // by module digest
	closed  bool
	// settled: the warm-up is over, the collection after it included.
	settled bool
	// blank is a runtime made ahead with the WASI host in it, for a
	// module that was not prepared (see newBlank); nil until it is made,
	// and once dropped (dropBlank).
	blank *modcache.Blank
}

type warmEntry struct {
	// module is the module's content: a task's module is matched by
	// content, which costs a comparison instead of a digest.
	module []byte
	done   chan struct{} // closed once comp is set (nil: it failed)
	comp   *compiled
	// wanted: a Start waits for this entry.
	wanted bool
}

// warmUp makes a blank runtime (newBlank), then prepares the recent
// modules that w names, most recent first (none when w.Modules is 0), in
// a goroutine the server owns.
func (s *server) warmUp(w executor.Warm) {
	engine, err := resolveEngine(w.Engine)
	if err != nil {
		s.logger.Warn("not preparing recent modules", "error", err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.warm = &warmSet{engine: engine, cancel: cancel, entries: map[string]*warmEntry{}}
	// Only what tasks compiled, within their memory, is prepared.
	cache := modcache.Cache{Dir: w.CacheDir, Logger: s.logger, CachedOnly: true, Validate: validateConfig()}
	s.wg.Go(func() {
		defer cancel()
		// The spare reports its modules prepared (ready) only once the
		// warm-up is over, the collection after it included: a Start that
		// comes during the collection (a Go module's is several
		// milliseconds) shares the processors with it.
		defer s.warm.settle()
		if blank, err := newBlank(context.Background(), engine); err != nil {
			s.logger.Debug("no runtime made ahead", "error", err)
		} else {
			s.warm.setBlank(blank)
		}
		if w.Modules <= 0 {
			return // the blank alone allocates too little to collect
		}
		// Collected once everything is prepared, so that the heap goal is
		// set from what stays: the allocations of the next Start then fit
		// under it, and the start does not pay for marking the prepared
		// modules. Not once a guest that a collection could stall runs.
		defer s.collect(runtime.GC)
		for _, m := range cache.Recent(w.Modules, w.Digests) {
			select {
			case <-ctx.Done():
				return
			case <-s.quit:
				return
			default:
			}
			b, err := m.Read()
			if err != nil {
				s.logger.Debug("cannot read a recent module", "sha256", m.Digest, "error", err)
				continue
			}
			e := s.warm.add(m.Digest, b)
			if e == nil {
				return
			}
			comp, err := prepare(ctx, cache, engine, m, b)
			if err != nil {
				s.logger.Debug("cannot prepare a recent module", "sha256", m.Digest, "error", err)
			}
			s.warm.finish(e, comp)
		}
	})
}

// newBlank makes a blank runtime (modcache.Blank) for a command task's
// module, which compiles without the per-loop check, with the WASI host of
// every function in it (the first signature of each, see wasi.Instantiate):
// a start whose module was not prepared loads it into that runtime, and
// neither makes a runtime nor compiles a WASI host. nil for the
// interpreter, which has no cache.
func newBlank(ctx context.Context, engine string) (*modcache.Blank, error) {
	if engine != executor.EngineCompiler {
		return nil, nil
	}
	check := interruptible(false)
	b, err := modcache.NewBlank(ctx, runtimeConfig(engine, check), engine, check)
	if err != nil {
		return nil, err
	}
	if _, err := wasi.Instantiate(ctx, b.Runtime(), !check); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// setBlank keeps blank for the task's start (blankFor), or closes it
// when the set has been taken already.
func (w *warmSet) setBlank(blank *modcache.Blank) {
	if blank == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		blank.Close()
		return
	}
	w.blank = blank
}

// blankFor is the blank runtime if it is made and stands for engine and
// for code with the per-loop check or not (check), else nil; it does not
// wait for one being made. It stays in the set: a compile takes it
// (modcache.Cache.Blank), and dropBlank closes it if none did.
func (w *warmSet) blankFor(engine string, check bool) *modcache.Blank {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if b := w.blank; b != nil && b.Engine == engine && b.Interruptible == check {
		return b
	}
	return nil
}

// dropBlank closes the blank runtime unless a compile took it, and
// forgets it. Not take's to do, nor a start's: closing a runtime unmaps
// its code, which a start should not wait for; the executor does it once
// the start is over, or has failed.
func (w *warmSet) dropBlank() {
	if w == nil {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.blank.Close()
	w.blank = nil
}

// prepare compiles recent module m, whose content is b, instantiates its
// WASI host and rehearses its instantiation.
func prepare(ctx context.Context, cache modcache.Cache, engine string, m modcache.Recent, b []byte) (*compiled, error) {
	comp, err := compile(ctx, cache, engine, interruptible(false), m.Digest, m.Path, b)
	if err != nil {
		return nil, err
	}
	if _, err := comp.instantiateWASI(ctx); err != nil {
		_ = comp.close(ctx)
		return nil, err
	}
	rehearse(ctx, comp)
	return comp, nil
}

// rehearse instantiates a prepared module once, without running anything
// in it, and closes it, so that the task's instantiation does not pay for
// the first use of that code and data in this process (a Go module has
// tens of thousands of data segments).
func rehearse(ctx context.Context, comp *compiled) {
	var size atomic.Uint64
	alloc := experimental.MemoryAllocatorFunc(func(_, limit uint64) experimental.LinearMemory {
		return memory.NewLinear(limit, &size, nil, comp.image)
	})
	config := wazero.NewModuleConfig().WithName("").WithStartFunctions()
	if mod, err := comp.Runtime.InstantiateModule(experimental.WithMemoryAllocator(ctx, alloc), comp.Module, config); err == nil {
		_ = mod.Close(ctx)
	}
}

// add registers module b (its digest) as being prepared; nil once the set
// is closed.
func (w *warmSet) add(digest string, b []byte) *warmEntry {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	e := &warmEntry{module: b, done: make(chan struct{})}
	w.entries[digest] = e
	return e
}

// finish records what preparing e gave (nil: nothing). Once the set is
// taken, what no Start waits for is released at once.
func (w *warmSet) finish(e *warmEntry, comp *compiled) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e.comp = comp
	if w.closed && !e.wanted && comp != nil {
		_ = comp.close(context.Background())
		e.comp = nil
	}
	close(e.done)
}

// take ends the set: it returns the prepared module whose content is b,
// for engine and with the per-loop check or not, with its digest (waiting for it if it is being compiled), or
// nil, and releases every other one. A warmSet is taken once, by the
// executor's one task; a nil set has nothing.
func (w *warmSet) take(b []byte, engine string, check bool) (*compiled, string) {
	if w == nil {
		return nil, ""
	}
	w.mu.Lock()
	w.closed = true
	w.cancel()
	var match *warmEntry
	var digest string
	for d, e := range w.entries {
		if match == nil && w.engine == engine && bytes.Equal(e.module, b) && check == interruptible(false) {
			match, digest = e, d
			e.wanted = true
			continue
		}
		select {
		case <-e.done:
			if e.comp != nil {
				_ = e.comp.close(context.Background())
				e.comp = nil
			}
		default: // finish releases it
		}
	}
	w.entries = map[string]*warmEntry{}
	w.mu.Unlock()
	if match == nil {
		return nil, ""
	}
	<-match.done
	if match.comp == nil {
		return nil, ""
	}
	return match.comp, digest
}

// settle records that the warm-up is over.
func (w *warmSet) settle() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.settled = true
}

// ready lists the digests of the modules prepared and not yet released,
// once the warm-up is over (settle): none before.
func (w *warmSet) ready() []string {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.settled {
		return nil
	}
	var out []string
	for digest, e := range w.entries {
		select {
		case <-e.done:
			if e.comp != nil {
				out = append(out, digest)
			}
		default:
		}
	}
	slices.Sort(out)
	return out
}
