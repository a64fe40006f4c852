// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package confinedfs

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/shoenig/test/must"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

func TestReadOnly_MutationsFailWithEROFS(t *testing.T) {
	open := func(name string, flag experimentalsys.Oflag) func(*FS) experimentalsys.Errno {
		return func(f *FS) experimentalsys.Errno {
			file, errno := f.OpenFile(name, flag, 0o644)
			if errno == 0 {
				_ = file.Close()
			}
			return errno
		}
	}
	cases := []struct {
		name string
		op   func(*FS) experimentalsys.Errno
	}{
		{"open write-only", open("a.txt", experimentalsys.O_WRONLY)},
		{"open read-write", open("a.txt", experimentalsys.O_RDWR)},
		{"open append", open("a.txt", experimentalsys.O_RDONLY|experimentalsys.O_APPEND)},
		{"open create existing", open("a.txt", experimentalsys.O_RDONLY|experimentalsys.O_CREAT)},
		{"open create new", open("new.txt", experimentalsys.O_CREAT|experimentalsys.O_WRONLY)},
		{"open truncate", open("a.txt", experimentalsys.O_RDONLY|experimentalsys.O_TRUNC)},
		{"mkdir", func(f *FS) experimentalsys.Errno { return f.Mkdir("d", 0o755) }},
		{"chmod", func(f *FS) experimentalsys.Errno { return f.Chmod("a.txt", 0o777) }},
		{"rename", func(f *FS) experimentalsys.Errno { return f.Rename("a.txt", "b.txt") }},
		{"rmdir", func(f *FS) experimentalsys.Errno { return f.Rmdir("sub") }},
		{"unlink", func(f *FS) experimentalsys.Errno { return f.Unlink("a.txt") }},
		{"link", func(f *FS) experimentalsys.Errno { return f.Link("a.txt", "hard") }},
		{"symlink", func(f *FS) experimentalsys.Errno { return f.Symlink("a.txt", "soft") }},
		{"utimens", func(f *FS) experimentalsys.Errno { return f.Utimens("a.txt", 0, 0) }},
	}

	fx := newFixture(t, true)
	snapshot := snapshotTree(t, fx.mount)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			requireErrno(t, experimentalsys.EROFS, tc.op(fx.fs))
			must.Eq(t, snapshot, snapshotTree(t, fx.mount))
		})
	}
}

func TestReadOnly_FileMutationsFailWithEROFS(t *testing.T) {
	fx := newFixture(t, true)
	snapshot := snapshotTree(t, fx.mount)
	f := openFile(t, fx.fs, "a.txt", experimentalsys.O_RDONLY, 0)

	_, errno := f.Write([]byte("x"))
	requireErrno(t, experimentalsys.EROFS, errno)
	_, errno = f.Pwrite([]byte("x"), 0)
	requireErrno(t, experimentalsys.EROFS, errno)
	requireErrno(t, experimentalsys.EROFS, f.Truncate(0))
	requireErrno(t, experimentalsys.EROFS, f.Utimens(0, 0))
	requireErrno(t, experimentalsys.EROFS, f.SetAppend(true))
	must.False(t, f.IsAppend())
	// Turning append off asks for nothing, as fd_fdstat_set_flags(0) does.
	requireErrno(t, 0, f.SetAppend(false))

	must.Eq(t, snapshot, snapshotTree(t, fx.mount))
}

func TestReadOnly_ReadsWork(t *testing.T) {
	fx := newFixture(t, true)

	must.EqOp(t, aText, readWhole(t, fx.fs, "a.txt"))
	must.EqOp(t, aText, readWhole(t, fx.fs, "inner"))
	must.EqOp(t, bText, readWhole(t, fx.fs, "sublink/b.txt"))

	f := openFile(t, fx.fs, "a.txt", experimentalsys.O_RDONLY|experimentalsys.O_NONBLOCK, 0)
	buf := make([]byte, 4)
	n, errno := f.Pread(buf, 6)
	requireErrno(t, 0, errno)
	must.EqOp(t, aText[6:10], string(buf[:n]))
	_, errno = f.Seek(2, io.SeekStart)
	requireErrno(t, 0, errno)
	requireErrno(t, 0, f.Sync())

	st, errno := fx.fs.Stat("a.txt")
	requireErrno(t, 0, errno)
	must.EqOp(t, int64(len(aText)), st.Size)
	_, errno = fx.fs.Lstat("inner")
	requireErrno(t, 0, errno)
	target, errno := fx.fs.Readlink("inner")
	requireErrno(t, 0, errno)
	must.EqOp(t, "a.txt", target)

	d := openFile(t, fx.fs, ".", experimentalsys.O_RDONLY|experimentalsys.O_DIRECTORY, 0)
	dirents, errno := d.Readdir(-1)
	requireErrno(t, 0, errno)
	must.SliceLen(t, 7, dirents) // a.txt sub inner sublink rel abs dirlink

	// Confinement holds read-only too.
	_, errno = fx.fs.OpenFile("rel", experimentalsys.O_RDONLY, 0)
	requireErrno(t, experimentalsys.EPERM, errno)
	_, errno = fx.fs.Stat("../outside/secret.txt")
	requireErrno(t, experimentalsys.EPERM, errno)
}

// snapshotTree records every name, mode, size and modification time under
// dir, to show an operation changed nothing.
func snapshotTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		out[rel] = info.Mode().String() + " " + info.ModTime().String() + " " + strconv.FormatInt(info.Size(), 10)
		return nil
	})
	must.NoError(t, err)
	return out
}
