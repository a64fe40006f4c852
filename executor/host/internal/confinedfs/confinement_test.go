// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package confinedfs

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/shoenig/test/must"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// Every attempt below must fail with EPERM, the errno this package documents
// for escapes, and leave base/outside exactly as it was.

func TestConfinement_DotDot(t *testing.T) {
	cases := []struct{ name, path string }{
		{"parent", "../outside/secret.txt"},
		{"leading slash", "/../outside/secret.txt"},
		{"leading dot", "./../outside/secret.txt"},
		{"through subdirectory", "sub/../../outside/secret.txt"},
		{"parent itself", ".."},
		{"far above", "sub/../../../../../../../../etc/passwd"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, false)

			f, errno := fx.fs.OpenFile(tc.path, experimentalsys.O_RDONLY, 0)
			must.Nil(t, f)
			requireErrno(t, experimentalsys.EPERM, errno)

			_, errno = fx.fs.Stat(tc.path)
			requireErrno(t, experimentalsys.EPERM, errno)

			_, errno = fx.fs.Lstat(tc.path)
			requireErrno(t, experimentalsys.EPERM, errno)

			_, errno = fx.fs.Readlink(tc.path)
			requireErrno(t, experimentalsys.EPERM, errno)
		})
	}
}

// An absolute host path is just a name inside the mount.
func TestConfinement_AbsoluteHostPathIsMountRelative(t *testing.T) {
	fx := newFixture(t, false)

	_, errno := fx.fs.OpenFile(fx.secret, experimentalsys.O_RDONLY, 0)
	requireErrno(t, experimentalsys.ENOENT, errno)
	_, errno = fx.fs.Stat(fx.secret)
	requireErrno(t, experimentalsys.ENOENT, errno)

	// ... and "/a.txt" is the mount's a.txt.
	must.EqOp(t, aText, readWhole(t, fx.fs, "/a.txt"))
}

func TestConfinement_PreexistingSymlinks(t *testing.T) {
	cases := []struct {
		name string
		link string
		// target is what Readlink must return; filled from the fixture
		// for the absolute link.
		target func(*fixture) string
	}{
		{"relative", "rel", func(*fixture) string { return "../outside/secret.txt" }},
		{"absolute", "abs", func(fx *fixture) string { return filepath.ToSlash(fx.secret) }},
		{"directory", "dirlink", func(*fixture) string { return "../outside" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, false)

			for _, flag := range []experimentalsys.Oflag{
				experimentalsys.O_RDONLY,
				experimentalsys.O_RDWR,
				experimentalsys.O_WRONLY | experimentalsys.O_TRUNC,
				experimentalsys.O_WRONLY | experimentalsys.O_APPEND,
			} {
				f, errno := fx.fs.OpenFile(tc.link, flag, 0)
				must.Nil(t, f)
				requireErrno(t, experimentalsys.EPERM, errno)
			}

			_, errno := fx.fs.Stat(tc.link)
			requireErrno(t, experimentalsys.EPERM, errno)

			// The link itself is fine to look at.
			st, errno := fx.fs.Lstat(tc.link)
			requireErrno(t, 0, errno)
			must.True(t, st.Mode&fs.ModeSymlink != 0)

			target, errno := fx.fs.Readlink(tc.link)
			requireErrno(t, 0, errno)
			must.EqOp(t, tc.target(fx), target)

			// Not following it is refused as a symlink, not as an escape.
			_, errno = fx.fs.OpenFile(tc.link, experimentalsys.O_RDONLY|experimentalsys.O_NOFOLLOW, 0)
			requireErrno(t, experimentalsys.ELOOP, errno)

			fx.requireSecretUntouched(t)
		})
	}
}

func TestConfinement_DirectorySymlinkInsidePath(t *testing.T) {
	fx := newFixture(t, false)

	_, errno := fx.fs.OpenFile("dirlink", experimentalsys.O_RDONLY|experimentalsys.O_DIRECTORY, 0)
	requireErrno(t, experimentalsys.EPERM, errno)

	for _, p := range []string{"dirlink/secret.txt", "dirlink/.", "sublink/../dirlink/secret.txt"} {
		_, errno := fx.fs.OpenFile(p, experimentalsys.O_RDONLY, 0)
		requireErrno(t, experimentalsys.EPERM, errno)
		_, errno = fx.fs.Stat(p)
		requireErrno(t, experimentalsys.EPERM, errno)
		// The last component is not followed, but "dirlink" in the middle is.
		_, errno = fx.fs.Lstat(p)
		requireErrno(t, experimentalsys.EPERM, errno)
	}
	fx.requireSecretUntouched(t)
}

func TestConfinement_GuestCreatedSymlinks(t *testing.T) {
	cases := []struct {
		name, target, link, follow string
	}{
		{"relative to a file", "../outside/secret.txt", "mine", "mine"},
		{"absolute", "/etc/passwd", "mine2", "mine2"},
		{"absolute to the secret", "", "mine3", "mine3"}, // target set below
		{"relative from a subdirectory", "../../outside", "sub/esc", "sub/esc/secret.txt"},
		{"relative to a directory", "..", "up", "up/outside/secret.txt"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, false)
			target := tc.target
			if target == "" {
				target = fx.secret
			}

			// Storing any target is allowed: it is only data until followed.
			requireErrno(t, 0, fx.fs.Symlink(target, tc.link))
			got, errno := fx.fs.Readlink(tc.link)
			requireErrno(t, 0, errno)
			must.EqOp(t, target, got)

			_, errno = fx.fs.OpenFile(tc.follow, experimentalsys.O_RDONLY, 0)
			requireErrno(t, experimentalsys.EPERM, errno)
			_, errno = fx.fs.OpenFile(tc.follow, experimentalsys.O_WRONLY|experimentalsys.O_TRUNC, 0)
			requireErrno(t, experimentalsys.EPERM, errno)
			_, errno = fx.fs.Stat(tc.follow)
			requireErrno(t, experimentalsys.EPERM, errno)

			// A chain through another guest link fails the same way.
			requireErrno(t, 0, fx.fs.Symlink(tc.link, "chain"))
			_, errno = fx.fs.OpenFile("chain", experimentalsys.O_RDONLY, 0)
			requireErrno(t, experimentalsys.EPERM, errno)

			// So does a hard link to the symlink.
			requireErrno(t, 0, fx.fs.Link(tc.link, "hard"))
			_, errno = fx.fs.OpenFile("hard", experimentalsys.O_RDONLY, 0)
			requireErrno(t, experimentalsys.EPERM, errno)

			fx.requireSecretUntouched(t)
		})
	}
}

// O_CREAT through a dangling symlink must not create its outside target.
func TestConfinement_CreateThroughDanglingSymlink(t *testing.T) {
	for _, target := range []string{"../outside/created", "../outside/../outside/created"} {
		t.Run(target, func(t *testing.T) {
			fx := newFixture(t, false)
			requireErrno(t, 0, fx.fs.Symlink(target, "dangle"))

			for _, flag := range []experimentalsys.Oflag{
				experimentalsys.O_CREAT | experimentalsys.O_WRONLY,
				experimentalsys.O_CREAT | experimentalsys.O_RDWR | experimentalsys.O_TRUNC,
			} {
				_, errno := fx.fs.OpenFile("dangle", flag, 0o644)
				requireErrno(t, experimentalsys.EPERM, errno)
			}
			// With O_EXCL the link is never followed: it simply exists.
			_, errno := fx.fs.OpenFile("dangle", experimentalsys.O_CREAT|experimentalsys.O_EXCL|experimentalsys.O_WRONLY, 0o644)
			requireErrno(t, experimentalsys.EEXIST, errno)

			must.FileNotExists(t, filepath.Join(fx.outside, "created"))
			fx.requireSecretUntouched(t)
		})
	}
}

func TestConfinement_MutationsCannotLeave(t *testing.T) {
	type op func(*FS) experimentalsys.Errno
	cases := []struct {
		name string
		op   op
		want experimentalsys.Errno
	}{
		{"rename to parent", func(f *FS) experimentalsys.Errno { return f.Rename("a.txt", "../outside/x") }, experimentalsys.EPERM},
		{"rename through dir link", func(f *FS) experimentalsys.Errno { return f.Rename("a.txt", "dirlink/x") }, experimentalsys.EPERM},
		{"rename from parent", func(f *FS) experimentalsys.Errno { return f.Rename("../outside/secret.txt", "stolen") }, experimentalsys.EPERM},
		{"rename from dir link", func(f *FS) experimentalsys.Errno { return f.Rename("dirlink/secret.txt", "stolen") }, experimentalsys.EPERM},
		{"link to parent", func(f *FS) experimentalsys.Errno { return f.Link("a.txt", "../outside/y") }, experimentalsys.EPERM},
		{"link through dir link", func(f *FS) experimentalsys.Errno { return f.Link("a.txt", "dirlink/y") }, experimentalsys.EPERM},
		{"link from parent", func(f *FS) experimentalsys.Errno { return f.Link("../outside/secret.txt", "stolen") }, experimentalsys.EPERM},
		{"link from dir link", func(f *FS) experimentalsys.Errno { return f.Link("dirlink/secret.txt", "stolen") }, experimentalsys.EPERM},
		{"mkdir in parent", func(f *FS) experimentalsys.Errno { return f.Mkdir("../outside/d", 0o755) }, experimentalsys.EPERM},
		{"mkdir through dir link", func(f *FS) experimentalsys.Errno { return f.Mkdir("dirlink/d", 0o755) }, experimentalsys.EPERM},
		{"symlink placed in parent", func(f *FS) experimentalsys.Errno { return f.Symlink("a.txt", "../outside/evil") }, experimentalsys.EPERM},
		{"symlink placed through dir link", func(f *FS) experimentalsys.Errno { return f.Symlink("a.txt", "dirlink/evil") }, experimentalsys.EPERM},
		{"create in parent", func(f *FS) experimentalsys.Errno {
			_, errno := f.OpenFile("../outside/new", experimentalsys.O_CREAT|experimentalsys.O_WRONLY, 0o644)
			return errno
		}, experimentalsys.EPERM},
		{"exclusive create in parent", func(f *FS) experimentalsys.Errno {
			_, errno := f.OpenFile("../outside/new", experimentalsys.O_CREAT|experimentalsys.O_EXCL|experimentalsys.O_WRONLY, 0o644)
			return errno
		}, experimentalsys.EPERM},
		{"create through dir link", func(f *FS) experimentalsys.Errno {
			_, errno := f.OpenFile("dirlink/new", experimentalsys.O_CREAT|experimentalsys.O_WRONLY, 0o644)
			return errno
		}, experimentalsys.EPERM},
		{"chmod through link", func(f *FS) experimentalsys.Errno { return f.Chmod("rel", 0o777) }, experimentalsys.EPERM},
		{"chmod in parent", func(f *FS) experimentalsys.Errno { return f.Chmod("../outside/secret.txt", 0o777) }, experimentalsys.EPERM},
		{"utimens through link", func(f *FS) experimentalsys.Errno { return f.Utimens("rel", 0, 0) }, experimentalsys.EPERM},
		{"utimens through absolute link", func(f *FS) experimentalsys.Errno { return f.Utimens("abs", 0, 0) }, experimentalsys.EPERM},
		{"unlink in parent", func(f *FS) experimentalsys.Errno { return f.Unlink("../outside/secret.txt") }, experimentalsys.EPERM},
		{"unlink through dir link", func(f *FS) experimentalsys.Errno { return f.Unlink("dirlink/secret.txt") }, experimentalsys.EPERM},
		{"rmdir parent's directory", func(f *FS) experimentalsys.Errno { return f.Rmdir("../outside") }, experimentalsys.EPERM},
		// rmdir does not follow the final symlink, so this is about the link.
		{"rmdir dir link", func(f *FS) experimentalsys.Errno { return f.Rmdir("dirlink") }, experimentalsys.ENOTDIR},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, false)
			before, err := os.Stat(fx.secret)
			must.NoError(t, err)

			requireErrno(t, tc.want, tc.op(fx.fs))

			fx.requireSecretUntouched(t)
			after, err := os.Stat(fx.secret)
			must.NoError(t, err)
			must.EqOp(t, before.Mode(), after.Mode())
			must.True(t, before.ModTime().Equal(after.ModTime()))
			// Nothing that was in the mount went anywhere either.
			must.EqOp(t, aText, readHost(t, filepath.Join(fx.mount, "a.txt")))
		})
	}
}

// Confinement must not break links that stay inside the mount.
func TestConfinement_InMountLinksWork(t *testing.T) {
	fx := newFixture(t, false)

	for name, want := range map[string]string{
		"inner":         aText,
		"sub/up":        aText,
		"sublink/b.txt": bText,
		"sublink/up":    aText,
		"sub/../a.txt":  aText,
		"./sub/./b.txt": bText,
	} {
		must.EqOp(t, want, readWhole(t, fx.fs, name), must.Sprint(name))
	}

	st, errno := fx.fs.Stat("inner")
	requireErrno(t, 0, errno)
	must.True(t, st.Mode.IsRegular())
	must.EqOp(t, int64(len(aText)), st.Size)

	st, errno = fx.fs.Stat("sublink")
	requireErrno(t, 0, errno)
	must.True(t, st.Mode.IsDir())

	d := openFile(t, fx.fs, "sublink", experimentalsys.O_RDONLY|experimentalsys.O_DIRECTORY, 0)
	isDir, errno := d.IsDir()
	requireErrno(t, 0, errno)
	must.True(t, isDir)

	// Links the guest makes inside the mount work as well.
	requireErrno(t, 0, fx.fs.Symlink("sub/b.txt", "mylink"))
	requireErrno(t, 0, fx.fs.Symlink("../a.txt", "sub/mylink"))
	requireErrno(t, 0, fx.fs.Symlink("sub", "mydir"))
	must.EqOp(t, bText, readWhole(t, fx.fs, "mylink"))
	must.EqOp(t, aText, readWhole(t, fx.fs, "sub/mylink"))
	must.EqOp(t, bText, readWhole(t, fx.fs, "mydir/b.txt"))

	// Writing through an in-mount link changes its target.
	w := openFile(t, fx.fs, "inner", experimentalsys.O_WRONLY|experimentalsys.O_APPEND, 0)
	_, errno = w.Write([]byte("!"))
	requireErrno(t, 0, errno)
	must.EqOp(t, aText+"!", readHost(t, filepath.Join(fx.mount, "a.txt")))
}
