// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"fmt"
	"testing"

	"github.com/shoenig/test/must"
)

// follow is the lookup flag that follows a symlink at a path's end.
const follow = lookupSymlinkFollow

// TestPathOpen: path_open creates, truncates, refuses what exists with
// EXCL and what is missing without CREAT, opens directories (with
// O_DIRECTORY or not, never with rights to write them), resolves ".", ".."
// and repeated slashes inside the directory, takes a trailing slash to
// name a directory, follows a symlink inside the mount only when asked,
// and needs its rights.
func TestPathOpen(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")

	fd := h.mustOpen(m.fd, 0, "new", oflagCreat, rightsRW, 0, 0)
	must.Eq(t, fdstat{filetype: filetypeRegularFile, base: rightsRW}, h.mustFdstat(fd))
	must.True(t, m.exists("new"))
	_, e := h.open(m.fd, 0, "new", oflagCreat|oflagExcl, rightsRW, 0, 0)
	must.Eq(t, errnoName(errnoExist), errnoName(e))
	h.write(fd, "data")
	h.mustOpen(m.fd, 0, "new", oflagTrunc, rightFdWrite, 0, 0)
	must.Eq(t, "", hostFile(t, m, "new"), must.Sprint("O_TRUNC"))
	_, e = h.open(m.fd, 0, "missing", 0, rightFdRead, 0, 0)
	must.Eq(t, errnoName(errnoNoent), errnoName(e))
	_, e = h.open(m.fd, 0, "missing/new", oflagCreat, rightFdRead, 0, 0)
	must.Eq(t, errnoName(errnoNoent), errnoName(e))
	_, e = h.open(m.fd, 0, "", 0, rightFdRead, 0, 0)
	must.Eq(t, errnoName(errnoNoent), errnoName(e), must.Sprint("an empty path"))

	// Directories.
	_, e = h.open(m.fd, 0, "file", oflagDirectory, rightFdRead, 0, 0)
	must.Eq(t, errnoName(errnoNotdir), errnoName(e))
	sub := h.mustOpen(m.fd, 0, "sub", oflagDirectory, rightsDir, rightsAll, 0)
	must.Eq(t, fdstat{filetype: filetypeDirectory, base: rightsDir, inheriting: rightsDir | rightsFile}, h.mustFdstat(sub))
	empty := h.mustOpen(m.fd, 0, "empty", 0, rightFdRead|rightFdReaddir, 0, 0)
	must.Eq(t, fdstat{filetype: filetypeDirectory, base: rightFdReaddir}, h.mustFdstat(empty),
		must.Sprint("a directory opened without O_DIRECTORY, with the right to read a file"))
	// A directory is not opened to be written.
	for _, oflags := range []uint16{0, oflagDirectory} {
		_, e = h.open(m.fd, 0, "empty", oflags, rightFdRead|rightFdWrite, 0, 0)
		must.Eq(t, errnoName(errnoIsdir), errnoName(e), must.Sprintf("a directory opened with the right to write (oflags %d)", oflags))
	}
	inner := h.mustOpen(sub, 0, "inner", 0, rightFdRead, 0, 0)
	got, _ := h.read(inner, 100)
	must.Eq(t, "inner", got, must.Sprint("a file opened through a directory's descriptor"))
	h.mustOpen(sub, 0, "made", oflagCreat, rightFdWrite, 0, 0)
	must.True(t, m.exists("sub/made"))

	// Paths.
	for _, p := range []string{"./file", "sub/../file", "sub/./..//file", ".//file", "link_file", "sub/link_up"} {
		fd, e := h.open(m.fd, follow, p, 0, rightFdRead, 0, 0)
		if e != errnoSuccess {
			t.Errorf("path_open(%q): %s", p, errnoName(e))
			continue
		}
		got, _ := h.read(fd, 100)
		must.Eq(t, fileContent, got, must.Sprintf("path_open(%q)", p))
	}
	for _, p := range []string{".", "sub/..", "sub/", "sub//", "sub/.", "link_sub", "link_sub/"} {
		fd, e := h.open(m.fd, follow, p, oflagDirectory, rightsDir, rightsAll, 0)
		if e != errnoSuccess {
			t.Errorf("path_open(%q, O_DIRECTORY): %s", p, errnoName(e))
			continue
		}
		must.Eq(t, filetypeDirectory, h.mustFdstat(fd).filetype)
	}
	for _, p := range []string{"file/", "file//", "file/.", "link_file/"} {
		_, e := h.open(m.fd, follow, p, 0, rightFdRead, 0, 0)
		if e != errnoNotdir {
			t.Errorf("path_open(%q): %s, want ENOTDIR (a trailing slash names a directory)", p, errnoName(e))
		}
	}
	_, e = h.open(m.fd, follow, "new2/", oflagCreat, rightFdWrite, 0, 0)
	must.NotEq(t, errnoName(errnoSuccess), errnoName(e), must.Sprint("a file created under a name with a trailing slash"))
	must.False(t, m.exists("new2"))

	// Symlinks inside the mount, followed only when asked.
	_, e = h.open(m.fd, 0, "link_file", 0, rightFdRead, 0, 0)
	must.Eq(t, errnoName(errnoLoop), errnoName(e), must.Sprint("a symlink opened without following"))
	_, e = h.open(m.fd, 0, "link_sub", oflagDirectory, rightFdReaddir, 0, 0)
	oneOf(t, e, "a symlink to a directory opened as one without following", errnoLoop, errnoNotdir)
	_, e = h.open(m.fd, follow, "link_file", oflagDirectory, rightFdReaddir, 0, 0)
	must.Eq(t, errnoName(errnoNotdir), errnoName(e))

	// Flags.
	app := h.mustOpen(m.fd, 0, "file", 0, rightsRW, 0, fdflagAppend|fdflagNonblock)
	must.Eq(t, uint16(fdflagAppend|fdflagNonblock), h.mustFdstat(app).flags)
	h.write(app, "!")
	must.Eq(t, fileContent+"!", hostFile(t, m, "file"), must.Sprint("a write with FDFLAGS_APPEND"))
	_, e = h.open(m.fd, 0, "file", 1<<4, rightFdRead, 0, 0)
	must.Eq(t, errnoName(errnoInval), errnoName(e), must.Sprint("unknown oflags"))
	_, e = h.open(m.fd, 0, "file", 0, rightFdRead, 0, 1<<5)
	must.Eq(t, errnoName(errnoInval), errnoName(e), must.Sprint("unknown fdflags"))

	// Descriptors and memory.
	_, e = h.open(99, 0, "file", 0, rightFdRead, 0, 0)
	must.Eq(t, errnoName(errnoBadf), errnoName(e))
	out := h.alloc(4)
	h.expect(errnoFault, "path_open", m.fd, 0, pageSize-2, 4, 0, rightFdRead, uint64(0), 0, out)

	// Rights: to open, to create, to truncate.
	h.expect(errnoSuccess, "fd_fdstat_set_rights", sub, rightsDir&^(rightPathCreateFile|rightPathFilestatSetSize), rightsDir|rightsFile)
	_, e = h.open(sub, 0, "other", oflagCreat, rightFdWrite, 0, 0)
	must.Eq(t, errnoName(errnoNotcapable), errnoName(e), must.Sprint("O_CREAT without path_create_file"))
	must.False(t, m.exists("sub/other"))
	_, e = h.open(sub, 0, "inner", oflagTrunc, rightFdWrite, 0, 0)
	must.Eq(t, errnoName(errnoNotcapable), errnoName(e), must.Sprint("O_TRUNC without path_filestat_set_size"))
	must.Eq(t, "inner", hostFile(t, m, "sub/inner"))
	h.mustOpen(sub, 0, "inner", 0, rightFdRead, 0, 0)
	h.expect(errnoSuccess, "fd_fdstat_set_rights", sub, rightsDir&^(rightPathCreateFile|rightPathFilestatSetSize|rightPathOpen), uint64(0))
	_, e = h.open(sub, 0, "inner", 0, rightFdRead, 0, 0)
	must.Eq(t, errnoName(errnoNotcapable), errnoName(e), must.Sprint("without path_open"))
}

// TestPathOpenConfined: nothing path_open opens or creates is outside the
// directory it resolves from: absolute paths and ".." that climb out are
// ENOTCAPABLE by their names; symlinks that lead out of the mount are
// not followed, whichever way they are spelled, for reading, creating or
// truncating.
func TestPathOpenConfined(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/")
	sub := h.mustOpen(m.fd, 0, "sub", oflagDirectory, rightsDir, rightsAll, 0)
	for _, tc := range []struct {
		name     string
		dir      uint32
		path     string
		dirflags uint32
		oflags   uint16
		want     errno // 0: any error
	}{
		{"absolute", m.fd, "/etc/passwd", follow, 0, errnoNotcapable},
		{"absolute, inside", m.fd, "/file", follow, 0, errnoNotcapable},
		{"the root", m.fd, "/", follow, oflagDirectory, errnoNotcapable},
		{"..", m.fd, "..", follow, oflagDirectory, errnoNotcapable},
		{"../outside", m.fd, "../outside/secret", follow, 0, errnoNotcapable},
		{"down and out", m.fd, "sub/../../outside/secret", follow, 0, errnoNotcapable},
		{"down and up twice", m.fd, "sub/../..", follow, oflagDirectory, errnoNotcapable},
		{"created above", m.fd, "../new", follow, oflagCreat, errnoNotcapable},
		{".. of a directory's descriptor", sub, "..", follow, oflagDirectory, errnoNotcapable},
		{"../file of a directory's descriptor", sub, "../file", follow, 0, errnoNotcapable},
		{"a NUL", m.fd, "file\x00", follow, 0, errnoInval},
		{"a symlink out, relative", m.fd, "link_out_rel", follow, 0, 0},
		{"a symlink out, absolute", m.fd, "link_out_abs", follow, 0, 0},
		{"a symlink out, not followed", m.fd, "link_out_rel", 0, 0, errnoLoop},
		{"through a symlinked directory out", m.fd, "link_out_dir/secret", follow, 0, 0},
		{"the symlinked directory out", m.fd, "link_out_dir", follow, oflagDirectory, 0},
		{"the symlinked directory out, slashed", m.fd, "link_out_dir/", 0, oflagDirectory, 0},
		{"created through a dangling symlink out", m.fd, "link_out_new", follow, oflagCreat, 0},
		{"created through a dangling symlink out, not followed", m.fd, "link_out_new", 0, oflagCreat, 0},
		{"created in a symlinked directory out", m.fd, "link_out_dir/new", follow, oflagCreat, 0},
		{"truncated through a symlink out", m.fd, "link_out_rel", follow, oflagTrunc, 0},
		{"truncated through a symlink out, absolute", m.fd, "link_out_abs", follow, oflagCreat | oflagTrunc, 0},
	} {
		rights := rightFdRead | rightFdWrite
		if tc.oflags&oflagDirectory != 0 {
			rights = rightFdReaddir
		}
		fd, e := h.open(tc.dir, tc.dirflags, tc.path, tc.oflags, rights, 0, 0)
		switch {
		case e == errnoSuccess:
			got, _ := h.read(fd, 100)
			t.Errorf("%s: path_open(%q) opened it (read %q)", tc.name, tc.path, got)
		case tc.want != 0 && e != tc.want:
			t.Errorf("%s: path_open(%q): %s, want %s", tc.name, tc.path, errnoName(e), errnoName(tc.want))
		}
	}
	m.outsideUntouched(t)
}

// TestPathOnFileDescriptor: a path function given a descriptor that is
// not a directory fails, with ENOTDIR or, since such a descriptor never
// has a path right, ENOTCAPABLE (which the suite's path_open_dirfd_not_dir
// accepts), and does nothing.
func TestPathOnFileDescriptor(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")
	full := h.mustOpen(m.fd, 0, "file", 0, rightsAll, rightsAll, 0)
	none := h.mustOpen(m.fd, 0, "file", 0, 0, 0, 0)
	p, n := h.str("foo")
	buf := h.alloc(64)
	for _, fd := range []uint32{full, none, 1} {
		for _, c := range []struct {
			name string
			args []any
		}{
			{"path_open", []any{fd, 0, p, n, oflagCreat, rightsAll, rightsAll, 0, buf}},
			{"path_create_directory", []any{fd, p, n}},
			{"path_remove_directory", []any{fd, p, n}},
			{"path_unlink_file", []any{fd, p, n}},
			{"path_filestat_get", []any{fd, 0, p, n, buf}},
			{"path_filestat_set_times", []any{fd, 0, p, n, int64(0), int64(0), uint16(fstflagMtimNow)}},
			{"path_readlink", []any{fd, p, n, buf, 64, buf}},
			{"path_symlink", []any{p, n, fd, p, n}},
			{"path_link", []any{fd, 0, p, n, m.fd, p, n}},
			{"path_rename", []any{fd, p, n, m.fd, p, n}},
		} {
			oneOf(t, h.call(c.name, c.args...), fmt.Sprintf("%s on descriptor %d, not a directory", c.name, fd), errnoNotdir, errnoNotcapable)
		}
	}
	must.False(t, m.exists("foo"))
}

// TestPathOpenResultOutsideMemory: a file opened for a result pointer
// outside the guest's memory is EFAULT, and leaves nothing open.
func TestPathOpenResultOutsideMemory(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")
	p, n := h.str("file")
	before := h.in.table.Len()
	h.expect(errnoFault, "path_open", m.fd, 0, p, n, 0, rightFdRead, uint64(0), 0, pageSize-3)
	if after := h.in.table.Len(); after != before {
		t.Fatalf("BUG path_open: EFAULT for its result pointer, yet the file stays open in the table "+
			"(%d descriptors before, %d after), unreachable by the guest: check the result pointer before opening, or close it", before, after)
	}
}

// TestDirectoryDescriptor: a directory's descriptor resolves paths from
// where the directory was when it was opened, within its mount: a symlink
// in it may lead elsewhere in the mount (sub/link_up -> ../file), never
// out of it; a ".." above it is ENOTCAPABLE. (Unlike wasmtime's, whose
// descriptor is the directory itself and confines to it; a renamed
// directory's descriptor here resolves its old path. Noted in the README.)
func TestDirectoryDescriptor(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")
	sub := h.mustOpen(m.fd, 0, "sub", oflagDirectory, rightsDir, rightsAll, 0)
	fd, e := h.open(sub, follow, "link_up", 0, rightFdRead, 0, 0)
	must.Eq(t, errnoSuccess, e)
	got, _ := h.read(fd, 100)
	must.Eq(t, fileContent, got)
	for _, p := range []string{"../file", "../link_out_rel", "inner/../../file"} {
		_, e := h.open(sub, follow, p, 0, rightFdRead, 0, 0)
		must.Eq(t, errnoNotcapable, e, must.Sprint(p))
	}
	link, linkN := h.str("link_out")
	target, targetN := h.str("../../outside/secret")
	h.expect(errnoSuccess, "path_symlink", target, targetN, sub, link, linkN)
	_, e = h.open(sub, follow, "link_out", 0, rightFdRead, 0, 0)
	must.Eq(t, errnoPerm, e, must.Sprint("a symlink made in a subdirectory was followed out of the mount"))
}
