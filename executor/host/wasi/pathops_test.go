// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/shoenig/test/must"
)

// dirWithout opens the mount's sub with every right but dropped.
func (h *host) dirWithout(m mount, dropped uint64) uint32 {
	h.t.Helper()
	fd := h.mustOpen(m.fd, 0, "sub", oflagDirectory, rightsDir, rightsAll, 0)
	h.expect(errnoSuccess, "fd_fdstat_set_rights", fd, rightsDir&^dropped, rightsDir|rightsFile)
	return fd
}

// TestPathCreateRemoveDirectory: path_create_directory makes a directory
// (a trailing slash allowed), not over anything, not outside;
// path_remove_directory removes an empty directory (a trailing slash
// allowed), no file, no symlink, nothing outside.
func TestPathCreateRemoveDirectory(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")

	h.expectPath(errnoSuccess, "path_create_directory", m.fd, "d")
	fi, err := os.Lstat(m.host("d"))
	must.NoError(t, err)
	must.True(t, fi.IsDir())
	h.expectPath(errnoSuccess, "path_create_directory", m.fd, "d2/")
	must.True(t, m.exists("d2"))
	h.expectPath(errnoSuccess, "path_create_directory", m.fd, "d/./nested")
	must.True(t, m.exists("d/nested"))
	h.expectPath(errnoExist, "path_create_directory", m.fd, "d")
	h.expectPath(errnoExist, "path_create_directory", m.fd, "file")
	h.expectPath(errnoExist, "path_create_directory", m.fd, "link_file")
	h.expectPath(errnoNoent, "path_create_directory", m.fd, "missing/d")
	h.expectPath(errnoNotcapable, "path_create_directory", m.fd, "../d")
	h.expectPath(errnoNotcapable, "path_create_directory", m.fd, "/d")
	must.NotEq(t, errnoSuccess, h.pathCall("path_create_directory", m.fd, "link_out_dir/d"), must.Sprint("a directory made through a symlink out"))
	must.NotEq(t, errnoSuccess, h.pathCall("path_create_directory", m.fd, "link_out_new"), must.Sprint("a directory made over a dangling symlink out"))
	h.expectPath(errnoBadf, "path_create_directory", 99, "d3")
	h.expect(errnoFault, "path_create_directory", m.fd, pageSize-1, 2)
	noMkdir := h.dirWithout(m, rightPathCreateDirectory)
	h.expectPath(errnoNotcapable, "path_create_directory", noMkdir, "d")
	must.False(t, m.exists("sub/d"))

	h.expectPath(errnoNotempty, "path_remove_directory", m.fd, "d")
	h.expectPath(errnoSuccess, "path_remove_directory", m.fd, "d/nested/")
	h.expectPath(errnoSuccess, "path_remove_directory", m.fd, "d")
	must.False(t, m.exists("d"))
	h.expectPath(errnoNoent, "path_remove_directory", m.fd, "d")
	h.expectPath(errnoNotdir, "path_remove_directory", m.fd, "file")
	h.expectPath(errnoNotdir, "path_remove_directory", m.fd, "file/")
	h.expectPath(errnoNotdir, "path_remove_directory", m.fd, "link_sub")
	must.True(t, m.exists("sub/inner"))
	h.expectPath(errnoNotcapable, "path_remove_directory", m.fd, "../outside")
	must.NotEq(t, errnoSuccess, h.pathCall("path_remove_directory", m.fd, "link_out_dir"))
	must.NotEq(t, errnoSuccess, h.pathCall("path_remove_directory", m.fd, "link_out_dir/"))
	h.expectPath(errnoBadf, "path_remove_directory", 99, "d2")
	h.expect(errnoFault, "path_remove_directory", m.fd, pageSize-1, 2)
	noRmdir := h.dirWithout(m, rightPathRemoveDirectory)
	must.NoError(t, os.Mkdir(m.host("sub/gone"), 0o755))
	h.expectPath(errnoNotcapable, "path_remove_directory", noRmdir, "gone")
	must.True(t, m.exists("sub/gone"))
	m.outsideUntouched(t)
}

// TestPathUnlinkFile: path_unlink_file removes a file, or a symlink (not
// what it points at, in the mount or out); not a directory (EISDIR), not
// a file named with a trailing slash (ENOTDIR), nothing outside.
func TestPathUnlinkFile(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")

	h.expectPath(errnoSuccess, "path_unlink_file", m.fd, "link_file")
	must.False(t, m.exists("link_file"))
	must.True(t, m.exists("file"))
	h.expectPath(errnoSuccess, "path_unlink_file", m.fd, "link_out_rel")
	h.expectPath(errnoSuccess, "path_unlink_file", m.fd, "link_out_abs")
	h.expectPath(errnoSuccess, "path_unlink_file", m.fd, "link_out_dir")
	m.outsideUntouched(t)

	h.expectPath(errnoNotdir, "path_unlink_file", m.fd, "file/")
	must.True(t, m.exists("file"))
	h.expectPath(errnoIsdir, "path_unlink_file", m.fd, "sub")
	h.expectPath(errnoIsdir, "path_unlink_file", m.fd, "sub/")
	oneOf(t, h.pathCall("path_unlink_file", m.fd, "link_sub/"), "path_unlink_file(\"link_sub/\")", errnoIsdir, errnoNotdir)
	must.True(t, m.exists("link_sub"))
	h.expectPath(errnoSuccess, "path_unlink_file", m.fd, "file")
	must.False(t, m.exists("file"))
	h.expectPath(errnoNoent, "path_unlink_file", m.fd, "file")
	h.expectPath(errnoNoent, "path_unlink_file", m.fd, "file/")

	h.expectPath(errnoNotcapable, "path_unlink_file", m.fd, "../outside/secret")
	h.expectPath(errnoNotcapable, "path_unlink_file", m.fd, "/file")
	must.NoError(t, os.Symlink("../outside", m.host("link_out_dir")))
	must.NotEq(t, errnoSuccess, h.pathCall("path_unlink_file", m.fd, "link_out_dir/secret"))
	m.outsideUntouched(t)
	h.expectPath(errnoBadf, "path_unlink_file", 99, "x")
	h.expect(errnoFault, "path_unlink_file", m.fd, pageSize-1, 2)
	noUnlink := h.dirWithout(m, rightPathUnlinkFile)
	h.expectPath(errnoNotcapable, "path_unlink_file", noUnlink, "inner")
	must.True(t, m.exists("sub/inner"))
}

// TestPathFilestatGet: path_filestat_get reports a file, a directory, a
// symlink itself, or (following) what it points at inside the mount; a
// symlink out of the mount is reported (it is in the mount) but not
// followed.
func TestPathFilestatGet(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")
	want := hostStat(t, m.host("file"))

	st, e := h.pathFilestat(m.fd, 0, "file")
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, filestat{dev: want.Dev, ino: want.Ino, filetype: filetypeRegularFile, nlink: 1, size: uint64(len(fileContent)),
		atim: want.Atim, mtim: want.Mtim, ctim: want.Ctim}, st)
	st, _ = h.pathFilestat(m.fd, 0, "sub")
	must.Eq(t, filetypeDirectory, st.filetype)
	st, _ = h.pathFilestat(m.fd, 0, "sub/")
	must.Eq(t, filetypeDirectory, st.filetype)
	st, _ = h.pathFilestat(m.fd, 0, "link_file")
	must.Eq(t, filetypeSymbolicLink, st.filetype)
	must.Eq(t, uint64(len("file")), st.size)
	st, _ = h.pathFilestat(m.fd, follow, "link_file")
	must.Eq(t, filetypeRegularFile, st.filetype)
	must.Eq(t, want.Ino, st.ino)
	st, e = h.pathFilestat(m.fd, 0, "link_out_abs")
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, filetypeSymbolicLink, st.filetype)

	for _, p := range []string{"link_out_rel", "link_out_abs", "link_out_dir/secret", "link_out_dir"} {
		st, e := h.pathFilestat(m.fd, follow, p)
		if e == errnoSuccess {
			t.Errorf("path_filestat_get(%q, follow) reported what is outside the mount: %+v", p, st)
		}
	}
	for p, want := range map[string]errno{
		"file/":             errnoNotdir,
		"missing":           errnoNoent,
		"../outside/secret": errnoNotcapable,
		"/file":             errnoNotcapable,
		"":                  errnoNoent,
	} {
		if _, e := h.pathFilestat(m.fd, 0, p); e != want {
			t.Errorf("path_filestat_get(%q): %s, want %s", p, errnoName(e), errnoName(want))
		}
	}
	_, e = h.pathFilestat(99, 0, "file")
	must.Eq(t, errnoName(errnoBadf), errnoName(e))
	p, n := h.str("file")
	h.expect(errnoFault, "path_filestat_get", m.fd, 0, p, n, pageSize-filestatSize+1)
	h.expect(errnoFault, "path_filestat_get", m.fd, 0, pageSize-1, 4, h.alloc(filestatSize))
	noStat := h.dirWithout(m, rightPathFilestatGet)
	_, e = h.pathFilestat(noStat, 0, "inner")
	must.Eq(t, errnoName(errnoNotcapable), errnoName(e))
}

// TestPathFilestatSetTimes: path_filestat_set_times sets a file's times,
// or (following) what a symlink points at inside the mount, or, not
// following, the symlink's own (the suite's symlink_filestat); never what
// is outside the mount; contradictory or unknown flags are EINVAL.
func TestPathFilestatSetTimes(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")
	atim, mtim := time.Unix(1_000_000, 0).UnixNano(), time.Unix(2_000_000, 0).UnixNano()
	set := func(flags uint32, path string, fst uint16) errno {
		p, n := h.str(path)
		return h.call("path_filestat_set_times", m.fd, flags, p, n, atim, mtim, fst)
	}
	mtimOf := func(p string) int64 {
		return hostStat(t, p).Mtim
	}

	must.Eq(t, errnoName(errnoSuccess), errnoName(set(follow, "file", fstflagAtim|fstflagMtim)))
	must.Eq(t, mtim, mtimOf(m.host("file")))
	must.NoError(t, os.Chtimes(m.host("file"), time.Unix(5, 0), time.Unix(5, 0)))
	must.Eq(t, errnoName(errnoSuccess), errnoName(set(follow, "link_file", fstflagMtim)))
	must.Eq(t, mtim, mtimOf(m.host("file")), must.Sprint("followed, the target's times"))
	must.Eq(t, errnoName(errnoSuccess), errnoName(set(follow, "sub/", fstflagMtimNow)))
	must.Less(t, time.Minute, time.Since(time.Unix(0, mtimOf(m.host("sub")))).Abs())

	before := mtimOf(m.host("file"))
	if e := set(0, "link_file", fstflagMtim); e != errnoSuccess {
		t.Errorf("BUG path_filestat_set_times: a symlink's own times, not following it: %s, want success "+
			"(the confined filesystem has no Lutimens, so every call without LOOKUPFLAGS_SYMLINK_FOLLOW is ENOTSUP; "+
			"the suite's symlink_filestat needs it)", errnoName(e))
	} else {
		must.Eq(t, mtim, mtimOf(m.host("link_file")), must.Sprint("the symlink's own mtime"))
		must.Eq(t, before, mtimOf(m.host("file")), must.Sprint("the target's mtime, not followed"))
	}

	for _, p := range []string{"link_out_rel", "link_out_abs", "link_out_dir/secret"} {
		if e := set(follow, p, fstflagMtim); e == errnoSuccess {
			t.Errorf("path_filestat_set_times(%q, follow) set the times of a file outside the mount", p)
		}
	}
	must.NotEq(t, mtim, mtimOf(m.outside+"/secret"))
	must.Eq(t, errnoName(errnoNotcapable), errnoName(set(follow, "../outside/secret", fstflagMtim)))
	must.Eq(t, errnoName(errnoNotcapable), errnoName(set(follow, "/file", fstflagMtim)))
	must.Eq(t, errnoName(errnoNoent), errnoName(set(follow, "missing", fstflagMtim)))
	must.Eq(t, errnoName(errnoNotdir), errnoName(set(follow, "file/", fstflagMtim)))
	for _, fst := range []uint16{fstflagAtim | fstflagAtimNow, fstflagMtim | fstflagMtimNow, 1 << 4} {
		must.Eq(t, errnoName(errnoInval), errnoName(set(follow, "file", fst)))
	}
	h.expect(errnoBadf, "path_filestat_set_times", 99, follow, 0, 0, int64(0), int64(0), uint16(0))
	h.expect(errnoFault, "path_filestat_set_times", m.fd, follow, pageSize-1, 4, int64(0), int64(0), uint16(0))
	noTimes := h.dirWithout(m, rightPathFilestatSetTimes)
	p, n := h.str("inner")
	h.expect(errnoNotcapable, "path_filestat_set_times", noTimes, follow, p, n, atim, mtim, uint16(fstflagMtim))
	m.outsideUntouched(t)
}

// TestPathLink: path_link makes a hard link within a mount: not over
// anything, not of a directory, not to what a symlink points at
// (LOOKUPFLAGS_SYMLINK_FOLLOW is refused), not across mounts (EXDEV), not
// from or to outside; a link of a symlink out of the mount is a symlink
// that still leads nowhere.
func TestPathLink(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")
	other := h.preopen("/other")
	link := func(oldFD, flags uint32, oldPath string, newFD uint32, newPath string) errno {
		op, on := h.str(oldPath)
		np, nn := h.str(newPath)
		return h.call("path_link", oldFD, flags, op, on, newFD, np, nn)
	}
	expect := func(want errno, oldFD, flags uint32, oldPath string, newFD uint32, newPath string) {
		t.Helper()
		if got := link(oldFD, flags, oldPath, newFD, newPath); got != want {
			t.Errorf("path_link(%d, %d, %q, %d, %q): %s, want %s", oldFD, flags, oldPath, newFD, newPath, errnoName(got), errnoName(want))
		}
	}

	expect(errnoSuccess, m.fd, 0, "file", m.fd, "hard")
	must.Eq(t, hostStat(t, m.host("file")).Ino, hostStat(t, m.host("hard")).Ino)
	st, _ := h.pathFilestat(m.fd, 0, "hard")
	must.Eq(t, uint64(2), st.nlink)
	sub := h.mustOpen(m.fd, 0, "sub", oflagDirectory, rightsDir, rightsAll, 0)
	expect(errnoSuccess, m.fd, 0, "file", sub, "hard2")
	must.True(t, m.exists("sub/hard2"))

	expect(errnoExist, m.fd, 0, "file", m.fd, "hard")
	expect(errnoExist, m.fd, 0, "file", m.fd, "sub")
	expect(errnoNoent, m.fd, 0, "missing", m.fd, "x")
	oneOf(t, link(m.fd, 0, "sub", m.fd, "subhard"), "path_link of a directory", errnoPerm, errnoNotcapable, errnoAcces)
	expect(errnoNotdir, m.fd, 0, "file/", m.fd, "x")
	expect(errnoInval, m.fd, follow, "link_file", m.fd, "x")
	must.False(t, m.exists("x"))
	expect(errnoXdev, m.fd, 0, "file", other.fd, "x")
	must.False(t, other.exists("x"))

	// Confined.
	expect(errnoNotcapable, m.fd, 0, "../outside/secret", m.fd, "x")
	expect(errnoNotcapable, m.fd, 0, "file", m.fd, "../outside/x")
	expect(errnoNotcapable, m.fd, 0, "/file", m.fd, "x")
	expect(errnoNotcapable, m.fd, 0, "file", m.fd, "/x")
	must.NotEq(t, errnoSuccess, link(m.fd, 0, "link_out_dir/secret", m.fd, "x"), must.Sprint("a link of a file outside, through a symlink"))
	must.NotEq(t, errnoSuccess, link(m.fd, 0, "file", m.fd, "link_out_dir/x"), must.Sprint("a link made outside, through a symlink"))
	must.False(t, m.exists("x"))
	// A link of a symlink out is a symlink out, not followed.
	if e := link(m.fd, 0, "link_out_abs", m.fd, "linked"); e == errnoSuccess {
		fi, err := os.Lstat(m.host("linked"))
		must.NoError(t, err)
		must.True(t, fi.Mode()&os.ModeSymlink != 0, must.Sprint("a link of a symlink is the symlink"))
		_, e := h.open(m.fd, follow, "linked", 0, rightFdRead, 0, 0)
		must.NotEq(t, errnoSuccess, e, must.Sprint("the linked symlink out was followed"))
	}
	m.outsideUntouched(t)

	expect(errnoBadf, 99, 0, "file", m.fd, "x")
	expect(errnoBadf, m.fd, 0, "file", 99, "x")
	h.expect(errnoFault, "path_link", m.fd, 0, pageSize-1, 4, m.fd, 0, 1)
	noSource := h.dirWithout(m, rightPathLinkSource)
	expect(errnoNotcapable, noSource, 0, "inner", m.fd, "x")
	noTarget := h.dirWithout(m, rightPathLinkTarget)
	expect(errnoNotcapable, m.fd, 0, "file", noTarget, "x")
	must.False(t, m.exists("x"))
	must.False(t, m.exists("sub/x"))
}

// TestPathRename: path_rename moves a file or a directory within a mount
// (a directory's name may end in a slash, a file's not), over a file or
// an empty directory, not across mounts, not from or to outside.
func TestPathRename(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")
	other := h.preopen("/other")
	rename := func(oldFD uint32, oldPath string, newFD uint32, newPath string) errno {
		op, on := h.str(oldPath)
		np, nn := h.str(newPath)
		return h.call("path_rename", oldFD, op, on, newFD, np, nn)
	}
	expect := func(want errno, oldFD uint32, oldPath string, newFD uint32, newPath string) {
		t.Helper()
		if got := rename(oldFD, oldPath, newFD, newPath); got != want {
			t.Errorf("path_rename(%d, %q, %d, %q): %s, want %s", oldFD, oldPath, newFD, newPath, errnoName(got), errnoName(want))
		}
	}

	expect(errnoSuccess, m.fd, "file", m.fd, "renamed")
	must.False(t, m.exists("file"))
	must.Eq(t, fileContent, hostFile(t, m, "renamed"))
	sub := h.mustOpen(m.fd, 0, "sub", oflagDirectory, rightsDir, rightsAll, 0)
	expect(errnoSuccess, m.fd, "renamed", sub, "moved")
	must.Eq(t, fileContent, hostFile(t, m, "sub/moved"))
	expect(errnoSuccess, sub, "moved", m.fd, "file")
	must.NoError(t, os.WriteFile(m.host("target"), []byte("old"), 0o644))
	expect(errnoSuccess, m.fd, "file", m.fd, "target")
	must.Eq(t, fileContent, hostFile(t, m, "target"), must.Sprint("renamed over a file"))
	expect(errnoNoent, m.fd, "file", m.fd, "x")

	// Directories, with trailing slashes.
	must.NoError(t, os.Mkdir(m.host("d"), 0o755))
	expect(errnoSuccess, m.fd, "d/", m.fd, "d2")
	expect(errnoSuccess, m.fd, "d2", m.fd, "d3/")
	expect(errnoSuccess, m.fd, "d3/", m.fd, "d4/")
	must.True(t, m.exists("d4"))
	expect(errnoSuccess, m.fd, "d4", m.fd, "empty")
	must.False(t, m.exists("d4"))
	oneOf(t, rename(m.fd, "empty", m.fd, "sub"), "path_rename of a directory over one not empty", errnoNotempty, errnoExist)
	expect(errnoNotdir, m.fd, "target/", m.fd, "x")
	expect(errnoNotdir, m.fd, "target", m.fd, "x/")
	expect(errnoIsdir, m.fd, "target", m.fd, "sub")
	expect(errnoNotdir, m.fd, "sub", m.fd, "target")
	must.True(t, m.exists("target"))
	expect(errnoXdev, m.fd, "target", other.fd, "x")
	must.True(t, m.exists("target"))

	// Confined.
	expect(errnoNotcapable, m.fd, "../outside/secret", m.fd, "stolen")
	expect(errnoNotcapable, m.fd, "target", m.fd, "../outside/x")
	expect(errnoNotcapable, m.fd, "/target", m.fd, "x")
	expect(errnoNotcapable, sub, "../target", sub, "x")
	must.NotEq(t, errnoSuccess, rename(m.fd, "link_out_dir/secret", m.fd, "stolen"), must.Sprint("a file outside renamed in"))
	must.NotEq(t, errnoSuccess, rename(m.fd, "target", m.fd, "link_out_dir/x"), must.Sprint("a file renamed outside"))
	must.False(t, m.exists("stolen"))
	must.True(t, m.exists("target"))
	// A symlink out renamed is the same symlink, still not followed.
	expect(errnoSuccess, m.fd, "link_out_abs", m.fd, "moved_out")
	_, e := h.open(m.fd, follow, "moved_out", 0, rightFdRead, 0, 0)
	must.NotEq(t, errnoSuccess, e)
	m.outsideUntouched(t)

	expect(errnoBadf, 99, "target", m.fd, "x")
	expect(errnoBadf, m.fd, "target", 99, "x")
	h.expect(errnoFault, "path_rename", m.fd, pageSize-1, 4, m.fd, 0, 1)
	noSource := h.dirWithout(m, rightPathRenameSource)
	expect(errnoNotcapable, noSource, "inner", m.fd, "x")
	noTarget := h.dirWithout(m, rightPathRenameTarget)
	expect(errnoNotcapable, m.fd, "target", noTarget, "x")
	must.True(t, m.exists("target"))
}

// TestPathSymlink: path_symlink stores a relative target as given, inside
// the mount or not (a target is only data), and refuses an absolute one
// or, if it ever makes it, never follows it; following one out of the
// mount stays impossible. Not over anything, not outside.
func TestPathSymlink(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")
	symlink := func(target string, fd uint32, path string) errno {
		tp, tn := h.str(target)
		p, n := h.str(path)
		return h.call("path_symlink", tp, tn, fd, p, n)
	}
	readlink := func(p string) string {
		t.Helper()
		target, err := os.Readlink(m.host(p))
		must.NoError(t, err)
		return target
	}

	must.Eq(t, errnoName(errnoSuccess), errnoName(symlink("file", m.fd, "l")))
	must.Eq(t, "file", readlink("l"))
	got, _ := h.read(h.mustOpen(m.fd, follow, "l", 0, rightFdRead, 0, 0), 100)
	must.Eq(t, fileContent, got)
	must.Eq(t, errnoName(errnoSuccess), errnoName(symlink("dangling", m.fd, "d")))
	_, e := h.open(m.fd, follow, "d", 0, rightFdRead, 0, 0)
	must.Eq(t, errnoName(errnoNoent), errnoName(e), must.Sprint("a dangling symlink opened"))
	must.Eq(t, errnoName(errnoSuccess), errnoName(symlink("../outside/secret", m.fd, "out")))
	must.Eq(t, "../outside/secret", readlink("out"))
	_, e = h.open(m.fd, follow, "out", 0, rightFdRead, 0, 0)
	must.NotEq(t, errnoName(errnoSuccess), errnoName(e), must.Sprint("a symlink made out was followed"))
	_, e = h.open(m.fd, follow, "out", oflagCreat|oflagTrunc, rightFdWrite, 0, 0)
	must.NotEq(t, errnoName(errnoSuccess), errnoName(e))

	// Absolute: refused (as wasmtime's cap-std refuses it; the suite's
	// symlink_create accepts either), or made and never followed out.
	abs := m.outside + "/secret"
	if e := symlink(abs, m.fd, "abs"); e != errnoSuccess {
		oneOf(t, e, fmt.Sprintf("path_symlink(%q)", abs), errnoPerm, errnoNotcapable)
		must.False(t, m.exists("abs"))
	} else {
		must.Eq(t, abs, readlink("abs"))
		for _, flags := range []uint16{0, oflagTrunc} {
			if fd, e := h.open(m.fd, follow, "abs", flags, rightFdRead|rightFdWrite, 0, 0); e == errnoSuccess {
				got, _ := h.read(fd, 100)
				t.Fatalf("path_open followed an absolute symlink the guest made out of the mount (read %q)", got)
			}
		}
	}
	// An absolute target naming something inside the mount ("/file",
	// the guest's own root) is made too, and still not followed to the
	// host's /file.
	if e := symlink("/file", m.fd, "abs_in"); e == errnoSuccess {
		_, e := h.open(m.fd, follow, "abs_in", oflagCreat, rightFdWrite, 0, 0)
		must.NotEq(t, errnoName(errnoSuccess), errnoName(e), must.Sprint("an absolute symlink followed"))
	}
	m.outsideUntouched(t)

	must.Eq(t, errnoName(errnoExist), errnoName(symlink("x", m.fd, "file")))
	must.Eq(t, errnoName(errnoExist), errnoName(symlink("x", m.fd, "l")))
	must.Eq(t, errnoName(errnoExist), errnoName(symlink("x", m.fd, "sub")))
	oneOf(t, symlink("x", m.fd, "new/"), "path_symlink to a name with a trailing slash", errnoNoent, errnoNotdir)
	must.False(t, m.exists("new"))
	must.Eq(t, errnoName(errnoNotcapable), errnoName(symlink("x", m.fd, "../x")))
	must.Eq(t, errnoName(errnoNotcapable), errnoName(symlink("x", m.fd, "/x")))
	must.NotEq(t, errnoName(errnoSuccess), errnoName(symlink("x", m.fd, "link_out_dir/x")))
	m.outsideUntouched(t)
	must.Eq(t, errnoName(errnoInval), errnoName(symlink("a\x00b", m.fd, "nul")))
	must.False(t, m.exists("nul"))
	must.Eq(t, errnoName(errnoBadf), errnoName(symlink("x", 99, "x")))
	p, n := h.str("x")
	h.expect(errnoFault, "path_symlink", pageSize-1, 4, m.fd, p, n)
	h.expect(errnoFault, "path_symlink", p, n, m.fd, pageSize-1, 4)
	noSymlink := h.dirWithout(m, rightPathSymlink)
	must.Eq(t, errnoName(errnoNotcapable), errnoName(symlink("x", noSymlink, "x")))
	must.False(t, m.exists("sub/x"))
}

// TestPathReadlink: path_readlink writes a symlink's target, cut to the
// buffer (the suite's readlink: "targ" of "target" in 4 bytes, the rest
// untouched), of any symlink in the mount, wherever it points.
func TestPathReadlink(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")
	must.NoError(t, os.Symlink("target-of-the-link", m.host("l")))
	readlink := func(fd uint32, path string, size uint32) (string, errno) {
		t.Helper()
		p, n := h.str(path)
		buf := h.alloc(size + 8)
		must.True(t, h.mem.WriteString(buf, string(make([]byte, size+8))))
		must.True(t, h.mem.WriteString(buf+size, "########"))
		out := h.alloc(4)
		e := h.call("path_readlink", fd, p, n, buf, size, out)
		must.Eq(t, "########", string(h.bytes(buf+size, 8)), must.Sprint("path_readlink wrote past its buffer"))
		if e != errnoSuccess {
			return "", e
		}
		return string(h.bytes(buf, h.u32(out))), e
	}

	got, e := readlink(m.fd, "l", 64)
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, "target-of-the-link", got)
	got, e = readlink(m.fd, "l", 4)
	must.Eq(t, errnoName(errnoSuccess), errnoName(e), must.Sprint("a buffer smaller than the target"))
	must.Eq(t, "targ", got)
	got, e = readlink(m.fd, "l", 0)
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, "", got)
	got, _ = readlink(m.fd, "link_out_abs", 256)
	must.Eq(t, m.outside+"/secret", got, must.Sprint("a symlink out is read as any other"))
	got, _ = readlink(m.fd, "sub/link_up", 64)
	must.Eq(t, "../file", got)
	sub := h.mustOpen(m.fd, 0, "sub", oflagDirectory, rightsDir, rightsAll, 0)
	got, _ = readlink(sub, "link_up", 64)
	must.Eq(t, "../file", got)

	for p, want := range map[string]errno{
		"file":    errnoInval,
		"sub":     errnoInval,
		"missing": errnoNoent,
		"../l":    errnoNotcapable,
		"/l":      errnoNotcapable,
	} {
		if _, e := readlink(m.fd, p, 64); e != want {
			t.Errorf("path_readlink(%q): %s, want %s", p, errnoName(e), errnoName(want))
		}
	}
	_, e = readlink(99, "l", 64)
	must.Eq(t, errnoName(errnoBadf), errnoName(e))
	p, n := h.str("l")
	h.expect(errnoFault, "path_readlink", m.fd, p, n, pageSize-4, 8, h.alloc(4))
	h.expect(errnoFault, "path_readlink", m.fd, p, n, h.alloc(64), 64, pageSize-3)
	h.expect(errnoFault, "path_readlink", m.fd, pageSize-1, 2, h.alloc(64), 64, h.alloc(4))
	noReadlink := h.dirWithout(m, rightPathReadlink)
	_, e = readlink(noReadlink, "link_up", 64)
	must.Eq(t, errnoName(errnoNotcapable), errnoName(e))
}
