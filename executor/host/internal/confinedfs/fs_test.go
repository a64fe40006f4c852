// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package confinedfs

import (
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/shoenig/test/must"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

func TestNew(t *testing.T) {
	t.Run("missing directory", func(t *testing.T) {
		_, err := New(filepath.Join(t.TempDir(), "nope"), false)
		must.Error(t, err)
	})
	t.Run("not a directory", func(t *testing.T) {
		name := filepath.Join(t.TempDir(), "file")
		must.NoError(t, os.WriteFile(name, nil, 0o644))
		_, err := New(name, false)
		must.Error(t, err)
	})
	t.Run("string and close", func(t *testing.T) {
		dir := t.TempDir()
		fsys, err := New(dir, false)
		must.NoError(t, err)
		must.EqOp(t, dir, fsys.String())
		must.NotNil(t, fsys.escapeErr) // the identity probe worked

		must.NoError(t, fsys.Close())
		_, errno := fsys.Stat(".")
		requireErrno(t, experimentalsys.EBADF, errno)
	})
}

func TestOpenFile_MountRoot(t *testing.T) {
	fx := newFixture(t, false)
	rootSt, errno := fx.fs.Stat(".")
	requireErrno(t, 0, errno)

	for _, name := range []string{"", ".", "/", "//", "./"} {
		f := openFile(t, fx.fs, name, experimentalsys.O_RDONLY, 0)
		isDir, errno := f.IsDir()
		requireErrno(t, 0, errno)
		must.True(t, isDir, must.Sprint(name))
		ino, errno := f.Ino()
		requireErrno(t, 0, errno)
		must.EqOp(t, rootSt.Ino, ino)

		st, errno := fx.fs.Stat(name)
		requireErrno(t, 0, errno)
		must.EqOp(t, rootSt.Ino, st.Ino)
	}
}

func TestOpenFile_Flags(t *testing.T) {
	fx := newFixture(t, false)

	t.Run("create exclusive, write, read back", func(t *testing.T) {
		flag := experimentalsys.O_CREAT | experimentalsys.O_EXCL | experimentalsys.O_RDWR
		f := openFile(t, fx.fs, "new.txt", flag, 0o600)
		n, errno := f.Write([]byte("hello"))
		requireErrno(t, 0, errno)
		must.EqOp(t, 5, n)
		off, errno := f.Seek(0, 0)
		requireErrno(t, 0, errno)
		must.EqOp(t, int64(0), off)
		must.EqOp(t, "hello", readAll(t, f))

		st, errno := f.Stat()
		requireErrno(t, 0, errno)
		must.EqOp(t, fs.FileMode(0o600), st.Mode.Perm())
		must.EqOp(t, "hello", readHost(t, filepath.Join(fx.mount, "new.txt")))

		_, errno = fx.fs.OpenFile("new.txt", flag, 0o600)
		requireErrno(t, experimentalsys.EEXIST, errno)
	})

	t.Run("guest cannot create setuid or sticky files", func(t *testing.T) {
		perm := fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky | 0o755
		openFile(t, fx.fs, "suid", experimentalsys.O_CREAT|experimentalsys.O_WRONLY, perm)
		requireErrno(t, 0, fx.fs.Mkdir("sgid", perm))
		requireErrno(t, 0, fx.fs.Chmod("a.txt", perm))
		for _, name := range []string{"suid", "sgid", "a.txt"} {
			fi, err := os.Stat(filepath.Join(fx.mount, name))
			must.NoError(t, err)
			must.EqOp(t, fs.FileMode(0), fi.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky), must.Sprint(name))
		}
		requireErrno(t, 0, fx.fs.Chmod("a.txt", 0o644))
	})

	t.Run("missing", func(t *testing.T) {
		_, errno := fx.fs.OpenFile("missing", experimentalsys.O_RDONLY, 0)
		requireErrno(t, experimentalsys.ENOENT, errno)
		_, errno = fx.fs.OpenFile("missing/x", experimentalsys.O_CREAT|experimentalsys.O_WRONLY, 0o644)
		requireErrno(t, experimentalsys.ENOENT, errno)
	})

	t.Run("access mode both write bits", func(t *testing.T) {
		_, errno := fx.fs.OpenFile("a.txt", experimentalsys.O_RDWR|experimentalsys.O_WRONLY, 0)
		requireErrno(t, experimentalsys.EINVAL, errno)
	})

	t.Run("directory for writing", func(t *testing.T) {
		_, errno := fx.fs.OpenFile("sub", experimentalsys.O_WRONLY, 0)
		requireErrno(t, experimentalsys.EISDIR, errno)
		_, errno = fx.fs.OpenFile("sub", experimentalsys.O_RDWR|experimentalsys.O_DIRECTORY, 0)
		requireErrno(t, experimentalsys.EISDIR, errno)
	})

	t.Run("O_DIRECTORY", func(t *testing.T) {
		_, errno := fx.fs.OpenFile("a.txt", experimentalsys.O_DIRECTORY, 0)
		requireErrno(t, experimentalsys.ENOTDIR, errno)
		_, errno = fx.fs.OpenFile("inner", experimentalsys.O_DIRECTORY, 0)
		requireErrno(t, experimentalsys.ENOTDIR, errno)
		_, errno = fx.fs.OpenFile("newdir", experimentalsys.O_DIRECTORY|experimentalsys.O_CREAT, 0o755)
		requireErrno(t, experimentalsys.EINVAL, errno)

		for _, name := range []string{"sub", "sublink", "sub/"} {
			d := openFile(t, fx.fs, name, experimentalsys.O_DIRECTORY, 0)
			isDir, errno := d.IsDir()
			requireErrno(t, 0, errno)
			must.True(t, isDir)
		}
	})

	t.Run("O_NOFOLLOW", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			flag experimentalsys.Oflag
			want experimentalsys.Errno
		}{
			{"inner", experimentalsys.O_RDONLY, experimentalsys.ELOOP},
			{"sublink", experimentalsys.O_RDONLY | experimentalsys.O_DIRECTORY, experimentalsys.ELOOP},
			{"inner", experimentalsys.O_CREAT | experimentalsys.O_WRONLY, experimentalsys.ELOOP},
			{"a.txt", experimentalsys.O_RDONLY, 0},
			{"sub", experimentalsys.O_RDONLY | experimentalsys.O_DIRECTORY, 0},
			{"sublink/b.txt", experimentalsys.O_RDONLY, 0}, // only the last component is not followed
			{"nofollow-new", experimentalsys.O_CREAT | experimentalsys.O_WRONLY, 0},
			{"missing", experimentalsys.O_RDONLY, experimentalsys.ENOENT},
		} {
			f, errno := fx.fs.OpenFile(tc.name, tc.flag|experimentalsys.O_NOFOLLOW, 0o644)
			requireErrno(t, tc.want, errno)
			if errno == 0 {
				requireErrno(t, 0, f.Close())
			}
		}
		// ELOOP did not write through the link.
		must.EqOp(t, aText, readHost(t, filepath.Join(fx.mount, "a.txt")))
	})

	t.Run("O_TRUNC", func(t *testing.T) {
		must.NoError(t, os.WriteFile(filepath.Join(fx.mount, "trunc.txt"), []byte("long content"), 0o644))
		f := openFile(t, fx.fs, "trunc.txt", experimentalsys.O_WRONLY|experimentalsys.O_TRUNC, 0)
		st, errno := f.Stat()
		requireErrno(t, 0, errno)
		must.EqOp(t, int64(0), st.Size)
	})

	t.Run("sync flags", func(t *testing.T) {
		for i, flag := range []experimentalsys.Oflag{experimentalsys.O_SYNC, experimentalsys.O_DSYNC, experimentalsys.O_RSYNC} {
			name := "sub/sync" + string(rune('0'+i))
			f := openFile(t, fx.fs, name, flag|experimentalsys.O_CREAT|experimentalsys.O_RDWR, 0o644)
			_, errno := f.Write([]byte("x"))
			requireErrno(t, 0, errno)
			requireErrno(t, 0, f.Sync())
			requireErrno(t, 0, f.Datasync())
		}
	})

	t.Run("O_NONBLOCK", func(t *testing.T) {
		f := openFile(t, fx.fs, "a.txt", experimentalsys.O_RDONLY|experimentalsys.O_NONBLOCK, 0)
		pf := f.(experimentalsys.PollableFile)
		must.True(t, pf.IsNonblock())
		must.EqOp(t, aText, readAll(t, f)) // regular files never say EAGAIN
		requireErrno(t, 0, pf.SetNonblock(false))
		must.False(t, pf.IsNonblock())
		requireErrno(t, 0, pf.SetNonblock(true))
		must.True(t, pf.IsNonblock())

		ready, errno := pf.Poll(experimentalsys.POLLIN|experimentalsys.POLLOUT, 0)
		requireErrno(t, 0, errno)
		must.True(t, ready)
	})
}

func TestStatAndLstat(t *testing.T) {
	fx := newFixture(t, false)

	host, err := os.Stat(filepath.Join(fx.mount, "a.txt"))
	must.NoError(t, err)

	st, errno := fx.fs.Stat("a.txt")
	requireErrno(t, 0, errno)
	must.EqOp(t, int64(len(aText)), st.Size)
	must.True(t, st.Mode.IsRegular())
	must.EqOp(t, host.ModTime().UnixNano(), st.Mtim)

	viaLink, errno := fx.fs.Stat("inner")
	requireErrno(t, 0, errno)
	must.EqOp(t, st.Ino, viaLink.Ino)
	must.EqOp(t, st.Dev, viaLink.Dev)

	link, errno := fx.fs.Lstat("inner")
	requireErrno(t, 0, errno)
	must.EqOp(t, fs.ModeSymlink, link.Mode.Type())
	must.NotEq(t, st.Ino, link.Ino)

	_, errno = fx.fs.Stat("missing")
	requireErrno(t, experimentalsys.ENOENT, errno)
	_, errno = fx.fs.Lstat("missing")
	requireErrno(t, experimentalsys.ENOENT, errno)
	_, errno = fx.fs.Stat("a.txt/x")
	requireErrno(t, experimentalsys.ENOTDIR, errno)
}

func TestMkdirRmdir(t *testing.T) {
	fx := newFixture(t, false)

	requireErrno(t, 0, fx.fs.Mkdir("d", fs.ModeDir|0o700))
	st, errno := fx.fs.Stat("d")
	requireErrno(t, 0, errno)
	must.True(t, st.Mode.IsDir())
	must.EqOp(t, fs.FileMode(0o700), st.Mode.Perm())

	requireErrno(t, experimentalsys.EEXIST, fx.fs.Mkdir("d", 0o700))
	requireErrno(t, experimentalsys.EEXIST, fx.fs.Mkdir("a.txt", 0o700))
	requireErrno(t, experimentalsys.ENOENT, fx.fs.Mkdir("missing/d", 0o700))

	requireErrno(t, 0, fx.fs.Mkdir("d/e", 0o700))
	requireErrno(t, experimentalsys.ENOTEMPTY, fx.fs.Rmdir("d"))
	requireErrno(t, experimentalsys.ENOTDIR, fx.fs.Rmdir("a.txt"))
	requireErrno(t, experimentalsys.ENOENT, fx.fs.Rmdir("missing"))
	// rmdir does not follow a symlink, and must not remove its target.
	requireErrno(t, experimentalsys.ENOTDIR, fx.fs.Rmdir("sublink"))
	must.DirExists(t, filepath.Join(fx.mount, "sub"))
	must.FileExists(t, filepath.Join(fx.mount, "a.txt"))

	// An open directory can still be removed.
	d := openFile(t, fx.fs, "d/e", experimentalsys.O_DIRECTORY, 0)
	requireErrno(t, 0, fx.fs.Rmdir("d/e"))
	requireErrno(t, 0, fx.fs.Rmdir("d"))
	must.DirNotExists(t, filepath.Join(fx.mount, "d"))
	// Reading a removed directory yields nothing; Linux says ENOENT, which
	// the Readdir contract allows.
	dirents, errno := d.Readdir(-1)
	if errno != 0 {
		requireErrno(t, experimentalsys.ENOENT, errno)
	}
	must.SliceEmpty(t, dirents)
}

func TestUnlink(t *testing.T) {
	fx := newFixture(t, false)

	requireErrno(t, 0, fx.fs.Unlink("sub/b.txt"))
	must.FileNotExists(t, filepath.Join(fx.mount, "sub", "b.txt"))

	requireErrno(t, experimentalsys.ENOENT, fx.fs.Unlink("sub/b.txt"))
	// Even an empty directory is not unlink's to remove.
	requireErrno(t, 0, fx.fs.Mkdir("empty", 0o755))
	requireErrno(t, experimentalsys.EISDIR, fx.fs.Unlink("empty"))
	must.DirExists(t, filepath.Join(fx.mount, "empty"))
	requireErrno(t, experimentalsys.ENOTDIR, fx.fs.Unlink("a.txt/"))

	// A symlink is removed itself, never its target.
	requireErrno(t, 0, fx.fs.Unlink("sublink"))
	requireErrno(t, 0, fx.fs.Unlink("inner"))
	requireErrno(t, 0, fx.fs.Unlink("rel"))
	must.DirExists(t, filepath.Join(fx.mount, "sub"))
	must.FileExists(t, filepath.Join(fx.mount, "a.txt"))
	fx.requireSecretUntouched(t)
}

func TestRename(t *testing.T) {
	type setup func(t *testing.T, mount string)
	file := func(name, content string) setup {
		return func(t *testing.T, mount string) {
			must.NoError(t, os.WriteFile(filepath.Join(mount, name), []byte(content), 0o644))
		}
	}
	dir := func(name string) setup {
		return func(t *testing.T, mount string) {
			must.NoError(t, os.MkdirAll(filepath.Join(mount, name), 0o755))
		}
	}

	cases := []struct {
		name     string
		setup    []setup
		from, to string
		want     experimentalsys.Errno
		// check runs on success and failure alike.
		check func(t *testing.T, mount string)
	}{
		{
			name: "file to new name", setup: []setup{file("f1", "1")}, from: "f1", to: "f2",
			check: func(t *testing.T, m string) {
				must.FileNotExists(t, filepath.Join(m, "f1"))
				must.EqOp(t, "1", readHost(t, filepath.Join(m, "f2")))
			},
		},
		{
			name: "file over file", setup: []setup{file("f1", "1"), file("f2", "2")}, from: "f1", to: "f2",
			check: func(t *testing.T, m string) { must.EqOp(t, "1", readHost(t, filepath.Join(m, "f2"))) },
		},
		{
			name: "file to itself", setup: []setup{file("f1", "1")}, from: "f1", to: "f1",
			check: func(t *testing.T, m string) { must.EqOp(t, "1", readHost(t, filepath.Join(m, "f1"))) },
		},
		{
			name: "dir to new name", setup: []setup{dir("d1/x")}, from: "d1", to: "d2",
			check: func(t *testing.T, m string) { must.DirExists(t, filepath.Join(m, "d2", "x")) },
		},
		{
			name: "dir over empty dir", setup: []setup{dir("d1/x"), dir("d2")}, from: "d1", to: "d2",
			check: func(t *testing.T, m string) {
				must.DirNotExists(t, filepath.Join(m, "d1"))
				must.DirExists(t, filepath.Join(m, "d2", "x"))
			},
		},
		{
			name: "dir over non-empty dir", setup: []setup{dir("d1"), dir("d2/y")}, from: "d1", to: "d2",
			want: experimentalsys.ENOTEMPTY,
			check: func(t *testing.T, m string) {
				must.DirExists(t, filepath.Join(m, "d1"))
				must.DirExists(t, filepath.Join(m, "d2", "y"))
			},
		},
		{
			name: "dir to itself", setup: []setup{dir("d1/x")}, from: "d1", to: "d1",
			check: func(t *testing.T, m string) { must.DirExists(t, filepath.Join(m, "d1", "x")) },
		},
		{
			name: "dir over file", setup: []setup{dir("d1"), file("f1", "1")}, from: "d1", to: "f1",
			want: experimentalsys.ENOTDIR,
		},
		{
			name: "file over dir", setup: []setup{file("f1", "1"), dir("d1")}, from: "f1", to: "d1",
			want:  experimentalsys.EISDIR,
			check: func(t *testing.T, m string) { must.DirExists(t, filepath.Join(m, "d1")) },
		},
		{
			name: "dir into its own empty subdirectory", setup: []setup{dir("d1/inner")}, from: "d1", to: "d1/inner",
			want:  experimentalsys.EINVAL,
			check: func(t *testing.T, m string) { must.DirExists(t, filepath.Join(m, "d1", "inner")) },
		},
		{
			name: "missing source", setup: []setup{file("f1", "1")}, from: "nope", to: "f1",
			want:  experimentalsys.ENOENT,
			check: func(t *testing.T, m string) { must.FileExists(t, filepath.Join(m, "f1")) },
		},
		{
			name: "missing source onto dir", setup: []setup{dir("d1")}, from: "nope", to: "d1",
			want: experimentalsys.ENOENT,
		},
		{
			name: "symlink is renamed, not its target", from: "inner", to: "inner2",
			check: func(t *testing.T, m string) {
				must.FileExists(t, filepath.Join(m, "a.txt"))
				target, err := os.Readlink(filepath.Join(m, "inner2"))
				must.NoError(t, err)
				must.EqOp(t, "a.txt", target)
			},
		},
		{
			name: "into a subdirectory", from: "a.txt", to: "sub/a.txt",
			check: func(t *testing.T, m string) { must.EqOp(t, aText, readHost(t, filepath.Join(m, "sub", "a.txt"))) },
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture(t, false)
			for _, s := range tc.setup {
				s(t, fx.mount)
			}
			requireErrno(t, tc.want, fx.fs.Rename(tc.from, tc.to))
			if tc.check != nil {
				tc.check(t, fx.mount)
			}
		})
	}
}

func TestLink(t *testing.T) {
	fx := newFixture(t, false)

	requireErrno(t, 0, fx.fs.Link("a.txt", "sub/hard"))
	a, errno := fx.fs.Stat("a.txt")
	requireErrno(t, 0, errno)
	h, errno := fx.fs.Stat("sub/hard")
	requireErrno(t, 0, errno)
	must.EqOp(t, a.Ino, h.Ino)
	must.EqOp(t, uint64(2), h.Nlink)

	requireErrno(t, experimentalsys.EEXIST, fx.fs.Link("a.txt", "sub/hard"))
	requireErrno(t, experimentalsys.EEXIST, fx.fs.Link("a.txt", "."))
	requireErrno(t, experimentalsys.EEXIST, fx.fs.Link("a.txt", "/"))
	requireErrno(t, experimentalsys.ENOENT, fx.fs.Link("missing", "x"))
}

func TestSymlinkReadlink(t *testing.T) {
	fx := newFixture(t, false)

	requireErrno(t, 0, fx.fs.Symlink("sub/b.txt", "l"))
	target, errno := fx.fs.Readlink("l")
	requireErrno(t, 0, errno)
	must.EqOp(t, "sub/b.txt", target)
	must.EqOp(t, bText, readWhole(t, fx.fs, "l"))

	// Dangling targets are allowed.
	requireErrno(t, 0, fx.fs.Symlink("not-yet", "dangling"))
	_, errno = fx.fs.OpenFile("dangling", experimentalsys.O_RDONLY, 0)
	requireErrno(t, experimentalsys.ENOENT, errno)

	requireErrno(t, experimentalsys.EEXIST, fx.fs.Symlink("x", "l"))
	requireErrno(t, experimentalsys.EEXIST, fx.fs.Symlink("x", "a.txt"))

	_, errno = fx.fs.Readlink("a.txt")
	requireErrno(t, experimentalsys.EINVAL, errno)
	_, errno = fx.fs.Readlink("missing")
	requireErrno(t, experimentalsys.ENOENT, errno)
}

func TestChmod(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows keeps only the read-only bit")
	}
	fx := newFixture(t, false)

	for _, mode := range []fs.FileMode{0o600, 0o444, 0o755} {
		requireErrno(t, 0, fx.fs.Chmod("a.txt", mode))
		st, errno := fx.fs.Stat("a.txt")
		requireErrno(t, 0, errno)
		must.EqOp(t, mode, st.Mode.Perm())
	}
	// Chmod follows an in-mount symlink to its target.
	requireErrno(t, 0, fx.fs.Chmod("inner", 0o640))
	st, errno := fx.fs.Stat("a.txt")
	requireErrno(t, 0, errno)
	must.EqOp(t, fs.FileMode(0o640), st.Mode.Perm())

	requireErrno(t, experimentalsys.ENOENT, fx.fs.Chmod("missing", 0o600))
}

func TestFSUtimens(t *testing.T) {
	const (
		atim = int64(123*time.Second + 4*time.Microsecond)
		mtim = int64(223*time.Second + 5*time.Microsecond)
	)
	cases := []struct {
		name       string
		atim, mtim int64
	}{
		{"both", atim, mtim},
		{"omit atime", experimentalsys.UTIME_OMIT, mtim},
		{"omit mtime", atim, experimentalsys.UTIME_OMIT},
		{"omit both", experimentalsys.UTIME_OMIT, experimentalsys.UTIME_OMIT},
		{"epoch", 0, 0},
	}
	for _, path := range []struct{ name, set, stat string }{
		{"file", "a.txt", "a.txt"},
		{"dir", "sub", "sub"},
		{"through symlink", "inner", "a.txt"},
	} {
		for _, tc := range cases {
			t.Run(path.name+"/"+tc.name, func(t *testing.T) {
				fx := newFixture(t, false)
				before, errno := fx.fs.Lstat(path.stat)
				requireErrno(t, 0, errno)
				requireErrno(t, 0, fx.fs.Utimens(path.set, tc.atim, tc.mtim))
				after, errno := fx.fs.Lstat(path.stat)
				requireErrno(t, 0, errno)
				requireTimes(t, before.Atim, before.Mtim, tc.atim, tc.mtim, after.Atim, after.Mtim)
			})
		}
	}

	fx := newFixture(t, false)
	requireErrno(t, experimentalsys.ENOENT, fx.fs.Utimens("missing", 0, 0))
}

// requireTimes checks new times: an omitted one is unchanged, a set one is
// what was asked for.
func requireTimes(t *testing.T, oldA, oldM, setA, setM, gotA, gotM int64) {
	t.Helper()
	wantA, wantM := setA, setM
	if setA == experimentalsys.UTIME_OMIT {
		wantA = oldA
	}
	if setM == experimentalsys.UTIME_OMIT {
		wantM = oldM
	}
	must.EqOp(t, wantM, gotM, must.Sprint("mtime"))
	if runtime.GOOS == "linux" || runtime.GOOS == "darwin" {
		// Elsewhere wazero's Stat_t may not carry a real atime.
		must.EqOp(t, wantA, gotA, must.Sprint("atime"))
	}
}

// FS promises to be safe for concurrent use; run under -race.
func TestFS_ConcurrentUse(t *testing.T) {
	fx := newFixture(t, false)
	done := make(chan error, 4)
	for w := 0; w < 4; w++ {
		go func() {
			for i := 0; i < 50; i++ {
				f, errno := fx.fs.OpenFile("inner", experimentalsys.O_RDONLY, 0)
				if errno != 0 {
					done <- errno
					return
				}
				buf := make([]byte, 64)
				if _, errno = f.Read(buf); errno != 0 {
					done <- errno
					return
				}
				_ = f.Close()
				if _, errno = fx.fs.Stat("rel"); errno != experimentalsys.EPERM {
					done <- errno
					return
				}
			}
			done <- nil
		}()
	}
	for w := 0; w < 4; w++ {
		must.NoError(t, <-done)
	}
}
