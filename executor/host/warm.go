// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"slices"
	"sync"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
)

// warmSet is what a spare executor prepares while it waits for a task:
// the modules started on this node most recently (ModuleCache.recent),
// compiled through the node's cache. A task that starts one of them skips
// decoding, validating and loading it, which is most of a repeated start of
// a large module. The first Start takes what it needs and closes the rest.
type warmSet struct {
	mu      sync.Mutex
	entries map[string]*warmEntry // by module digest
	closed  bool
	cancel  context.CancelFunc
}

type warmEntry struct {
	engine string
	done   chan struct{} // closed when comp or err is set
	comp   *compiled
	err    error
}

// warmUp prepares the recent modules that w names, most recent first, in
// a goroutine the server owns.
func (s *server) warmUp(w executor.Warm) {
	engine, err := resolveEngine(w.Engine)
	if err != nil {
		s.logger.Warn("not preparing recent modules", "error", err)
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.warm = &warmSet{entries: map[string]*warmEntry{}, cancel: cancel}
	cache := ModuleCache{Dir: w.CacheDir, Logger: s.logger}
	s.wg.Go(func() {
		defer cancel()
		for _, m := range cache.recent(w.Modules, w.Digests) {
			select {
			case <-ctx.Done():
				return
			case <-s.quit:
				return
			default:
			}
			e := s.warm.add(m.digest, engine)
			if e == nil {
				return
			}
			comp, err := prepare(ctx, cache, engine, m)
			s.warm.finish(e, comp, err)
			if err != nil {
				s.logger.Debug("cannot prepare a recent module", "sha256", m.digest, "error", err)
			}
		}
	})
}

// prepare reads a recent module, checks that it is what its name says,
// and compiles it.
func prepare(ctx context.Context, cache ModuleCache, engine string, m recentModule) (*compiled, error) {
	b, err := os.ReadFile(m.path)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != m.digest {
		_ = os.Remove(m.path)
		return nil, executor.NodeErrorf("recent module %s does not match its digest; removed", m.path)
	}
	return cache.compile(ctx, engine, m.digest, m.path, b)
}

// add registers a module being prepared; nil once the set is closed.
func (w *warmSet) add(digest, engine string) *warmEntry {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	e := &warmEntry{engine: engine, done: make(chan struct{})}
	w.entries[digest] = e
	return e
}

// finish records what preparing e gave; a set closed meanwhile releases
// it at once, unless a Start is waiting for it.
func (w *warmSet) finish(e *warmEntry, comp *compiled, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e.comp, e.err = comp, err
	close(e.done)
	if w.closed && comp != nil && !w.claimed(e) {
		_ = comp.runtime.Close(context.Background())
		e.comp = nil
	}
}

// claimed reports whether e is the entry a Start took; w.mu is held.
func (w *warmSet) claimed(e *warmEntry) bool {
	for _, x := range w.entries {
		if x == e {
			return false
		}
	}
	return true
}

// take ends the set: it returns the prepared module with digest for
// engine (waiting if it is being prepared), or nil, and releases every
// other one. A warmSet is taken once, by the executor's one task.
func (w *warmSet) take(digest, engine string) *compiled {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	w.closed = true
	w.cancel()
	e := w.entries[digest]
	delete(w.entries, digest)
	for _, other := range w.entries {
		select {
		case <-other.done:
			if other.comp != nil {
				_ = other.comp.runtime.Close(context.Background())
				other.comp = nil
			}
		default: // finish releases it
		}
	}
	w.mu.Unlock()
	if e == nil || e.engine != engine {
		if e != nil {
			<-e.done
			if e.comp != nil {
				_ = e.comp.runtime.Close(context.Background())
			}
		}
		return nil
	}
	<-e.done
	return e.comp
}

// ready lists the digests of the modules prepared and not yet released.
func (w *warmSet) ready() []string {
	if w == nil {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
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
