// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package confinedfs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/shoenig/test/must"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

const (
	secretText = "TOP SECRET: must never reach the guest"
	aText      = "hello from inside the mount"
	bText      = "nested file"
)

// fixture is a temporary directory holding the mount and, beside it, a
// directory the guest must never reach:
//
//	base/
//	  outside/secret.txt
//	  mount/
//	    a.txt
//	    sub/b.txt
//	    sub/up     -> ../a.txt             (inside: must work)
//	    inner      -> a.txt                (inside: must work)
//	    sublink    -> sub                  (inside: must work)
//	    rel        -> ../outside/secret.txt
//	    abs        -> <absolute path of secret.txt>
//	    dirlink    -> ../outside
type fixture struct {
	base, mount, outside, secret string
	fs                           *FS
}

func newFixture(t *testing.T, readOnly bool) *fixture {
	t.Helper()
	base := t.TempDir()
	fx := &fixture{
		base:    base,
		mount:   filepath.Join(base, "mount"),
		outside: filepath.Join(base, "outside"),
	}
	fx.secret = filepath.Join(fx.outside, "secret.txt")

	must.NoError(t, os.MkdirAll(filepath.Join(fx.mount, "sub"), 0o755))
	must.NoError(t, os.MkdirAll(fx.outside, 0o755))
	must.NoError(t, os.WriteFile(fx.secret, []byte(secretText), 0o644))
	must.NoError(t, os.WriteFile(filepath.Join(fx.mount, "a.txt"), []byte(aText), 0o644))
	must.NoError(t, os.WriteFile(filepath.Join(fx.mount, "sub", "b.txt"), []byte(bText), 0o644))

	for link, target := range map[string]string{
		"sub/up":  "../a.txt",
		"inner":   "a.txt",
		"sublink": "sub",
		"rel":     "../outside/secret.txt",
		"abs":     fx.secret,
		"dirlink": "../outside",
	} {
		// Every supported OS has symlinks: a failure here is a broken
		// fixture, never a reason to skip the confinement tests.
		must.NoError(t, os.Symlink(target, filepath.Join(fx.mount, filepath.FromSlash(link))))
	}

	fsys, err := New(fx.mount, readOnly)
	must.NoError(t, err)
	t.Cleanup(func() { _ = fsys.Close() })
	fx.fs = fsys
	return fx
}

// outsideNames lists what is in the outside directory, to prove nothing was
// created there.
func (fx *fixture) outsideNames(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(fx.outside)
	must.NoError(t, err)
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// requireSecretUntouched checks the outside directory still holds exactly
// the secret, unchanged.
func (fx *fixture) requireSecretUntouched(t *testing.T) {
	t.Helper()
	must.Eq(t, []string{"secret.txt"}, fx.outsideNames(t))
	got, err := os.ReadFile(fx.secret)
	must.NoError(t, err)
	must.EqOp(t, secretText, string(got))
}

func requireErrno(t *testing.T, want, got experimentalsys.Errno) {
	t.Helper()
	if want != got {
		t.Fatalf("errno: want %v (%d), got %v (%d)", want, want, got, got)
	}
}

func openFile(t *testing.T, fsys *FS, name string, flag experimentalsys.Oflag, perm os.FileMode) experimentalsys.File {
	t.Helper()
	f, errno := fsys.OpenFile(name, flag, perm)
	requireErrno(t, 0, errno)
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// readAll reads f to its end with Read, the way a guest does.
func readAll(t *testing.T, f experimentalsys.File) string {
	t.Helper()
	var out []byte
	buf := make([]byte, 7) // small, so the loop runs several times
	for {
		n, errno := f.Read(buf)
		requireErrno(t, 0, errno)
		if n == 0 {
			return string(out)
		}
		out = append(out, buf[:n]...)
	}
}

func readHost(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	must.NoError(t, err)
	return string(b)
}

// readWhole opens name through fsys and returns its contents.
func readWhole(t *testing.T, fsys *FS, name string) string {
	t.Helper()
	f := openFile(t, fsys, name, experimentalsys.O_RDONLY, 0)
	return readAll(t, f)
}
