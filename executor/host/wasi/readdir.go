// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"context"

	"github.com/tetratelabs/wazero/api"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
)

// direntSize is the size of a WASI dirent before its name.
const direntSize = 24

// dirListing is a directory's entries as fd_readdir hands them out: "."
// and "..", then what the host lists. A cookie is an index into it; the
// listing is made again when a guest starts over (cookie 0).
type dirListing struct {
	entries []experimentalsys.Dirent
}

// list lists the directory f from its start.
func list(d *descriptor, f experimentalsys.File) (*dirListing, errno) {
	if d.dir != nil {
		if _, se := f.Seek(0, 0); se != 0 {
			return nil, fromSys(se)
		}
	}
	st, se := f.Stat()
	if se != 0 {
		return nil, fromSys(se)
	}
	entries, se := f.Readdir(-1)
	if se != 0 {
		return nil, fromSys(se)
	}
	l := &dirListing{entries: make([]experimentalsys.Dirent, 0, len(entries)+2)}
	l.entries = append(l.entries,
		experimentalsys.Dirent{Name: ".", Ino: st.Ino, Type: st.Mode.Type()},
		experimentalsys.Dirent{Name: "..", Type: st.Mode.Type()})
	l.entries = append(l.entries, entries...)
	return l, errnoSuccess
}

// fdReaddir is WASI's fd_readdir(fd, buf, buf_len, cookie,
// result.bufused): the entries from cookie on, as many as fit, the last
// one cut at the buffer's end (the guest then knows to ask again with a
// larger buffer).
func fdReaddir(ctx context.Context, mod api.Module, stack []uint64) {
	fd, ptr, n, cookie, result := uint32(stack[0]), uint32(stack[1]), uint32(stack[2]), stack[3], uint32(stack[4])
	mem := mod.Memory()
	d, e := table(ctx).lookup(fd, rightFdReaddir)
	if e == errnoSuccess && d.filetype != filetypeDirectory {
		e = errnoNotdir
	}
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	f, e := d.opened()
	if e != errnoSuccess {
		stack[0] = uint64(e)
		return
	}
	if cookie == 0 || d.dir == nil {
		l, e := list(d, f)
		if e != errnoSuccess {
			stack[0] = uint64(e)
			return
		}
		d.dir = l
	}
	buf, ok := mem.Read(ptr, n)
	if !ok {
		stack[0] = errnoFault
		return
	}
	if cookie > uint64(len(d.dir.entries)) {
		stack[0] = errnoInval
		return
	}
	used := 0
	var head [direntSize]byte
	for i := int(cookie); i < len(d.dir.entries) && used < len(buf); i++ {
		ent := d.dir.entries[i]
		le.PutUint64(head[0:], uint64(i+1))
		le.PutUint64(head[8:], ent.Ino)
		le.PutUint32(head[16:], uint32(len(ent.Name)))
		head[20] = filetypeOf(ent.Type)
		clear(head[21:])
		used += copy(buf[used:], head[:])
		used += copy(buf[used:], ent.Name)
	}
	writeResult32(mem, stack, result, uint32(used), errnoSuccess)
}
