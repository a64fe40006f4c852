// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package confinedfs

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoenig/test/must"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"golang.org/x/sys/unix"
)

// lmtime is the modification time of p itself, a symlink not followed.
func lmtime(t *testing.T, p string) int64 {
	t.Helper()
	var st unix.Stat_t
	must.NoError(t, unix.Lstat(p, &st))
	return st.Mtim.Nano()
}

// TestLutimensSetsTheSymlinksOwnTimes: Lutimens sets a symlink's own
// times, and never those of what it points at, even when that is outside
// the mount (rel, abs) or inside it (inner).
func TestLutimensSetsTheSymlinksOwnTimes(t *testing.T) {
	fx := newFixture(t, false)
	when := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC).UnixNano()
	secretBefore, aBefore := lmtime(t, fx.secret), lmtime(t, filepath.Join(fx.mount, "a.txt"))
	for _, link := range []string{"rel", "abs", "inner", "sub/up", "/rel"} {
		must.Eq(t, experimentalsys.Errno(0), fx.fs.Lutimens(link, experimentalsys.UTIME_OMIT, when), must.Sprint(link))
		must.Eq(t, when, lmtime(t, filepath.Join(fx.mount, link)), must.Sprint(link))
	}
	must.Eq(t, secretBefore, lmtime(t, fx.secret), must.Sprint("the target outside the mount was touched"))
	must.Eq(t, aBefore, lmtime(t, filepath.Join(fx.mount, "a.txt")), must.Sprint("the target inside the mount was touched"))
}

// TestLutimensCannotLeave: a name whose directory is outside the mount,
// by "..", by a symlinked directory that leaves, or a path that is ".."
// itself, is refused with EPERM and changes nothing outside.
func TestLutimensCannotLeave(t *testing.T) {
	fx := newFixture(t, false)
	when := time.Date(2001, 2, 3, 4, 5, 6, 7, time.UTC).UnixNano()
	outsideBefore, secretBefore := lmtime(t, fx.outside), lmtime(t, fx.secret)
	for _, p := range []string{"../outside/secret.txt", "dirlink/secret.txt", "sub/../../outside/secret.txt", "..", "sub/../.."} {
		must.Eq(t, experimentalsys.EPERM, fx.fs.Lutimens(p, when, when), must.Sprint(p))
	}
	must.Eq(t, outsideBefore, lmtime(t, fx.outside))
	must.Eq(t, secretBefore, lmtime(t, fx.secret))
}

// TestLutimensReadOnly: a read-only mount refuses it.
func TestLutimensReadOnly(t *testing.T) {
	fx := newFixture(t, true)
	must.Eq(t, experimentalsys.EROFS, fx.fs.Lutimens("inner", 0, 0))
	_, err := os.Lstat(filepath.Join(fx.mount, "inner"))
	must.NoError(t, err)
}
