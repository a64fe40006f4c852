// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"context"
	"strings"

	"github.com/tetratelabs/wazero/api"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

// WASI preview 1 values of the path_ functions.
const (
	lookupSymlinkFollow = 1

	oflagCreat     = 1
	oflagDirectory = 2
	oflagExcl      = 4
	oflagTrunc     = 8
)

// A guest's path is resolved relative to a directory descriptor, never
// above it: the path is checked by its names first (no absolute path, no
// ".." that climbs out of the directory, no NUL), and then handed to the
// directory's mount, the confined filesystem, which resolves it through
// an os.Root and refuses whatever, symlinks included, would leave the
// mount. A trailing slash is kept: it says the path names a directory.

// confine checks the guest's path p, relative to a directory, by its
// names: ENOTCAPABLE for an absolute path or one that climbs out of the
// directory, EINVAL for a NUL, ENOENT for an empty path.
func confine(p string) errno {
	switch {
	case p == "":
		return errnoNoent
	case strings.IndexByte(p, 0) >= 0:
		return errnoInval
	case p[0] == '/':
		return errnoNotcapable
	}
	depth := 0
	for name := range strings.SplitSeq(p, "/") {
		switch name {
		case "", ".":
		case "..":
			if depth == 0 {
				return errnoNotcapable
			}
			depth--
		default:
			depth++
		}
	}
	return errnoSuccess
}

// at resolves the guest's path at ptr (n bytes) relative to directory
// descriptor fd, which must have right: the directory, and the path in
// its mount.
func (t *Table) at(mem api.Memory, fd uint32, right uint64, ptr, n uint32) (*descriptor, string, errno) {
	d, e := t.lookup(fd, right)
	if e != errnoSuccess {
		return nil, "", e
	}
	if d.filetype != filetypeDirectory || d.fs == nil {
		return nil, "", errnoNotdir
	}
	b, ok := mem.Read(ptr, n)
	if !ok {
		return nil, "", errnoFault
	}
	p := string(b)
	if e := confine(p); e != errnoSuccess {
		return nil, "", e
	}
	if d.path != "." {
		p = d.path + "/" + p
	}
	return d, p, errnoSuccess
}

// pathOpen is WASI's path_open(fd, dirflags, path, path_len, oflags,
// fs_rights_base, fs_rights_inheriting, fdflags, result.opened_fd).
//
// The new descriptor's rights are those asked for that the directory
// passes on (its inheriting rights), cut down to what its kind of file
// can have. The host file is opened for reading when they include
// reading, for writing when they include writing.
func pathOpen(ctx context.Context, mod api.Module, stack []uint64) {
	fd, dirflags, ptr, n := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), uint32(stack[3])
	oflags, base, inheriting, fdflags, result := uint16(stack[4]), stack[5], stack[6], uint16(stack[7]), uint32(stack[8])
	t := table(ctx)
	mem := mod.Memory()
	needed := rightPathOpen
	if oflags&oflagCreat != 0 {
		needed |= rightPathCreateFile
	}
	if oflags&oflagTrunc != 0 {
		needed |= rightPathFilestatSetSize
	}
	dir, p, e := t.at(mem, fd, needed, ptr, n)
	if e == errnoSuccess && (oflags&^(oflagCreat|oflagDirectory|oflagExcl|oflagTrunc) != 0 || fdflags&^fdflagsAll != 0) {
		e = errnoInval
	}
	if e == errnoSuccess && t.full() {
		e = errnoMfile
	}
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	base &= dir.inheriting
	inheriting &= dir.inheriting
	read := base&rightsRead != 0
	write := base&rightsWrite != 0 || fdflags&fdflagAppend != 0
	var flag experimentalsys.Oflag
	switch {
	case oflags&oflagDirectory != 0 && write:
		// A directory is not written to.
		stack[0] = errnoIsdir
		return
	case oflags&oflagDirectory != 0:
		flag = experimentalsys.O_RDONLY | experimentalsys.O_DIRECTORY
	case read && write:
		flag = experimentalsys.O_RDWR
	case write:
		flag = experimentalsys.O_WRONLY
	default:
		flag = experimentalsys.O_RDONLY
	}
	if oflags&oflagCreat != 0 {
		flag |= experimentalsys.O_CREAT
	}
	if oflags&oflagExcl != 0 {
		flag |= experimentalsys.O_EXCL
	}
	if oflags&oflagTrunc != 0 {
		flag |= experimentalsys.O_TRUNC
	}
	if dirflags&lookupSymlinkFollow == 0 {
		flag |= experimentalsys.O_NOFOLLOW
	}
	if fdflags&fdflagAppend != 0 {
		flag |= experimentalsys.O_APPEND
	}
	if fdflags&fdflagNonblock != 0 {
		flag |= experimentalsys.O_NONBLOCK
	}
	if fdflags&fdflagDsync != 0 {
		flag |= experimentalsys.O_DSYNC
	}
	if fdflags&fdflagRsync != 0 {
		flag |= experimentalsys.O_RSYNC
	}
	if fdflags&fdflagSync != 0 {
		flag |= experimentalsys.O_SYNC
	}
	f, se := dir.fs.OpenFile(p, flag, 0o666)
	if se != 0 {
		stack[0] = uint64(fromSys(se))
		return
	}
	st, se := f.Stat()
	if se != 0 {
		_ = f.Close()
		stack[0] = uint64(fromSys(se))
		return
	}
	nd := &descriptor{filetype: filetypeOf(st.Mode), fs: dir.fs, path: p, file: f, flags: fdflags, inheriting: inheriting}
	if nd.filetype == filetypeDirectory {
		nd.base = base & rightsDir
		nd.path = strings.TrimRight(p, "/")
	} else {
		nd.base = base & rightsFile
	}
	stack[0] = uint64(t.give(mem, nd, result))
}

// pathCreateDirectory is WASI's path_create_directory(fd, path,
// path_len).
func pathCreateDirectory(ctx context.Context, mod api.Module, stack []uint64) {
	dir, p, e := table(ctx).at(mod.Memory(), uint32(stack[0]), rightPathCreateDirectory, uint32(stack[1]), uint32(stack[2]))
	if e == errnoSuccess {
		e = fromSys(dir.fs.Mkdir(p, 0o777))
	}
	stack[0] = uint64(e)
}

// pathRemoveDirectory is WASI's path_remove_directory(fd, path,
// path_len).
func pathRemoveDirectory(ctx context.Context, mod api.Module, stack []uint64) {
	dir, p, e := table(ctx).at(mod.Memory(), uint32(stack[0]), rightPathRemoveDirectory, uint32(stack[1]), uint32(stack[2]))
	if e == errnoSuccess {
		e = fromSys(dir.fs.Rmdir(p))
	}
	stack[0] = uint64(e)
}

// pathUnlinkFile is WASI's path_unlink_file(fd, path, path_len).
func pathUnlinkFile(ctx context.Context, mod api.Module, stack []uint64) {
	dir, p, e := table(ctx).at(mod.Memory(), uint32(stack[0]), rightPathUnlinkFile, uint32(stack[1]), uint32(stack[2]))
	if e == errnoSuccess {
		if strings.HasSuffix(p, "/") {
			// A file named with a trailing slash is not a file: unlink
			// removes no directory, and no symlink named as one.
			if st, se := dir.fs.Lstat(strings.TrimRight(p, "/")); se == 0 && st.Mode.IsDir() {
				e = errnoIsdir
			} else if se == 0 {
				e = errnoNotdir
			} else {
				e = fromSys(se)
			}
		} else {
			e = fromSys(dir.fs.Unlink(p))
		}
	}
	stack[0] = uint64(e)
}

// pathFilestatGet is WASI's path_filestat_get(fd, flags, path, path_len,
// result.buf).
func pathFilestatGet(ctx context.Context, mod api.Module, stack []uint64) {
	mem := mod.Memory()
	dir, p, e := table(ctx).at(mem, uint32(stack[0]), rightPathFilestatGet, uint32(stack[2]), uint32(stack[3]))
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	var st sys.Stat_t
	var se experimentalsys.Errno
	if uint32(stack[1])&lookupSymlinkFollow != 0 {
		st, se = dir.fs.Stat(p)
	} else {
		st, se = dir.fs.Lstat(p)
	}
	if se != 0 {
		stack[0] = uint64(fromSys(se))
		return
	}
	stack[0] = uint64(putFilestat(mem, uint32(stack[4]), &st, 0))
}

// lutimens is a mount that sets a symlink's own times.
type lutimens interface {
	Lutimens(p string, atim, mtim int64) experimentalsys.Errno
}

// pathFilestatSetTimes is WASI's path_filestat_set_times(fd, flags, path,
// path_len, atim, mtim, fst_flags).
func pathFilestatSetTimes(ctx context.Context, mod api.Module, stack []uint64) {
	dir, p, e := table(ctx).at(mod.Memory(), uint32(stack[0]), rightPathFilestatSetTimes, uint32(stack[2]), uint32(stack[3]))
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	atim, mtim, e := times(int64(stack[4]), int64(stack[5]), uint16(stack[6]))
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	if uint32(stack[1])&lookupSymlinkFollow != 0 {
		stack[0] = uint64(fromSys(dir.fs.Utimens(p, atim, mtim)))
		return
	}
	if l, ok := dir.fs.(lutimens); ok {
		stack[0] = uint64(fromSys(l.Lutimens(p, atim, mtim)))
		return
	}
	stack[0] = errnoNotsup
}

// pathLink is WASI's path_link(old_fd, old_flags, old_path, old_path_len,
// new_fd, new_path, new_path_len): a hard link, within one mount. A link
// to what a symlink points at is not made (EINVAL): the kernel links the
// symlink itself.
func pathLink(ctx context.Context, mod api.Module, stack []uint64) {
	t, mem := table(ctx), mod.Memory()
	from, oldPath, e := t.at(mem, uint32(stack[0]), rightPathLinkSource, uint32(stack[2]), uint32(stack[3]))
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	to, newPath, e := t.at(mem, uint32(stack[4]), rightPathLinkTarget, uint32(stack[5]), uint32(stack[6]))
	switch {
	case e != errnoSuccess:
	case uint32(stack[1])&lookupSymlinkFollow != 0:
		e = errnoInval
	case from.fs != to.fs:
		e = errnoXdev
	default:
		e = fromSys(from.fs.Link(oldPath, newPath))
	}
	stack[0] = uint64(e)
}

// pathRename is WASI's path_rename(fd, old_path, old_path_len, new_fd,
// new_path, new_path_len), within one mount.
func pathRename(ctx context.Context, mod api.Module, stack []uint64) {
	t, mem := table(ctx), mod.Memory()
	from, oldPath, e := t.at(mem, uint32(stack[0]), rightPathRenameSource, uint32(stack[1]), uint32(stack[2]))
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	to, newPath, e := t.at(mem, uint32(stack[3]), rightPathRenameTarget, uint32(stack[4]), uint32(stack[5]))
	switch {
	case e != errnoSuccess:
	case from.fs != to.fs:
		e = errnoXdev
	default:
		e = fromSys(from.fs.Rename(oldPath, newPath))
	}
	stack[0] = uint64(e)
}

// pathSymlink is WASI's path_symlink(old_path, old_path_len, fd,
// new_path, new_path_len). The target is stored as given, but for an
// absolute one, which is refused: a guest's absolute path names nothing
// of the host, and the confined filesystem would never follow it anyway.
func pathSymlink(ctx context.Context, mod api.Module, stack []uint64) {
	mem := mod.Memory()
	target, ok := mem.Read(uint32(stack[0]), uint32(stack[1]))
	if !ok {
		stack[0] = errnoFault
		return
	}
	dir, p, e := table(ctx).at(mem, uint32(stack[2]), rightPathSymlink, uint32(stack[3]), uint32(stack[4]))
	switch {
	case e != errnoSuccess:
	case len(target) == 0:
		e = errnoNoent
	case strings.IndexByte(string(target), 0) >= 0:
		e = errnoInval
	case target[0] == '/':
		e = errnoPerm
	default:
		e = fromSys(dir.fs.Symlink(string(target), p))
	}
	stack[0] = uint64(e)
}

// pathReadlink is WASI's path_readlink(fd, path, path_len, buf, buf_len,
// result.bufused): a target longer than buf is cut to fit.
func pathReadlink(ctx context.Context, mod api.Module, stack []uint64) {
	mem := mod.Memory()
	dir, p, e := table(ctx).at(mem, uint32(stack[0]), rightPathReadlink, uint32(stack[1]), uint32(stack[2]))
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	target, se := dir.fs.Readlink(p)
	if se != 0 {
		stack[0] = uint64(fromSys(se))
		return
	}
	buf, ok := mem.Read(uint32(stack[3]), uint32(stack[4]))
	if !ok {
		stack[0] = errnoFault
		return
	}
	n := copy(buf, target)
	writeResult32(mem, stack, uint32(stack[5]), uint32(n), errnoSuccess)
}
