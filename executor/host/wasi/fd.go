// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"context"
	"io"
	"io/fs"
	"math"
	"time"

	"github.com/tetratelabs/wazero/api"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

// WASI preview 1 sizes and values of the fd_ functions.
const (
	fdstatSize   = 24
	filestatSize = 64
	iovecSize    = 8

	whenceSet = 0
	whenceCur = 1
	whenceEnd = 2

	fstflagAtim    = 1
	fstflagAtimNow = 2
	fstflagMtim    = 4
	fstflagMtimNow = 8

	adviceNoreuse = 5
)

// eachIovec calls f with each buffer of the guest's iovec array at iovs,
// n of them, until f says to stop. A buffer outside the guest's memory is
// EFAULT.
func eachIovec(mem api.Memory, iovs, n uint32, f func(b []byte) (more bool)) errno {
	vecs, ok := mem.Read(iovs, n*iovecSize)
	if !ok || uint64(n)*iovecSize > math.MaxUint32 {
		return errnoFault
	}
	for i := uint32(0); i < n; i++ {
		v := vecs[i*iovecSize:]
		b, ok := mem.Read(le.Uint32(v), le.Uint32(v[4:]))
		if !ok {
			return errnoFault
		}
		if !f(b) {
			break
		}
	}
	return errnoSuccess
}

// writeResult writes v at ptr and makes e the call's result, EFAULT when
// ptr is outside the guest's memory.
func writeResult32(mem api.Memory, stack []uint64, ptr uint32, v uint32, e errno) {
	if e == errnoSuccess && !mem.WriteUint32Le(ptr, v) {
		e = errnoFault
	}
	stack[0] = uint64(e)
}

func writeResult64(mem api.Memory, stack []uint64, ptr uint32, v uint64, e errno) {
	if e == errnoSuccess && !mem.WriteUint64Le(ptr, v) {
		e = errnoFault
	}
	stack[0] = uint64(e)
}

// fdRead is WASI's fd_read(fd, iovs, iovs_len, result.nread).
func fdRead(ctx context.Context, mod api.Module, stack []uint64) {
	fd, iovs, n, result := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])
	t := table(ctx)
	d, e := t.lookup(fd, rightFdRead)
	var read uint32
	if e == errnoSuccess {
		read, e = d.read(ctx, t, mod.Memory(), iovs, n)
	}
	writeResult32(mod.Memory(), stack, result, read, e)
}

// read reads into the iovecs, until a short read.
func (d *descriptor) read(ctx context.Context, t *Table, mem api.Memory, iovs, n uint32) (uint32, errno) {
	if d.sock != nil {
		return d.sock.recv(ctx, t, mem, iovs, n, 0, d.flags&fdflagNonblock != 0)
	}
	var total uint32
	var failed errno
	e := eachIovec(mem, iovs, n, func(b []byte) bool {
		var got int
		switch {
		case d.file != nil:
			var se experimentalsys.Errno
			got, se = d.file.Read(b)
			failed = fromSys(se)
		case d.filetype == filetypeDirectory:
			failed = errnoIsdir
		case d.reader != nil:
			var err error
			got, err = d.reader.Read(b)
			if err != nil && err != io.EOF {
				failed = errnoIO
			}
		}
		total += uint32(got)
		return failed == errnoSuccess && got == len(b)
	})
	if e != errnoSuccess {
		return 0, e
	}
	if total > 0 {
		return total, errnoSuccess // what was read before a failure counts
	}
	return 0, failed
}

// fdWrite is WASI's fd_write(fd, iovs, iovs_len, result.nwritten).
func fdWrite(ctx context.Context, mod api.Module, stack []uint64) {
	fd, iovs, n, result := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])
	t := table(ctx)
	d, e := t.lookup(fd, rightFdWrite)
	var written uint32
	if e == errnoSuccess {
		written, e = d.write(ctx, t, mod.Memory(), iovs, n)
	}
	writeResult32(mod.Memory(), stack, result, written, e)
}

// write writes the iovecs, until a short write.
func (d *descriptor) write(ctx context.Context, t *Table, mem api.Memory, iovs, n uint32) (uint32, errno) {
	if d.sock != nil {
		return d.sock.send(ctx, t, mem, iovs, n, d.flags&fdflagNonblock != 0)
	}
	var total uint32
	var failed errno
	e := eachIovec(mem, iovs, n, func(b []byte) bool {
		var put int
		switch {
		case d.file != nil:
			var se experimentalsys.Errno
			put, se = d.file.Write(b)
			failed = fromSys(se)
		case d.filetype == filetypeDirectory:
			failed = errnoIsdir
		case d.writer != nil:
			var err error
			put, err = d.writer.Write(b)
			if err != nil {
				failed = errnoIO
			}
		default:
			put = len(b) // discarded
		}
		total += uint32(put)
		return failed == errnoSuccess && put == len(b)
	})
	if e != errnoSuccess {
		return 0, e
	}
	if total > 0 {
		return total, errnoSuccess
	}
	return 0, failed
}

// fdPread is WASI's fd_pread(fd, iovs, iovs_len, offset, result.nread).
func fdPread(ctx context.Context, mod api.Module, stack []uint64) {
	fd, iovs, n, offset, result := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), int64(stack[3]), uint32(stack[4])
	d, e := table(ctx).lookup(fd, rightFdRead|rightFdSeek)
	var total uint32
	if e == errnoSuccess {
		total, e = d.positioned(mod.Memory(), iovs, n, offset, false)
	}
	writeResult32(mod.Memory(), stack, result, total, e)
}

// fdPwrite is WASI's fd_pwrite(fd, iovs, iovs_len, offset,
// result.nwritten).
func fdPwrite(ctx context.Context, mod api.Module, stack []uint64) {
	fd, iovs, n, offset, result := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), int64(stack[3]), uint32(stack[4])
	d, e := table(ctx).lookup(fd, rightFdWrite|rightFdSeek)
	var total uint32
	if e == errnoSuccess {
		total, e = d.positioned(mod.Memory(), iovs, n, offset, true)
	}
	writeResult32(mod.Memory(), stack, result, total, e)
}

// positioned reads (or writes) the iovecs at offset, leaving the
// descriptor's position where it is.
func (d *descriptor) positioned(mem api.Memory, iovs, n uint32, offset int64, write bool) (uint32, errno) {
	switch {
	case d.filetype == filetypeDirectory:
		return 0, errnoIsdir
	case d.file == nil:
		return 0, errnoSpipe
	case offset < 0:
		return 0, errnoInval
	}
	var total uint32
	var failed errno
	e := eachIovec(mem, iovs, n, func(b []byte) bool {
		var k int
		var se experimentalsys.Errno
		if write {
			k, se = d.file.Pwrite(b, offset+int64(total))
		} else {
			k, se = d.file.Pread(b, offset+int64(total))
		}
		failed = fromSys(se)
		total += uint32(k)
		return failed == errnoSuccess && k == len(b)
	})
	if e != errnoSuccess {
		return 0, e
	}
	if total > 0 {
		return total, errnoSuccess
	}
	return 0, failed
}

// fdSeek is WASI's fd_seek(fd, offset, whence, result.newoffset).
func fdSeek(ctx context.Context, mod api.Module, stack []uint64) {
	fd, offset, whence, result := uint32(stack[0]), int64(stack[1]), uint32(stack[2]), uint32(stack[3])
	needed := rightFdSeek
	if offset == 0 && whence == whenceCur {
		needed = rightFdTell // a tell
	}
	d, e := table(ctx).lookup(fd, needed)
	var pos int64
	if e == errnoSuccess {
		pos, e = d.seek(offset, whence)
	}
	writeResult64(mod.Memory(), stack, result, uint64(pos), e)
}

func (d *descriptor) seek(offset int64, whence uint32) (int64, errno) {
	if whence > whenceEnd {
		return 0, errnoInval
	}
	switch {
	case d.filetype == filetypeDirectory:
		return 0, errnoIsdir
	case d.file == nil:
		return 0, errnoSpipe
	}
	pos, se := d.file.Seek(offset, int(whence))
	return pos, fromSys(se)
}

// fdTell is WASI's fd_tell(fd, result.offset).
func fdTell(ctx context.Context, mod api.Module, stack []uint64) {
	fd, result := uint32(stack[0]), uint32(stack[1])
	d, e := table(ctx).lookup(fd, rightFdTell)
	var pos int64
	if e == errnoSuccess {
		pos, e = d.seek(0, whenceCur)
	}
	writeResult64(mod.Memory(), stack, result, uint64(pos), e)
}

// fdClose is WASI's fd_close(fd). A preopened directory may be closed too.
func fdClose(ctx context.Context, _ api.Module, stack []uint64) {
	t := table(ctx)
	fd := uint32(stack[0])
	if _, e := t.lookup(fd, 0); e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	stack[0] = uint64(t.remove(fd).close())
}

// fdRenumber is WASI's fd_renumber(fd, to): to, which must be open, is
// closed and becomes fd, which is no longer open.
func fdRenumber(ctx context.Context, _ api.Module, stack []uint64) {
	t := table(ctx)
	from, to := uint32(stack[0]), uint32(stack[1])
	if _, e := t.lookup(from, 0); e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	if _, e := t.lookup(to, 0); e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	if from == to {
		stack[0] = errnoSuccess
		return
	}
	_ = t.fds[to].close()
	t.fds[to] = t.remove(from)
	stack[0] = errnoSuccess
}

// fdFdstatGet is WASI's fd_fdstat_get(fd, result.stat).
func fdFdstatGet(ctx context.Context, mod api.Module, stack []uint64) {
	fd, result := uint32(stack[0]), uint32(stack[1])
	d, e := table(ctx).lookup(fd, 0)
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	b, ok := mod.Memory().Read(result, fdstatSize)
	if !ok {
		stack[0] = errnoFault
		return
	}
	clear(b)
	b[0] = d.filetype
	le.PutUint16(b[2:], d.flags)
	le.PutUint64(b[8:], d.base)
	le.PutUint64(b[16:], d.inheriting)
	stack[0] = errnoSuccess
}

// fdFdstatSetFlags is WASI's fd_fdstat_set_flags(fd, flags): append and
// nonblock can be changed; the synchronous flags only at path_open.
func fdFdstatSetFlags(ctx context.Context, _ api.Module, stack []uint64) {
	fd, flags := uint32(stack[0]), uint16(stack[1])
	d, e := table(ctx).lookup(fd, rightFdFdstatSetFlags)
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	if flags&^fdflagsAll != 0 {
		stack[0] = errnoInval
		return
	}
	if (flags^d.flags)&(fdflagDsync|fdflagRsync|fdflagSync) != 0 {
		stack[0] = errnoNotsup
		return
	}
	if d.file != nil && d.filetype == filetypeRegularFile {
		if se := d.file.SetAppend(flags&fdflagAppend != 0); se != 0 {
			stack[0] = uint64(fromSys(se))
			return
		}
	}
	d.flags = flags
	stack[0] = errnoSuccess
}

// fdFdstatSetRights is WASI's fd_fdstat_set_rights(fd, fs_rights_base,
// fs_rights_inheriting): rights can be dropped, not added.
func fdFdstatSetRights(ctx context.Context, _ api.Module, stack []uint64) {
	fd, base, inheriting := uint32(stack[0]), stack[1], stack[2]
	d, e := table(ctx).lookup(fd, 0)
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	if base&^d.base != 0 || inheriting&^d.inheriting != 0 {
		stack[0] = errnoNotcapable
		return
	}
	d.base, d.inheriting = base, inheriting
	stack[0] = errnoSuccess
}

// filetypeOf is the WASI file type of a host file's mode.
func filetypeOf(m fs.FileMode) uint8 {
	switch m.Type() {
	case 0:
		return filetypeRegularFile
	case fs.ModeDir:
		return filetypeDirectory
	case fs.ModeSymlink:
		return filetypeSymbolicLink
	case fs.ModeDevice | fs.ModeCharDevice, fs.ModeCharDevice:
		return filetypeCharacterDevice
	case fs.ModeDevice:
		return 1 // block device
	case fs.ModeSocket:
		return filetypeSocketStream
	}
	return filetypeUnknown
}

// putFilestat writes st at ptr.
func putFilestat(mem api.Memory, ptr uint32, st *sys.Stat_t, filetype uint8) errno {
	b, ok := mem.Read(ptr, filestatSize)
	if !ok {
		return errnoFault
	}
	clear(b)
	if st != nil {
		le.PutUint64(b[0:], st.Dev)
		le.PutUint64(b[8:], st.Ino)
		filetype = filetypeOf(st.Mode)
		le.PutUint64(b[24:], st.Nlink)
		le.PutUint64(b[32:], uint64(st.Size))
		le.PutUint64(b[40:], uint64(st.Atim))
		le.PutUint64(b[48:], uint64(st.Mtim))
		le.PutUint64(b[56:], uint64(st.Ctim))
	}
	b[16] = filetype
	return errnoSuccess
}

// fdFilestatGet is WASI's fd_filestat_get(fd, result.buf).
func fdFilestatGet(ctx context.Context, mod api.Module, stack []uint64) {
	fd, result := uint32(stack[0]), uint32(stack[1])
	d, e := table(ctx).lookup(fd, rightFdFilestatGet)
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	if d.fs == nil {
		// A standard stream or a socket.
		stack[0] = uint64(putFilestat(mod.Memory(), result, nil, d.filetype))
		return
	}
	f, e := d.opened()
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	st, se := f.Stat()
	if se != 0 {
		stack[0] = uint64(fromSys(se))
		return
	}
	stack[0] = uint64(putFilestat(mod.Memory(), result, &st, 0))
}

// fdFilestatSetSize is WASI's fd_filestat_set_size(fd, size).
func fdFilestatSetSize(ctx context.Context, _ api.Module, stack []uint64) {
	fd, size := uint32(stack[0]), stack[1]
	d, e := table(ctx).lookup(fd, rightFdFilestatSetSize)
	switch {
	case e != errnoSuccess:
	case d.filetype == filetypeDirectory:
		e = errnoIsdir
	case d.file == nil:
		e = errnoInval
	case size > math.MaxInt64:
		e = errnoFbig
	default:
		e = fromSys(d.file.Truncate(int64(size)))
	}
	stack[0] = uint64(e)
}

// times is what a filestat_set_times call sets: nanoseconds since the
// epoch, or UTIME_OMIT for a time left as it is.
func times(atim, mtim int64, flags uint16) (int64, int64, errno) {
	if flags&^(fstflagAtim|fstflagAtimNow|fstflagMtim|fstflagMtimNow) != 0 ||
		flags&(fstflagAtim|fstflagAtimNow) == fstflagAtim|fstflagAtimNow ||
		flags&(fstflagMtim|fstflagMtimNow) == fstflagMtim|fstflagMtimNow {
		return 0, 0, errnoInval
	}
	now := time.Now().UnixNano()
	pick := func(set, setNow uint16, v int64) int64 {
		switch {
		case flags&set != 0:
			return v
		case flags&setNow != 0:
			return now
		}
		return experimentalsys.UTIME_OMIT
	}
	return pick(fstflagAtim, fstflagAtimNow, atim), pick(fstflagMtim, fstflagMtimNow, mtim), errnoSuccess
}

// fdFilestatSetTimes is WASI's fd_filestat_set_times(fd, atim, mtim,
// fst_flags).
func fdFilestatSetTimes(ctx context.Context, _ api.Module, stack []uint64) {
	fd := uint32(stack[0])
	d, e := table(ctx).lookup(fd, rightFdFilestatSetTimes)
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	atim, mtim, e := times(int64(stack[1]), int64(stack[2]), uint16(stack[3]))
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	if d.fs == nil {
		stack[0] = errnoBadf
		return
	}
	f, e := d.opened()
	if e == errnoSuccess {
		e = fromSys(f.Utimens(atim, mtim))
	}
	stack[0] = uint64(e)
}

// fdAdvise is WASI's fd_advise(fd, offset, len, advice): advice is
// checked and taken as a hint the host needs not follow.
func fdAdvise(ctx context.Context, _ api.Module, stack []uint64) {
	fd, advice := uint32(stack[0]), uint32(stack[3])
	d, e := table(ctx).lookup(fd, rightFdAdvise)
	switch {
	case e != errnoSuccess:
	case advice > adviceNoreuse:
		e = errnoInval
	case d.filetype == filetypeDirectory:
		e = errnoIsdir
	case d.file == nil:
		e = errnoBadf
	}
	stack[0] = uint64(e)
}

// fdAllocate is WASI's fd_allocate(fd, offset, len): the file grows to
// offset+len when it is shorter.
func fdAllocate(ctx context.Context, _ api.Module, stack []uint64) {
	fd, offset, length := uint32(stack[0]), stack[1], stack[2]
	d, e := table(ctx).lookup(fd, rightFdAllocate)
	switch {
	case e != errnoSuccess:
	case d.filetype == filetypeDirectory:
		e = errnoIsdir
	case d.file == nil:
		e = errnoBadf
	case offset > math.MaxInt64 || length > math.MaxInt64-offset:
		e = errnoInval
	default:
		st, se := d.file.Stat()
		if se != 0 {
			e = fromSys(se)
		} else if end := int64(offset + length); end > st.Size {
			e = fromSys(d.file.Truncate(end))
		}
	}
	stack[0] = uint64(e)
}

// fdDatasync is WASI's fd_datasync(fd).
func fdDatasync(ctx context.Context, _ api.Module, stack []uint64) {
	syncFD(ctx, stack, rightFdDatasync, experimentalsys.File.Datasync)
}

// fdSync is WASI's fd_sync(fd).
func fdSync(ctx context.Context, _ api.Module, stack []uint64) {
	syncFD(ctx, stack, rightFdSync, experimentalsys.File.Sync)
}

func syncFD(ctx context.Context, stack []uint64, right uint64, sync func(experimentalsys.File) experimentalsys.Errno) {
	d, e := table(ctx).lookup(uint32(stack[0]), right)
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	if d.fs == nil {
		stack[0] = errnoSuccess // a stream: nothing is buffered here
		return
	}
	f, e := d.opened()
	if e == errnoSuccess {
		e = fromSys(sync(f))
	}
	stack[0] = uint64(e)
}

// fdPrestatGet is WASI's fd_prestat_get(fd, result.prestat).
func fdPrestatGet(ctx context.Context, mod api.Module, stack []uint64) {
	fd, result := uint32(stack[0]), uint32(stack[1])
	d, e := table(ctx).lookup(fd, 0)
	if e == errnoSuccess && d.preopen == "" {
		e = errnoBadf
	}
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	// tag 0 (a directory), then the length of its name.
	writeResult64(mod.Memory(), stack, result, uint64(len(d.preopen))<<32, errnoSuccess)
}

// fdPrestatDirName is WASI's fd_prestat_dir_name(fd, path, path_len).
func fdPrestatDirName(ctx context.Context, mod api.Module, stack []uint64) {
	fd, ptr, n := uint32(stack[0]), uint32(stack[1]), uint32(stack[2])
	d, e := table(ctx).lookup(fd, 0)
	if e == errnoSuccess && d.preopen == "" {
		e = errnoBadf
	}
	if e == errnoSuccess && n < uint32(len(d.preopen)) {
		e = errnoNametoolong
	}
	if e == errnoSuccess && !mod.Memory().WriteString(ptr, d.preopen) {
		e = errnoFault
	}
	stack[0] = uint64(e)
}
