// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"testing"
	"time"

	"github.com/shoenig/test/must"
	"github.com/shoenig/test/wait"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
)

// TestKeptSet: a kept program is taken once, by a task of the same
// module, engine and check only; the set keeps at most max (the oldest
// goes first, closed), each until its window has passed (then closed),
// and nothing once it is closed or when max is 0.
func TestKeptSet(t *testing.T) {
	t.Parallel()
	engine := executor.EngineInterpreter
	key := func(d string) keptKey { return keptKey{digest: d, engine: engine, interruptible: true} }
	take := func(k *keptSet, b []byte) *compiled {
		comp, _, _ := k.take(b, engine, true)
		return comp
	}

	var none *keptSet
	must.False(t, none.keep(key("a"), warmA, prepared(t, engine, warmA)))
	must.Nil(t, take(none, warmA))
	must.Nil(t, none.digests())
	off := newKeptSet(0)
	must.False(t, off.keep(key("a"), warmA, prepared(t, engine, warmA)))

	k := newKeptSet(2)
	a, b, c := prepared(t, engine, warmA), prepared(t, engine, warmB), prepared(t, engine, warmC)
	b.Repaired = "the first task's cache entry was damaged"
	must.True(t, k.keep(key("a"), warmA, a))
	must.True(t, k.keep(key("b"), warmB, b))
	must.Eq(t, []string{"a", "b"}, k.digests())
	// Another engine, or the other check, is another program.
	comp, _, _ := k.take(warmA, executor.EngineCompiler, true)
	must.Nil(t, comp)
	comp, _, _ = k.take(warmA, engine, false)
	must.Nil(t, comp)
	// A third pushes out the oldest, which is closed.
	must.True(t, k.keep(key("c"), warmC, c))
	must.Eq(t, []string{"b", "c"}, k.digests())
	must.True(t, released(a))
	must.Nil(t, take(k, warmA))
	// Taken by content: the caller's, open, and no longer in the set.
	comp, digest, module := k.take(warmB, engine, true)
	must.Eq(t, b, comp)
	must.Eq(t, "", comp.Repaired) // reported once, by the first task
	must.Eq(t, "b", digest)
	must.Eq(t, warmB, module)
	must.False(t, released(b))
	must.Nil(t, take(k, warmB))
	must.Eq(t, []string{"c"}, k.digests())

	// Closed: what it held is closed, and it keeps nothing more.
	k.close()
	must.True(t, released(c))
	must.Nil(t, k.digests())
	must.False(t, k.keep(key("b"), warmB, b))
}

// TestKeptSetExpires: a kept program that no task takes within the
// window is closed.
func TestKeptSetExpires(t *testing.T) {
	t.Parallel()
	engine := executor.EngineInterpreter
	k := newKeptSet(4)
	k.window = 20 * time.Millisecond
	a := prepared(t, engine, warmA)
	must.True(t, k.keep(keptKey{digest: "a", engine: engine}, warmA, a))
	must.Wait(t, wait.InitialSuccess(wait.BoolFunc(func() bool { return len(k.digests()) == 0 }),
		wait.Timeout(10*time.Second), wait.Gap(5*time.Millisecond)))
	must.True(t, released(a))
}
