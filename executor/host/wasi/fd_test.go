// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"math"
	"os"
	"testing"
	"time"

	"github.com/shoenig/test/must"
)

// rightsRW are a file's rights to read and write it, and to move in it.
const rightsRW = rightFdRead | rightFdWrite | rightFdSeek | rightFdTell

// hostFile is the content of the mount's p on the host.
func hostFile(t *testing.T, m mount, p string) string {
	t.Helper()
	b, err := os.ReadFile(m.host(p))
	must.NoError(t, err)
	return string(b)
}

// TestFdReadWriteSeek: fd_read, fd_write, fd_seek and fd_tell move one
// position in a file; fd_pread and fd_pwrite use theirs and leave it
// where it is; each needs its rights.
func TestFdReadWriteSeek(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")
	fd := h.mustOpen(m.fd, 0, "new", oflagCreat, rightsRW, 0, 0)

	n, e := h.write(fd, "hello", " world")
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, uint32(11), n)
	must.Eq(t, "hello world", hostFile(t, m, "new"))

	out := h.alloc(8)
	h.expect(errnoSuccess, "fd_tell", fd, out)
	must.Eq(t, uint64(11), h.u64(out))
	h.expect(errnoSuccess, "fd_seek", fd, int64(0), whenceSet, out)
	must.Eq(t, uint64(0), h.u64(out))
	got, e := h.read(fd, 5)
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, "hello", got)

	// Positioned: the position stays at 5.
	vecs, cnt, bufs := h.iovecs(3, 10)
	h.expect(errnoSuccess, "fd_pread", fd, vecs, cnt, int64(6), out)
	must.Eq(t, uint32(5), h.u32(out))
	must.Eq(t, "wor", string(h.bytes(bufs[0], 3)))
	must.Eq(t, "ld", string(h.bytes(bufs[1], 2)))
	pvecs, pn := h.ciovecs("J")
	h.expect(errnoSuccess, "fd_pwrite", fd, pvecs, pn, int64(0), out)
	must.Eq(t, uint32(1), h.u32(out))
	must.Eq(t, "Jello world", hostFile(t, m, "new"))
	h.expect(errnoSuccess, "fd_tell", fd, out)
	must.Eq(t, uint64(5), h.u64(out))
	// Past the end: nothing read, no error.
	h.expect(errnoSuccess, "fd_pread", fd, vecs, cnt, int64(100), out)
	must.Eq(t, uint32(0), h.u32(out))

	h.expect(errnoSuccess, "fd_seek", fd, int64(-1), whenceEnd, out)
	must.Eq(t, uint64(10), h.u64(out))
	h.expect(errnoSuccess, "fd_seek", fd, int64(-2), whenceCur, out)
	must.Eq(t, uint64(8), h.u64(out))
	got, _ = h.read(fd, 100)
	must.Eq(t, "rld", got)
	got, e = h.read(fd, 100)
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, "", got, must.Sprint("a read at the end"))

	h.expect(errnoInval, "fd_seek", fd, int64(0), 3, out)
	h.expect(errnoInval, "fd_seek", fd, int64(-100), whenceSet, out)
	h.expect(errnoInval, "fd_pread", fd, vecs, cnt, int64(-1), out)
	h.expect(errnoInval, "fd_pwrite", fd, pvecs, pn, int64(math.MinInt64), out)
	h.expect(errnoFault, "fd_seek", fd, int64(0), whenceSet, pageSize-7)
	h.expect(errnoFault, "fd_tell", fd, pageSize-7)
	h.expect(errnoFault, "fd_pread", fd, pageSize-4, 1, int64(0), out)
	h.expect(errnoBadf, "fd_seek", 99, int64(0), whenceSet, out)
	h.expect(errnoBadf, "fd_tell", 99, out)
	h.expect(errnoBadf, "fd_pread", 99, vecs, cnt, int64(0), out)
	h.expect(errnoBadf, "fd_pwrite", 99, pvecs, pn, int64(0), out)
}

// TestFdRights: a descriptor does what its rights allow, and no more: a
// file opened to read is not written, one opened to write is not read,
// one without seek is neither moved in nor read or written at an offset,
// and one that dropped a right lost it.
func TestFdRights(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")
	out := h.alloc(8)
	vecs, cnt, _ := h.iovecs(4)

	ro := h.mustOpen(m.fd, 0, "file", 0, rightFdRead|rightFdSeek, 0, 0)
	must.Eq(t, uint64(0), h.mustFdstat(ro).base&rightFdWrite, must.Sprint("a read-only descriptor has the right to write"))
	_, e := h.write(ro, "x")
	must.Eq(t, errnoName(errnoNotcapable), errnoName(e))
	h.expect(errnoNotcapable, "fd_pwrite", ro, vecs, cnt, int64(0), out)
	h.expect(errnoNotcapable, "fd_tell", ro, out)
	h.expect(errnoNotcapable, "fd_filestat_set_size", ro, uint64(0))
	h.expect(errnoNotcapable, "fd_allocate", ro, uint64(0), uint64(10))
	h.expect(errnoNotcapable, "fd_datasync", ro)
	must.Eq(t, fileContent, hostFile(t, m, "file"))
	got, e := h.read(ro, 5)
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, "hello", got)

	wo := h.mustOpen(m.fd, 0, "file", 0, rightFdWrite, 0, 0)
	_, e = h.read(wo, 5)
	must.Eq(t, errnoName(errnoNotcapable), errnoName(e))
	h.expect(errnoNotcapable, "fd_seek", wo, int64(1), whenceSet, out)
	h.expect(errnoNotcapable, "fd_pread", wo, vecs, cnt, int64(0), out)
	n, e := h.write(wo, "J")
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, uint32(1), n)
	must.Eq(t, "Jello, world", hostFile(t, m, "file"))

	// Dropping rights.
	rw := h.mustOpen(m.fd, 0, "file", 0, rightsRW, 0, 0)
	h.expect(errnoSuccess, "fd_fdstat_set_rights", rw, rightFdRead|rightFdSeek, uint64(0))
	must.Eq(t, rightFdRead|rightFdSeek, h.mustFdstat(rw).base)
	_, e = h.write(rw, "x")
	must.Eq(t, errnoName(errnoNotcapable), errnoName(e))
	h.expect(errnoNotcapable, "fd_tell", rw, out)
	h.expect(errnoSuccess, "fd_seek", rw, int64(1), whenceSet, out)
}

// TestFdClose: fd_close closes a file, a directory, a preopen (which is
// then no longer one) and a standard stream; closing again, or what was
// never open, is EBADF; the number is given again, lowest first.
func TestFdClose(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")
	f := h.mustOpen(m.fd, 0, "file", 0, rightFdRead, 0, 0)
	d := h.mustOpen(m.fd, 0, "sub", oflagDirectory, rightsDir, rightsAll, 0)
	must.Eq(t, m.fd+1, f)
	must.Eq(t, m.fd+2, d)
	before := h.in.table.Len()
	h.expect(errnoSuccess, "fd_close", f)
	must.Eq(t, before-1, h.in.table.Len())
	h.expect(errnoBadf, "fd_close", f)
	_, e := h.read(f, 1)
	must.Eq(t, errnoName(errnoBadf), errnoName(e), must.Sprint("a read of a closed descriptor"))
	h.expect(errnoBadf, "fd_close", 99)
	h.expect(errnoBadf, "fd_close", uint64(math.MaxUint32))
	must.Eq(t, f, h.mustOpen(m.fd, 0, "file", 0, rightFdRead, 0, 0), must.Sprint("the lowest free number"))

	h.expect(errnoSuccess, "fd_close", d)
	h.expect(errnoSuccess, "fd_close", m.fd)
	h.expect(errnoBadf, "fd_prestat_get", m.fd, h.alloc(8))
	_, e = h.open(m.fd, 0, "file", 0, rightFdRead, 0, 0)
	must.Eq(t, errnoName(errnoBadf), errnoName(e), must.Sprint("a path_open from a closed preopen"))
	// The file opened before stays open.
	got, e := h.read(f, 5)
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, "hello", got)

	h.expect(errnoSuccess, "fd_close", 0)
	h.expect(errnoBadf, "fd_fdstat_get", 0, h.alloc(fdstatSize))
}

// TestFdRenumber: fd_renumber(from, to) closes to and moves from there,
// rights and all, leaving from closed; to must be open (EBADF), as from
// must; a descriptor renumbered onto itself stays; a file renumbered onto
// a preopen or a standard stream takes its place.
func TestFdRenumber(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")
	a := h.mustOpen(m.fd, 0, "a", oflagCreat, rightsRW, 0, fdflagAppend)
	b := h.mustOpen(m.fd, 0, "b", oflagCreat, rightFdWrite, 0, 0)
	statA := h.mustFdstat(a)

	h.expect(errnoSuccess, "fd_renumber", a, b)
	h.expect(errnoBadf, "fd_close", a)
	must.Eq(t, statA, h.mustFdstat(b))
	_, e := h.write(b, "to a")
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, "to a", hostFile(t, m, "a"))
	must.Eq(t, "", hostFile(t, m, "b"))

	h.expect(errnoBadf, "fd_renumber", b, 99)
	h.expect(errnoBadf, "fd_renumber", b, a)
	h.expect(errnoBadf, "fd_renumber", 99, b)
	h.expect(errnoSuccess, "fd_renumber", b, b)
	must.Eq(t, statA, h.mustFdstat(b))
	must.Eq(t, a, h.mustOpen(m.fd, 0, "b", 0, rightFdRead, 0, 0), must.Sprint("the number freed is given again"))

	// Onto stdout: the guest's writes to 1 go to the file.
	h.expect(errnoSuccess, "fd_renumber", b, 1)
	_, e = h.write(1, "!")
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, "to a!", hostFile(t, m, "a"))
	h.expect(errnoBadf, "fd_fdstat_get", b, h.alloc(fdstatSize))

	// Onto the preopen: it is closed, and no longer a preopen.
	h.expect(errnoSuccess, "fd_renumber", a, m.fd)
	h.expect(errnoBadf, "fd_prestat_get", m.fd, h.alloc(8))
	got, e := h.read(m.fd, 10)
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, "", got) // "b" is empty
}

// TestFdFdstat: fd_fdstat_get reports the type, the flags and the rights;
// fd_fdstat_set_flags changes append (and nonblock), refuses unknown
// flags and changes of the synchronous ones, and needs its right;
// fd_fdstat_set_rights only drops rights.
func TestFdFdstat(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")

	pre := h.mustFdstat(m.fd)
	must.Eq(t, fdstat{filetype: filetypeDirectory, base: rightsDir, inheriting: rightsDir | rightsFile}, pre)

	synced := h.mustOpen(m.fd, 0, "file", 0, rightsRW|rightFdFdstatSetFlags, 0, fdflagSync|fdflagAppend)
	st := h.mustFdstat(synced)
	must.Eq(t, filetypeRegularFile, st.filetype)
	must.Eq(t, uint16(fdflagSync|fdflagAppend), st.flags, must.Sprint("the flags path_open was given, SYNC included"))
	must.Eq(t, rightsRW|rightFdFdstatSetFlags, st.base)
	h.expect(errnoNotsup, "fd_fdstat_set_flags", synced, uint16(fdflagAppend))

	fd := h.mustOpen(m.fd, 0, "new", oflagCreat, rightsRW|rightFdFdstatSetFlags, 0, 0)
	h.write(fd, "abc")
	h.expect(errnoSuccess, "fd_seek", fd, int64(0), whenceSet, h.alloc(8))
	h.expect(errnoSuccess, "fd_fdstat_set_flags", fd, uint16(fdflagAppend))
	must.Eq(t, uint16(fdflagAppend), h.mustFdstat(fd).flags)
	h.write(fd, "d")
	must.Eq(t, "abcd", hostFile(t, m, "new"), must.Sprint("an append-mode write"))
	h.expect(errnoSuccess, "fd_fdstat_set_flags", fd, uint16(0))
	h.expect(errnoSuccess, "fd_seek", fd, int64(0), whenceSet, h.alloc(8))
	h.write(fd, "X")
	must.Eq(t, "Xbcd", hostFile(t, m, "new"))
	h.expect(errnoSuccess, "fd_fdstat_set_flags", fd, uint16(fdflagNonblock))
	must.Eq(t, uint16(fdflagNonblock), h.mustFdstat(fd).flags)
	h.expect(errnoInval, "fd_fdstat_set_flags", fd, uint16(1<<5))
	h.expect(errnoNotsup, "fd_fdstat_set_flags", fd, uint16(fdflagDsync))
	h.expect(errnoBadf, "fd_fdstat_set_flags", 99, uint16(0))
	h.expect(errnoSuccess, "fd_fdstat_set_rights", fd, rightsRW, uint64(0))
	h.expect(errnoNotcapable, "fd_fdstat_set_flags", fd, uint16(fdflagAppend))

	// Rights: dropped, never regained.
	h.expect(errnoNotcapable, "fd_fdstat_set_rights", fd, rightsRW|rightFdFdstatSetFlags, uint64(0))
	h.expect(errnoNotcapable, "fd_fdstat_set_rights", fd, rightsRW, rightFdRead)
	must.Eq(t, rightsRW, h.mustFdstat(fd).base)
	h.expect(errnoSuccess, "fd_fdstat_set_rights", fd, uint64(0), uint64(0))
	must.Eq(t, uint64(0), h.mustFdstat(fd).base)
	h.expect(errnoNotcapable, "fd_fdstat_set_rights", fd, rightFdRead, uint64(0))
	h.expect(errnoBadf, "fd_fdstat_set_rights", 99, uint64(0), uint64(0))

	// A directory's inheriting rights bound what is opened through it.
	h.expect(errnoSuccess, "fd_fdstat_set_rights", m.fd, rightsDir, rightFdRead|rightFdSeek)
	ro := h.mustOpen(m.fd, 0, "file", 0, rightsAll, rightsAll, 0)
	must.Eq(t, rightFdRead|rightFdSeek, h.mustFdstat(ro).base, must.Sprint("a file opened through a directory that may only pass on read and seek"))
	_, e := h.write(ro, "x")
	must.Eq(t, errnoName(errnoNotcapable), errnoName(e))
	sub := h.mustOpen(m.fd, 0, "sub", oflagDirectory, rightsDir, rightsAll, 0)
	must.Eq(t, uint64(0), h.mustFdstat(sub).base&rightPathOpen, must.Sprint("a directory opened with rights its parent may not pass on"))
	// Without path_open, nothing is opened through it.
	h.expect(errnoSuccess, "fd_fdstat_set_rights", m.fd, rightsDir&^rightPathOpen, uint64(0))
	_, e = h.open(m.fd, 0, "file", 0, rightFdRead, 0, 0)
	must.Eq(t, errnoName(errnoNotcapable), errnoName(e))

	h.expect(errnoFault, "fd_fdstat_get", fd, pageSize-fdstatSize+1)
	h.expect(errnoBadf, "fd_fdstat_get", 99, h.alloc(fdstatSize))
}

// TestFdFilestat: fd_filestat_get reports the host file's; set_size cuts
// and grows it; set_times sets its times (or now), refusing contradictory
// or unknown flags; each needs its right.
func TestFdFilestat(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")
	fd := h.mustOpen(m.fd, 0, "file", 0, rightsRW|rightFdFilestatGet|rightFdFilestatSetSize|rightFdFilestatSetTimes, 0, 0)

	want := hostStat(t, m.host("file"))
	st, e := h.fdFilestat(fd)
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, filetypeRegularFile, st.filetype)
	must.Eq(t, want.Ino, st.ino)
	must.Eq(t, want.Dev, st.dev)
	must.Eq(t, uint64(1), st.nlink)
	must.Eq(t, uint64(len(fileContent)), st.size)
	must.Eq(t, want.Mtim, st.mtim)

	pst, e := h.fdFilestat(m.fd)
	must.Eq(t, errnoName(errnoSuccess), errnoName(e))
	must.Eq(t, filetypeDirectory, pst.filetype)

	h.expect(errnoSuccess, "fd_filestat_set_size", fd, uint64(5))
	must.Eq(t, "hello", hostFile(t, m, "file"))
	h.expect(errnoSuccess, "fd_filestat_set_size", fd, uint64(7))
	must.Eq(t, "hello\x00\x00", hostFile(t, m, "file"))
	oneOf(t, h.call("fd_filestat_set_size", fd, uint64(math.MaxUint64)), "fd_filestat_set_size(2^64-1)", errnoFbig, errnoInval)
	oneOf(t, h.call("fd_filestat_set_size", m.fd, uint64(0)), "fd_filestat_set_size of a directory", errnoIsdir, errnoNotcapable, errnoBadf)

	atim, mtim := time.Unix(1_000_000, 123).UnixNano(), time.Unix(2_000_000, 456).UnixNano()
	h.expect(errnoSuccess, "fd_filestat_set_times", fd, atim, mtim, uint16(fstflagAtim|fstflagMtim))
	st, _ = h.fdFilestat(fd)
	must.Eq(t, atim, st.atim)
	must.Eq(t, mtim, st.mtim)
	h.expect(errnoSuccess, "fd_filestat_set_times", fd, int64(0), int64(0), uint16(fstflagMtimNow))
	st, _ = h.fdFilestat(fd)
	must.Eq(t, atim, st.atim, must.Sprint("atim, not asked for, is left as it was"))
	must.Less(t, time.Minute, time.Since(time.Unix(0, st.mtim)).Abs())
	for _, flags := range []uint16{fstflagAtim | fstflagAtimNow, fstflagMtim | fstflagMtimNow, 1 << 4} {
		h.expect(errnoInval, "fd_filestat_set_times", fd, int64(0), int64(0), flags)
	}
	// A directory's times, through its descriptor.
	h.expect(errnoSuccess, "fd_filestat_set_times", m.fd, atim, mtim, uint16(fstflagAtim|fstflagMtim))
	must.Eq(t, mtim, hostStat(t, m.dir).Mtim)

	ro := h.mustOpen(m.fd, 0, "file", 0, rightFdRead, 0, 0)
	h.expect(errnoNotcapable, "fd_filestat_get", ro, h.alloc(filestatSize))
	h.expect(errnoNotcapable, "fd_filestat_set_size", ro, uint64(0))
	h.expect(errnoNotcapable, "fd_filestat_set_times", ro, int64(0), int64(0), uint16(fstflagMtimNow))
	h.expect(errnoBadf, "fd_filestat_get", 99, h.alloc(filestatSize))
	h.expect(errnoBadf, "fd_filestat_set_size", 99, uint64(0))
	h.expect(errnoBadf, "fd_filestat_set_times", 99, int64(0), int64(0), uint16(0))
	h.expect(errnoFault, "fd_filestat_get", fd, pageSize-filestatSize+1)
}

// TestFdAdviseAllocate: fd_advise takes any of the six advices on a file
// and refuses others; fd_allocate grows a file to offset+len, never cuts
// it, and refuses an end past 2^63; both need their rights.
func TestFdAdviseAllocate(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")
	fd := h.mustOpen(m.fd, 0, "file", 0, rightsRW|rightFdAdvise|rightFdAllocate, 0, 0)
	for advice := range uint32(adviceNoreuse + 1) {
		h.expect(errnoSuccess, "fd_advise", fd, uint64(0), uint64(100), advice)
	}
	h.expect(errnoInval, "fd_advise", fd, uint64(0), uint64(100), adviceNoreuse+1)
	h.expect(errnoBadf, "fd_advise", 99, uint64(0), uint64(0), 0)
	ro := h.mustOpen(m.fd, 0, "file", 0, rightFdRead, 0, 0)
	h.expect(errnoNotcapable, "fd_advise", ro, uint64(0), uint64(0), 0)

	h.expect(errnoSuccess, "fd_allocate", fd, uint64(10), uint64(90))
	must.Eq(t, 100, len(hostFile(t, m, "file")))
	h.expect(errnoSuccess, "fd_allocate", fd, uint64(0), uint64(10))
	must.Eq(t, fileContent, hostFile(t, m, "file")[:len(fileContent)], must.Sprint("fd_allocate changed the content"))
	must.Eq(t, 100, len(hostFile(t, m, "file")), must.Sprint("fd_allocate cut the file"))
	h.expect(errnoInval, "fd_allocate", fd, uint64(math.MaxInt64), uint64(1))
	h.expect(errnoInval, "fd_allocate", fd, uint64(math.MaxUint64), uint64(0))
	h.expect(errnoBadf, "fd_allocate", 99, uint64(0), uint64(1))
	h.expect(errnoNotcapable, "fd_allocate", ro, uint64(0), uint64(1))
}

// TestFdSync: fd_sync and fd_datasync flush a file, fd_sync a directory
// too; both need their rights.
func TestFdSync(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")
	fd := h.mustOpen(m.fd, 0, "file", 0, rightsRW|rightFdSync|rightFdDatasync, 0, 0)
	h.write(fd, "x")
	h.expect(errnoSuccess, "fd_sync", fd)
	h.expect(errnoSuccess, "fd_datasync", fd)
	h.expect(errnoSuccess, "fd_sync", m.fd)
	ro := h.mustOpen(m.fd, 0, "file", 0, rightFdRead, 0, 0)
	h.expect(errnoNotcapable, "fd_sync", ro)
	h.expect(errnoNotcapable, "fd_datasync", ro)
	h.expect(errnoBadf, "fd_sync", 99)
	h.expect(errnoBadf, "fd_datasync", 99)
}

// TestFdPrestat: fd_prestat_get tells a preopen (tag 0, a directory) and
// the length of its name; fd_prestat_dir_name writes the name into a
// buffer at least that long (ENAMETOOLONG for a shorter one), touching
// nothing past it; neither knows a descriptor but a preopen.
func TestFdPrestat(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	m := h.preopen("/data")
	m2 := h.preopen(".")
	sub := h.mustOpen(m.fd, 0, "sub", oflagDirectory, rightsDir, rightsAll, 0)

	out := h.alloc(8)
	must.True(t, h.mem.WriteUint64Le(out, math.MaxUint64))
	h.expect(errnoSuccess, "fd_prestat_get", m.fd, out)
	must.Eq(t, uint8(0), h.bytes(out, 1)[0], must.Sprint("the tag of a directory"))
	must.Eq(t, uint32(len("/data")), h.u32(out+4))
	h.expect(errnoSuccess, "fd_prestat_get", m2.fd, out)
	must.Eq(t, uint32(1), h.u32(out+4))

	buf := h.alloc(16)
	must.True(t, h.mem.WriteString(buf, "################"))
	h.expect(errnoSuccess, "fd_prestat_dir_name", m.fd, buf, 5)
	must.Eq(t, "/data###########", string(h.bytes(buf, 16)))
	must.True(t, h.mem.WriteString(buf, "################"))
	h.expect(errnoSuccess, "fd_prestat_dir_name", m.fd, buf, 16)
	must.Eq(t, "/data", string(h.bytes(buf, 5)))
	h.expect(errnoNametoolong, "fd_prestat_dir_name", m.fd, buf, 4)
	h.expect(errnoNametoolong, "fd_prestat_dir_name", m.fd, buf, 0)
	h.expect(errnoFault, "fd_prestat_dir_name", m.fd, pageSize-4, 5)
	h.expect(errnoFault, "fd_prestat_get", m.fd, pageSize-7)

	for _, fd := range []uint32{0, 1, 2, sub, 99} {
		h.expect(errnoBadf, "fd_prestat_get", fd, out)
		h.expect(errnoBadf, "fd_prestat_dir_name", fd, buf, 16)
	}
}
