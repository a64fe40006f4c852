// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"fmt"
	"os"
	"sort"
	"testing"

	"github.com/shoenig/test/must"
)

// dirent is a WASI dirent as fd_readdir writes it.
type dirent struct {
	next     uint64
	ino      uint64
	name     string
	filetype uint8
}

// readdir is fd_readdir(fd, cookie) into a buffer of size bytes: the
// bytes used, and the errno.
func (h *host) readdir(fd uint32, cookie uint64, size uint32) ([]byte, errno) {
	h.t.Helper()
	buf, out := h.alloc(size), h.alloc(4)
	e := h.call("fd_readdir", fd, buf, size, cookie, out)
	if e != errnoSuccess {
		return nil, e
	}
	used := h.u32(out)
	must.LessEq(h.t, size, used)
	return h.bytes(buf, used), e
}

// dirents parses the whole entries of b, and says whether the last was
// cut.
func dirents(b []byte) ([]dirent, bool) {
	var ds []dirent
	for len(b) > 0 {
		if len(b) < direntSize {
			return ds, true
		}
		n := int(le.Uint32(b[16:]))
		if len(b) < direntSize+n {
			return ds, true
		}
		ds = append(ds, dirent{next: le.Uint64(b[0:]), ino: le.Uint64(b[8:]), filetype: b[20], name: string(b[direntSize : direntSize+n])})
		b = b[direntSize+n:]
	}
	return ds, false
}

// readAll lists directory fd as a guest does, with a buffer of size
// bytes, from cookie 0, asking again from the last whole entry's cookie
// while the buffer comes back full.
func (h *host) readAll(fd uint32, size uint32) []dirent {
	h.t.Helper()
	var all []dirent
	cookie := uint64(0)
	for i := 0; ; i++ {
		if i > 1000 {
			h.t.Fatal("fd_readdir did not come to the end")
		}
		b, e := h.readdir(fd, cookie, size)
		if e != errnoSuccess {
			h.t.Fatalf("fd_readdir(%d, %d): %s", fd, cookie, errnoName(e))
		}
		ds, _ := dirents(b)
		all = append(all, ds...)
		if uint32(len(b)) < size {
			return all
		}
		if len(ds) == 0 {
			h.t.Fatalf("fd_readdir(%d, %d): a buffer of %d bytes holds no whole entry", fd, cookie, size)
		}
		cookie = ds[len(ds)-1].next
	}
}

// TestFdReaddir: fd_readdir lists ".", ".." and the directory's entries
// with their types and inodes, each with the cookie of the next; resumes
// from any cookie; fills a small buffer to its end, the last entry cut,
// so that a guest asks again; starts over, afresh, at cookie 0; and
// refuses a cookie past the end, memory outside the guest's, and a
// descriptor that is not a directory or lacks the right.
func TestFdReaddir(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")

	inoOf := func(p string) uint64 {
		return hostStat(t, m.host(p)).Ino
	}
	want := map[string]dirent{
		".":            {ino: inoOf("."), filetype: filetypeDirectory},
		"..":           {filetype: filetypeDirectory},
		"file":         {ino: inoOf("file"), filetype: filetypeRegularFile},
		"sub":          {ino: inoOf("sub"), filetype: filetypeDirectory},
		"empty":        {ino: inoOf("empty"), filetype: filetypeDirectory},
		"link_file":    {ino: inoOf("link_file"), filetype: filetypeSymbolicLink},
		"link_sub":     {ino: inoOf("link_sub"), filetype: filetypeSymbolicLink},
		"link_out_rel": {ino: inoOf("link_out_rel"), filetype: filetypeSymbolicLink},
		"link_out_abs": {ino: inoOf("link_out_abs"), filetype: filetypeSymbolicLink},
		"link_out_dir": {ino: inoOf("link_out_dir"), filetype: filetypeSymbolicLink},
		"link_out_new": {ino: inoOf("link_out_new"), filetype: filetypeSymbolicLink},
	}
	check := func(all []dirent, what string) {
		t.Helper()
		must.Eq(t, len(want), len(all), must.Sprintf("%s: %v", what, all))
		must.Eq(t, ".", all[0].name, must.Sprint(what))
		must.Eq(t, "..", all[1].name, must.Sprint(what))
		for i, d := range all {
			must.Eq(t, uint64(i+1), d.next, must.Sprintf("%s: the cookie of the entry after %q", what, d.name))
			w, ok := want[d.name]
			must.True(t, ok, must.Sprintf("%s: %q", what, d.name))
			must.Eq(t, w.filetype, d.filetype, must.Sprintf("%s: the type of %q", what, d.name))
			if d.name != ".." {
				must.Eq(t, w.ino, d.ino, must.Sprintf("%s: the inode of %q", what, d.name))
			}
		}
	}

	all := h.readAll(m.fd, 4096)
	check(all, "a large buffer")
	// Small buffers, down to the largest entry's size (link_out_rel's, 36
	// bytes): every entry comes, whole, however the buffer cuts them.
	for _, size := range []uint32{direntSize + 12, direntSize + 13, 40, 50, 64, 100} {
		check(h.readAll(m.fd, size), fmt.Sprintf("a buffer of %d bytes", size))
	}

	// From a cookie: the rest.
	b, e := h.readdir(m.fd, 5, 4096)
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	rest, cut := dirents(b)
	must.False(t, cut)
	must.Eq(t, all[5:], rest)
	// At the end: nothing.
	b, e = h.readdir(m.fd, uint64(len(all)), 4096)
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, 0, len(b))
	// A buffer smaller than a dirent's head: filled, nothing whole.
	b, e = h.readdir(m.fd, 0, 10)
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, 10, len(b))
	b, e = h.readdir(m.fd, 0, 0)
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, 0, len(b))
	_, e = h.readdir(m.fd, uint64(len(all))+1, 4096)
	must.Eq(t, errnoName(errnoInval), errnoName(e), must.Sprint("a cookie past the end"))

	// Cookie 0 starts over, and sees what changed.
	must.NoError(t, os.WriteFile(m.host("added"), nil, 0o644))
	must.NoError(t, os.Remove(m.host("link_out_new")))
	delete(want, "link_out_new")
	want["added"] = dirent{ino: inoOf("added"), filetype: filetypeRegularFile}
	check(h.readAll(m.fd, 4096), "after a change")

	// A directory opened by path, and an empty one.
	sub := h.mustOpen(m.fd, 0, "sub", oflagDirectory, rightsDir, rightsAll, 0)
	var names []string
	for _, d := range h.readAll(sub, 4096) {
		names = append(names, d.name)
	}
	sort.Strings(names)
	must.Eq(t, []string{".", "..", "inner", "link_up"}, names)
	empty := h.mustOpen(m.fd, 0, "empty", oflagDirectory, rightFdReaddir, 0, 0)
	must.Eq(t, 2, len(h.readAll(empty, 4096)), must.Sprint("an empty directory: . and .."))

	// Errors.
	buf, out := h.alloc(64), h.alloc(4)
	file := h.mustOpen(m.fd, 0, "file", 0, rightsAll, 0, 0)
	oneOf(t, h.call("fd_readdir", file, buf, 64, uint64(0), out), "fd_readdir of a file", errnoNotdir, errnoBadf, errnoNotcapable)
	oneOf(t, h.call("fd_readdir", 1, buf, 64, uint64(0), out), "fd_readdir of stdout", errnoNotdir, errnoBadf, errnoNotcapable)
	h.expect(errnoBadf, "fd_readdir", 99, buf, 64, uint64(0), out)
	h.expect(errnoFault, "fd_readdir", m.fd, pageSize-10, 64, uint64(0), out)
	h.expect(errnoFault, "fd_readdir", m.fd, buf, 64, uint64(0), pageSize-3)
	h.expect(errnoSuccess, "fd_fdstat_set_rights", sub, rightsDir&^rightFdReaddir, uint64(0))
	h.expect(errnoNotcapable, "fd_readdir", sub, buf, 64, uint64(0), out)
}
