// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package confinedfs

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/shoenig/test/must"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

func TestFile_ReadPreadSeek(t *testing.T) {
	fx := newFixture(t, false)
	f := openFile(t, fx.fs, "a.txt", experimentalsys.O_RDONLY, 0)

	buf := make([]byte, 5)
	n, errno := f.Read(buf)
	requireErrno(t, 0, errno)
	must.EqOp(t, aText[:5], string(buf[:n]))

	// Pread does not move the offset.
	n, errno = f.Pread(buf, 6)
	requireErrno(t, 0, errno)
	must.EqOp(t, aText[6:11], string(buf[:n]))
	off, errno := f.Seek(0, io.SeekCurrent)
	requireErrno(t, 0, errno)
	must.EqOp(t, int64(5), off)

	// Reading at or past the end is zero bytes and no error.
	n, errno = f.Pread(buf, int64(len(aText)))
	requireErrno(t, 0, errno)
	must.EqOp(t, 0, n)
	n, errno = f.Pread(buf, int64(len(aText)-2))
	requireErrno(t, 0, errno)
	must.EqOp(t, aText[len(aText)-2:], string(buf[:n]))
	_, errno = f.Pread(buf, -1)
	requireErrno(t, experimentalsys.EINVAL, errno)

	off, errno = f.Seek(-3, io.SeekEnd)
	requireErrno(t, 0, errno)
	must.EqOp(t, int64(len(aText)-3), off)
	must.EqOp(t, aText[len(aText)-3:], readAll(t, f))

	off, errno = f.Seek(2, io.SeekStart)
	requireErrno(t, 0, errno)
	must.EqOp(t, int64(2), off)
	off, errno = f.Seek(3, io.SeekCurrent)
	requireErrno(t, 0, errno)
	must.EqOp(t, int64(5), off)

	_, errno = f.Seek(-100, io.SeekCurrent)
	requireErrno(t, experimentalsys.EINVAL, errno)
	_, errno = f.Seek(0, 3)
	requireErrno(t, experimentalsys.EINVAL, errno)

	n, errno = f.Read(nil)
	requireErrno(t, 0, errno)
	must.EqOp(t, 0, n)

	// Not open for writing.
	_, errno = f.Write([]byte("x"))
	requireErrno(t, experimentalsys.EBADF, errno)
	_, errno = f.Pwrite([]byte("x"), 0)
	requireErrno(t, experimentalsys.EBADF, errno)
}

func TestFile_WritePwriteTruncate(t *testing.T) {
	fx := newFixture(t, false)
	host := filepath.Join(fx.mount, "w.txt")
	f := openFile(t, fx.fs, "w.txt", experimentalsys.O_CREAT|experimentalsys.O_RDWR, 0o644)

	n, errno := f.Write([]byte("0123456789"))
	requireErrno(t, 0, errno)
	must.EqOp(t, 10, n)

	// Pwrite does not move the offset.
	n, errno = f.Pwrite([]byte("ab"), 2)
	requireErrno(t, 0, errno)
	must.EqOp(t, 2, n)
	off, errno := f.Seek(0, io.SeekCurrent)
	requireErrno(t, 0, errno)
	must.EqOp(t, int64(10), off)
	must.EqOp(t, "01ab456789", readHost(t, host))

	_, errno = f.Pwrite([]byte("x"), -1)
	requireErrno(t, experimentalsys.EINVAL, errno)
	n, errno = f.Write(nil)
	requireErrno(t, 0, errno)
	must.EqOp(t, 0, n)

	requireErrno(t, 0, f.Truncate(4))
	must.EqOp(t, "01ab", readHost(t, host))
	requireErrno(t, 0, f.Truncate(6))
	must.EqOp(t, "01ab\x00\x00", readHost(t, host))
	requireErrno(t, experimentalsys.EINVAL, f.Truncate(-1))

	st, errno := f.Stat()
	requireErrno(t, 0, errno)
	must.EqOp(t, int64(6), st.Size)

	// Seeking past the end and writing leaves a hole.
	_, errno = f.Seek(8, io.SeekStart)
	requireErrno(t, 0, errno)
	_, errno = f.Write([]byte("z"))
	requireErrno(t, 0, errno)
	must.EqOp(t, "01ab\x00\x00\x00\x00z", readHost(t, host))

	requireErrno(t, 0, f.Sync())
	requireErrno(t, 0, f.Datasync())

	// Not open for reading.
	wo := openFile(t, fx.fs, "w.txt", experimentalsys.O_WRONLY, 0)
	_, errno = wo.Read(make([]byte, 1))
	requireErrno(t, experimentalsys.EBADF, errno)
	_, errno = wo.Pread(make([]byte, 1), 0)
	requireErrno(t, experimentalsys.EBADF, errno)
}

// appendModes covers both ways append mode can work: on the descriptor (the
// Linux path) and emulated in Write (the path elsewhere), so both are tested
// on Linux.
var appendModes = []struct {
	name     string
	inKernel bool
}{
	{"kernel", kernelAppend},
	{"emulated", false},
}

func TestFile_Append(t *testing.T) {
	for _, mode := range appendModes {
		t.Run(mode.name, func(t *testing.T) {
			fx := newFixture(t, false)
			host := filepath.Join(fx.mount, "log.txt")
			must.NoError(t, os.WriteFile(host, []byte("start|"), 0o644))

			f := openFile(t, fx.fs, "log.txt", experimentalsys.O_RDWR|experimentalsys.O_APPEND, 0)
			must.True(t, f.IsAppend())
			requireErrno(t, 0, f.(*file).setAppend(true, mode.inKernel))

			// Writes land at the end even after seeking back.
			_, errno := f.Seek(0, io.SeekStart)
			requireErrno(t, 0, errno)
			_, errno = f.Write([]byte("one|"))
			requireErrno(t, 0, errno)
			// Another writer extends the file; append follows the real end.
			must.NoError(t, appendHost(host, "other|"))
			_, errno = f.Write([]byte("two|"))
			requireErrno(t, 0, errno)
			must.EqOp(t, "start|one|other|two|", readHost(t, host))

			// Switching append off writes at the current offset again.
			requireErrno(t, 0, f.(*file).setAppend(false, mode.inKernel))
			must.False(t, f.IsAppend())
			_, errno = f.Seek(0, io.SeekStart)
			requireErrno(t, 0, errno)
			_, errno = f.Write([]byte("START"))
			requireErrno(t, 0, errno)
			must.EqOp(t, "START|one|other|two|", readHost(t, host))

			// And back on.
			requireErrno(t, 0, f.(*file).setAppend(true, mode.inKernel))
			must.True(t, f.IsAppend())
			_, errno = f.Write([]byte("end"))
			requireErrno(t, 0, errno)
			must.EqOp(t, "START|one|other|two|end", readHost(t, host))
		})
	}
}

func appendHost(name, text string) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(text); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// SetAppend must act on the open file, not on whatever its name now means:
// re-opening by name would follow a symlink planted in its place.
func TestFile_SetAppendDoesNotReopenByName(t *testing.T) {
	fx := newFixture(t, false)
	host := filepath.Join(fx.mount, "data.txt")
	must.NoError(t, os.WriteFile(host, []byte("data|"), 0o644))

	f := openFile(t, fx.fs, "data.txt", experimentalsys.O_WRONLY, 0)
	ino, errno := f.Ino()
	requireErrno(t, 0, errno)

	// The guest moves the file away and puts an escaping symlink (and, for
	// good measure, an in-mount one) where it was.
	requireErrno(t, 0, fx.fs.Rename("data.txt", "moved.txt"))
	requireErrno(t, 0, fx.fs.Symlink("../outside/secret.txt", "data.txt"))

	requireErrno(t, 0, f.SetAppend(true))
	_, errno = f.Write([]byte("appended"))
	requireErrno(t, 0, errno)
	requireErrno(t, 0, f.SetAppend(false))
	_, errno = f.Pwrite([]byte("D"), 0)
	requireErrno(t, 0, errno)

	after, errno := f.Ino()
	requireErrno(t, 0, errno)
	must.EqOp(t, ino, after)
	must.EqOp(t, "Data|appended", readHost(t, filepath.Join(fx.mount, "moved.txt")))
	fx.requireSecretUntouched(t)
}

func TestFile_Readdir(t *testing.T) {
	fx := newFixture(t, false)
	for _, name := range []string{"f0", "f1", "f2", "f3", "f4"} {
		must.NoError(t, os.WriteFile(filepath.Join(fx.mount, "sub", name), nil, 0o644))
	}
	must.NoError(t, os.Mkdir(filepath.Join(fx.mount, "sub", "dir"), 0o755))
	// sub now holds: b.txt, up (symlink), f0..f4, dir.
	want := []string{"b.txt", "dir", "f0", "f1", "f2", "f3", "f4", "up"}

	d := openFile(t, fx.fs, "sub", experimentalsys.O_RDONLY|experimentalsys.O_DIRECTORY, 0)

	readInBatches := func(t *testing.T) []experimentalsys.Dirent {
		t.Helper()
		var all []experimentalsys.Dirent
		for calls := 0; ; calls++ {
			must.Less(t, 20, calls, must.Sprint("Readdir never ran dry"))
			batch, errno := d.Readdir(3)
			requireErrno(t, 0, errno)
			must.LessEq(t, 3, len(batch))
			if len(batch) == 0 {
				return all
			}
			all = append(all, batch...)
		}
	}
	names := func(dirents []experimentalsys.Dirent) []string {
		out := make([]string, 0, len(dirents))
		for _, de := range dirents {
			out = append(out, de.Name)
		}
		slices.Sort(out)
		return out
	}

	first := readInBatches(t)
	must.Eq(t, want, names(first))

	// Exhausted stays exhausted.
	again, errno := d.Readdir(3)
	requireErrno(t, 0, errno)
	must.SliceEmpty(t, again)

	for _, de := range first {
		st, errno := fx.fs.Lstat("sub/" + de.Name)
		requireErrno(t, 0, errno)
		must.EqOp(t, st.Ino, de.Ino, must.Sprint(de.Name))
		must.NotEqOp(t, 0, de.Ino)
		must.EqOp(t, st.Mode.Type(), de.Type, must.Sprint(de.Name))
		switch de.Name {
		case "dir":
			must.EqOp(t, fs.ModeDir, de.Type)
		case "up":
			must.EqOp(t, fs.ModeSymlink, de.Type)
		default:
			must.EqOp(t, fs.FileMode(0), de.Type)
		}
	}

	// A rewind, as fd_readdir does for cookie 0, starts over and sees
	// entries added in the meantime.
	must.NoError(t, os.WriteFile(filepath.Join(fx.mount, "sub", "late"), nil, 0o644))
	off, errno := d.Seek(0, io.SeekStart)
	requireErrno(t, 0, errno)
	must.EqOp(t, int64(0), off)
	must.Eq(t, sortedCopy(append(slices.Clone(want), "late")), names(readInBatches(t)))

	// n <= 0 reads everything left.
	_, errno = d.Seek(0, io.SeekStart)
	requireErrno(t, 0, errno)
	rest, errno := d.Readdir(-1)
	requireErrno(t, 0, errno)
	must.SliceLen(t, len(want)+1, rest)

	// Directories only rewind.
	_, errno = d.Seek(1, io.SeekStart)
	requireErrno(t, experimentalsys.EISDIR, errno)
	_, errno = d.Seek(0, io.SeekEnd)
	requireErrno(t, experimentalsys.EISDIR, errno)

	// Readdir on a file is EBADF.
	f := openFile(t, fx.fs, "a.txt", experimentalsys.O_RDONLY, 0)
	_, errno = f.Readdir(1)
	requireErrno(t, experimentalsys.EBADF, errno)
}

func sortedCopy(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}

func TestFile_DirectoryRefusesFileOperations(t *testing.T) {
	fx := newFixture(t, false)
	d := openFile(t, fx.fs, "sub", experimentalsys.O_RDONLY, 0)

	buf := make([]byte, 4)
	_, errno := d.Read(buf)
	requireErrno(t, experimentalsys.EISDIR, errno)
	_, errno = d.Pread(buf, 0)
	requireErrno(t, experimentalsys.EISDIR, errno)
	_, errno = d.Write(buf)
	requireErrno(t, experimentalsys.EISDIR, errno)
	_, errno = d.Pwrite(buf, 0)
	requireErrno(t, experimentalsys.EISDIR, errno)
	requireErrno(t, experimentalsys.EISDIR, d.Truncate(0))
	requireErrno(t, experimentalsys.EISDIR, d.SetAppend(true))
	must.False(t, d.IsAppend())

	// What fd_fdstat_set_flags does to a directory: SetNonblock must work.
	pf := d.(experimentalsys.PollableFile)
	requireErrno(t, 0, pf.SetNonblock(false))
	requireErrno(t, 0, d.Sync())
}

func TestFile_StatDevIno(t *testing.T) {
	fx := newFixture(t, false)
	f := openFile(t, fx.fs, "inner", experimentalsys.O_RDONLY, 0)

	want, errno := fx.fs.Stat("a.txt")
	requireErrno(t, 0, errno)

	st, errno := f.Stat()
	requireErrno(t, 0, errno)
	must.EqOp(t, want.Ino, st.Ino)
	must.EqOp(t, want.Size, st.Size)
	must.True(t, st.Mode.IsRegular())

	dev, errno := f.Dev()
	requireErrno(t, 0, errno)
	must.EqOp(t, want.Dev, dev)
	ino, errno := f.Ino()
	requireErrno(t, 0, errno)
	must.EqOp(t, want.Ino, ino)
	isDir, errno := f.IsDir()
	requireErrno(t, 0, errno)
	must.False(t, isDir)
}

func TestFile_Utimens(t *testing.T) {
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
	}
	for _, tc := range cases {
		for _, name := range []string{"a.txt", "sub"} {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				fx := newFixture(t, false)
				f := openFile(t, fx.fs, name, experimentalsys.O_RDONLY, 0)
				before, errno := f.Stat()
				requireErrno(t, 0, errno)
				requireErrno(t, 0, f.Utimens(tc.atim, tc.mtim))
				after, errno := f.Stat()
				requireErrno(t, 0, errno)
				requireTimes(t, before.Atim, before.Mtim, tc.atim, tc.mtim, after.Atim, after.Mtim)
			})
		}
	}

	// Linux sets times through the descriptor, which follows the file
	// through a rename. Elsewhere (darwin) there is no such call: times go
	// through the name the file was opened by, and a file renamed since
	// answers ENOENT rather than touch whatever has that name now.
	t.Run("after rename", func(t *testing.T) {
		fx := newFixture(t, false)
		f := openFile(t, fx.fs, "a.txt", experimentalsys.O_RDONLY, 0)
		before, errno := fx.fs.Stat("a.txt")
		requireErrno(t, 0, errno)
		requireErrno(t, 0, fx.fs.Rename("a.txt", "b.txt"))
		if runtime.GOOS == "linux" {
			requireErrno(t, 0, f.Utimens(atim, mtim))
			st, errno := fx.fs.Stat("b.txt")
			requireErrno(t, 0, errno)
			must.EqOp(t, mtim, st.Mtim)
			return
		}
		requireErrno(t, experimentalsys.ENOENT, f.Utimens(atim, mtim))
		st, errno := fx.fs.Stat("b.txt")
		requireErrno(t, 0, errno)
		must.EqOp(t, before.Mtim, st.Mtim)
	})
}

func TestFile_Close(t *testing.T) {
	fx := newFixture(t, false)
	f, errno := fx.fs.OpenFile("a.txt", experimentalsys.O_RDWR, 0)
	requireErrno(t, 0, errno)
	d, errno := fx.fs.OpenFile("sub", experimentalsys.O_RDONLY, 0)
	requireErrno(t, 0, errno)

	for _, file := range []experimentalsys.File{f, d} {
		requireErrno(t, 0, file.Close())
		requireErrno(t, 0, file.Close()) // idempotent

		buf := make([]byte, 1)
		_, errno = file.Read(buf)
		requireErrno(t, experimentalsys.EBADF, errno)
		_, errno = file.Pread(buf, 0)
		requireErrno(t, experimentalsys.EBADF, errno)
		_, errno = file.Write(buf)
		requireErrno(t, experimentalsys.EBADF, errno)
		_, errno = file.Pwrite(buf, 0)
		requireErrno(t, experimentalsys.EBADF, errno)
		_, errno = file.Seek(0, io.SeekStart)
		requireErrno(t, experimentalsys.EBADF, errno)
		_, errno = file.Stat()
		requireErrno(t, experimentalsys.EBADF, errno)
		_, errno = file.Readdir(1)
		requireErrno(t, experimentalsys.EBADF, errno)
		requireErrno(t, experimentalsys.EBADF, file.Truncate(0))
		requireErrno(t, experimentalsys.EBADF, file.Sync())
		requireErrno(t, experimentalsys.EBADF, file.Datasync())
		requireErrno(t, experimentalsys.EBADF, file.Utimens(0, 0))
		requireErrno(t, experimentalsys.EBADF, file.SetAppend(false))
		pf := file.(experimentalsys.PollableFile)
		requireErrno(t, experimentalsys.EBADF, pf.SetNonblock(true))
		_, errno = pf.Poll(experimentalsys.POLLIN, 0)
		requireErrno(t, experimentalsys.EBADF, errno)
	}

	// Files opened before the FS is closed stay usable.
	g := openFile(t, fx.fs, "a.txt", experimentalsys.O_RDONLY, 0)
	must.NoError(t, fx.fs.Close())
	must.EqOp(t, aText, readAll(t, g))
}
