// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package modcache

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
)

// TestRecent: the modules remembered are listed the digests asked for
// first, then the most recently started; a copy older than the window is
// removed, and one that does not match its name is removed when read.
func TestRecent(t *testing.T) {
	t.Parallel()
	c := Cache{Dir: t.TempDir()}
	a, b, old := []byte("module a"), []byte("module b"), []byte("module old")
	da, db, dold := digestOf(a), digestOf(b), digestOf(old)
	for _, m := range [][]byte{old, a, b} {
		must.NoError(t, c.Remember(digestOf(m), m))
	}
	at := func(digest string, ago time.Duration) {
		t.Helper()
		when := time.Now().Add(-ago)
		must.NoError(t, os.Chtimes(filepath.Join(c.Dir, "recent", digest+".wasm"), when, when))
	}
	at(da, time.Minute)
	at(db, 2*time.Minute)
	at(dold, executor.RecentWindow+time.Minute)

	digests := func(rs []Recent) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Digest)
		}
		return out
	}
	must.Eq(t, []string{da, db}, digests(c.Recent(5, nil)))
	must.Eq(t, []string{db, da}, digests(c.Recent(5, []string{db})))
	must.Eq(t, []string{da}, digests(c.Recent(1, nil)))
	must.FileNotExists(t, filepath.Join(c.Dir, "recent", dold+".wasm"))

	// Remembering again renews the time, and keeps the copy.
	must.NoError(t, c.Remember(db, b))
	rs := c.Recent(5, nil)
	must.Eq(t, []string{db, da}, digests(rs))
	got, err := rs[0].Read()
	must.NoError(t, err)
	must.Eq(t, b, got)

	must.NoError(t, os.WriteFile(rs[1].Path, []byte("altered"), 0o644))
	_, err = rs[1].Read()
	must.Eq(t, executor.ClassNode, executor.ClassOf(err))
	must.FileNotExists(t, rs[1].Path)
}
