// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"bytes"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
)

// keptSet is what the shared executor keeps of the programs of tasks that
// have ended: their compiled modules (the runtime, the module decoded,
// validated and loaded, its WASI host), so that the next task of the same
// module, engine and check starts from it instead of loading the module
// from the node's cache again, which for a 2.5 MB Go module is 60 ms of
// wazero decoding and validating it. It is the shared executor's
// counterpart of a spare's prepared modules (warmSet): at most max of them,
// each for executor.RecentWindow after its task ended, the most recently
// kept first. Only compiled code is kept: every task still gets a fresh
// instance, its own table and its own memory.
type keptSet struct {
	max    int
	window time.Duration

	mu      sync.Mutex
	entries []*keptEntry // most recently kept last
	closed  bool
}

type keptEntry struct {
	key keptKey
	// module is the module's content: a task's module is matched by
	// content, as a spare's prepared modules are, which costs a
	// comparison instead of a digest (3 ms for a 2.5 MB module).
	module []byte
	comp   *compiled
	timer  *time.Timer
}

// keptKey is what a kept program serves: the module's digest, the engine
// its code is for, and whether it has the per-loop check.
type keptKey struct {
	digest, engine string
	interruptible  bool
}

func newKeptSet(max int) *keptSet {
	return &keptSet{max: max, window: executor.RecentWindow}
}

// keep takes comp, compiled from module (which the set may hold: it is
// not written after), whose task has ended, for the next task of key; it
// says false (and the caller closes comp) when the set keeps nothing.
func (k *keptSet) keep(key keptKey, module []byte, comp *compiled) bool {
	if k == nil || k.max <= 0 || comp == nil {
		return false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return false
	}
	// A repair of its cache entry was the first task's news; its load
	// time and cache hit stay, as a prepared module's do: how it was
	// obtained, ahead of the task.
	comp.Repaired = ""
	e := &keptEntry{key: key, module: module, comp: comp}
	e.timer = time.AfterFunc(k.window, func() { k.expire(e) })
	k.entries = append(k.entries, e)
	for len(k.entries) > k.max {
		k.drop(0)
	}
	return true
}

// take returns a kept program of module b for engine, with the per-loop
// check or not, with its digest and its content (which the caller may
// keep), or nil. The program is the caller's from then on.
func (k *keptSet) take(b []byte, engine string, interruptible bool) (*compiled, string, []byte) {
	if k == nil {
		return nil, "", nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for i := len(k.entries) - 1; i >= 0; i-- {
		if e := k.entries[i]; e.key.engine == engine && e.key.interruptible == interruptible && bytes.Equal(e.module, b) {
			e.timer.Stop()
			k.entries = append(k.entries[:i], k.entries[i+1:]...)
			return e.comp, e.key.digest, e.module
		}
	}
	return nil, "", nil
}

// expire closes e once its window has passed, unless it was taken.
func (k *keptSet) expire(e *keptEntry) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for i, x := range k.entries {
		if x == e {
			k.drop(i)
			return
		}
	}
}

// drop closes entry i. k.mu is held.
func (k *keptSet) drop(i int) {
	e := k.entries[i]
	e.timer.Stop()
	_ = e.comp.close(context.Background())
	k.entries = append(k.entries[:i], k.entries[i+1:]...)
}

// digests lists the digests of the kept programs' modules, sorted.
func (k *keptSet) digests() []string {
	if k == nil {
		return nil
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for _, e := range k.entries {
		out = append(out, e.key.digest)
	}
	slices.Sort(out)
	return out
}

// close closes every kept program; nothing is kept after it.
func (k *keptSet) close() {
	if k == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed = true
	for len(k.entries) > 0 {
		k.drop(0)
	}
}
