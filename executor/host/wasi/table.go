// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"io"
	"net/netip"
	"sync"

	"github.com/tetratelabs/wazero/api"
	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"golang.org/x/sys/unix"
)

// WASI preview 1 file types (filetype).
const (
	filetypeUnknown         = 0
	filetypeCharacterDevice = 2
	filetypeDirectory       = 3
	filetypeRegularFile     = 4
	filetypeSocketStream    = 6
	filetypeSymbolicLink    = 7
)

// WASI preview 1 descriptor flags (fdflags).
const (
	fdflagAppend   = 1
	fdflagDsync    = 2
	fdflagNonblock = 4
	fdflagRsync    = 8
	fdflagSync     = 16
	fdflagsAll     = fdflagAppend | fdflagDsync | fdflagNonblock | fdflagRsync | fdflagSync
)

// WASI preview 1 rights: what a descriptor may be used for. A right
// missing from a descriptor makes the function that needs it fail with
// ENOTCAPABLE; a descriptor's rights can be dropped (fd_fdstat_set_rights),
// never regained.
const (
	rightFdDatasync uint64 = 1 << iota
	rightFdRead
	rightFdSeek
	rightFdFdstatSetFlags
	rightFdSync
	rightFdTell
	rightFdWrite
	rightFdAdvise
	rightFdAllocate
	rightPathCreateDirectory
	rightPathCreateFile
	rightPathLinkSource
	rightPathLinkTarget
	rightPathOpen
	rightFdReaddir
	rightPathReadlink
	rightPathRenameSource
	rightPathRenameTarget
	rightPathFilestatGet
	rightPathFilestatSetSize
	rightPathFilestatSetTimes
	rightFdFilestatGet
	rightFdFilestatSetSize
	rightFdFilestatSetTimes
	rightPathSymlink
	rightPathRemoveDirectory
	rightPathUnlinkFile
	rightPollFdReadwrite
	rightSockShutdown
	rightSockAccept
)

// The rights each kind of descriptor can have.
const (
	// rightsFile: a regular file's.
	rightsFile = rightFdDatasync | rightFdRead | rightFdSeek | rightFdFdstatSetFlags | rightFdSync | rightFdTell |
		rightFdWrite | rightFdAdvise | rightFdAllocate | rightFdFilestatGet | rightFdFilestatSetSize |
		rightFdFilestatSetTimes | rightPollFdReadwrite
	// rightsDir: a directory's.
	rightsDir = rightFdFdstatSetFlags | rightFdSync | rightFdAdvise | rightPathCreateDirectory | rightPathCreateFile |
		rightPathLinkSource | rightPathLinkTarget | rightPathOpen | rightFdReaddir | rightPathReadlink |
		rightPathRenameSource | rightPathRenameTarget | rightPathFilestatGet | rightPathFilestatSetSize |
		rightPathFilestatSetTimes | rightFdFilestatGet | rightFdFilestatSetTimes | rightPathSymlink |
		rightPathRemoveDirectory | rightPathUnlinkFile | rightPollFdReadwrite
	// rightsStdin, rightsStdout: standard streams' (stdout's also
	// stderr's).
	rightsStdin  = rightFdRead | rightFdFdstatSetFlags | rightFdFilestatGet | rightPollFdReadwrite
	rightsStdout = rightFdWrite | rightFdFdstatSetFlags | rightFdFilestatGet | rightPollFdReadwrite
	// rightsSocket: a connection's; rightsListener: a listener's.
	rightsSocket   = rightFdRead | rightFdWrite | rightFdFdstatSetFlags | rightFdFilestatGet | rightPollFdReadwrite | rightSockShutdown
	rightsListener = rightFdFdstatSetFlags | rightFdFilestatGet | rightPollFdReadwrite | rightSockAccept
	// rightsRead and rightsWrite: the rights that need the host file open
	// for reading, for writing.
	rightsRead  = rightFdRead | rightFdReaddir
	rightsWrite = rightFdDatasync | rightFdWrite | rightFdAllocate | rightFdFilestatSetSize
)

// maxDescriptors bounds a guest's table, as a process's descriptor limit
// does.
const maxDescriptors = 1 << 16

// descriptor is one entry of a guest's table.
type descriptor struct {
	filetype uint8
	// base and inheriting are its rights, and those of what is opened
	// through it.
	base, inheriting uint64
	// flags are its fdflags as the guest set them.
	flags uint16

	// A file or directory of a mount: fs is the mount, path the file's
	// path in it ("." for its top), by which a directory resolves the
	// guest's paths relative to it. file is nil for a preopened directory
	// until it is used.
	fs   experimentalsys.FS
	path string
	file experimentalsys.File
	// preopen is the guest's name of a preopened directory.
	preopen string
	// dir is what fd_readdir listed of a directory.
	dir *dirListing

	// Standard streams.
	reader io.Reader
	writer io.Writer

	// sock is a socket: a listener granted to the guest or a connection
	// accepted on one.
	sock *Socket
}

// Stdio is a guest's standard streams. A nil In reads as empty; a nil
// Out or Err discards.
type Stdio struct {
	In       io.Reader
	Out, Err io.Writer
}

// Table is an instance's descriptor table: its standard streams, its
// preopened directories, the files and directories it opened, and its
// sockets. Descriptors are numbered from 0, the lowest free number first.
// Only its instance uses it (a guest's calls do not run concurrently);
// Close, which the instance calls when it has ended, may come from
// another goroutine, and Interrupt from any.
type Table struct {
	fds  []*descriptor
	free int // a lower bound of the lowest free number

	// network is the guest's way out (sock_open, sock_connect,
	// sock_getaddrinfo); nil: it has none.
	network Network
	// resolved are the names the guest resolved to each address
	// (sock_getaddrinfo), which its connects are checked with.
	resolved map[netip.Addr][]string

	// polled is poll's scratch: the descriptors waited for, and the waker.
	polled []unix.PollFd

	// waker wakes a wait for sockets when the instance is stopped.
	wakeOnce sync.Once
	waker    *waker
	closed   bool
}

// NewTable makes a table with the standard streams at 0, 1 and 2.
func NewTable(s Stdio) *Table {
	t := &Table{fds: make([]*descriptor, 3, 8)}
	t.fds[0] = &descriptor{filetype: filetypeCharacterDevice, base: rightsStdin, reader: s.In}
	t.fds[1] = &descriptor{filetype: filetypeCharacterDevice, base: rightsStdout, writer: s.Out}
	t.fds[2] = &descriptor{filetype: filetypeCharacterDevice, base: rightsStdout, writer: s.Err}
	t.free = 3
	return t
}

// Preopen adds a preopened directory: fs, the mount, under the guest's
// name guestPath. It returns its descriptor.
func (t *Table) Preopen(guestPath string, fs experimentalsys.FS) uint32 {
	return t.insert(&descriptor{filetype: filetypeDirectory, base: rightsDir, inheriting: rightsDir | rightsFile, fs: fs, path: ".", preopen: guestPath})
}

// insert puts d at the lowest free number.
func (t *Table) insert(d *descriptor) uint32 {
	for i := t.free; i < len(t.fds); i++ {
		if t.fds[i] == nil {
			t.fds[i] = d
			t.free = i + 1
			return uint32(i)
		}
	}
	t.fds = append(t.fds, d)
	t.free = len(t.fds)
	return uint32(len(t.fds) - 1)
}

// give puts d into the table and writes its number at result for the
// guest; when result is outside the guest's memory, d is closed again and
// the call fails (EFAULT), so that nothing stays open that the guest does
// not know of.
func (t *Table) give(mem api.Memory, d *descriptor, result uint32) errno {
	fd := t.insert(d)
	if !mem.WriteUint32Le(result, fd) {
		_ = t.remove(fd).close()
		return errnoFault
	}
	return errnoSuccess
}

// full says whether the table holds as many descriptors as it may.
func (t *Table) full() bool {
	if len(t.fds) < maxDescriptors {
		return false
	}
	for _, d := range t.fds[t.free:] {
		if d == nil {
			return false
		}
	}
	return true
}

// lookup is descriptor fd, which must have the rights needed: EBADF when
// there is none, ENOTCAPABLE when it lacks one of them.
func (t *Table) lookup(fd uint32, needed uint64) (*descriptor, errno) {
	if uint64(fd) >= uint64(len(t.fds)) || t.fds[fd] == nil {
		return nil, errnoBadf
	}
	d := t.fds[fd]
	if d.base&needed != needed {
		return nil, errnoNotcapable
	}
	return d, errnoSuccess
}

// remove takes fd out of the table and returns it.
func (t *Table) remove(fd uint32) *descriptor {
	d := t.fds[fd]
	t.fds[fd] = nil
	if int(fd) < t.free {
		t.free = int(fd)
	}
	return d
}

// close releases what d holds.
func (d *descriptor) close() errno {
	var e errno
	if d.file != nil {
		e = fromSys(d.file.Close())
		d.file = nil
	}
	if d.sock != nil {
		e = fromErr(d.sock.close())
	}
	return e
}

// Close closes every descriptor: the instance has ended. A second Close
// does nothing.
func (t *Table) Close() {
	if t.closed {
		return
	}
	for i, d := range t.fds {
		if d != nil {
			_ = d.close()
			t.fds[i] = nil
		}
	}
	t.closed = true
	if t.waker != nil {
		t.waker.close()
		t.waker = nil
	}
}

// Len is the number of open descriptors.
func (t *Table) Len() int {
	n := 0
	for _, d := range t.fds {
		if d != nil {
			n++
		}
	}
	return n
}

// opened is the descriptor's file, opened if it is a preopened directory
// not used before.
func (d *descriptor) opened() (experimentalsys.File, errno) {
	if d.file != nil {
		return d.file, errnoSuccess
	}
	if d.fs == nil {
		return nil, errnoBadf
	}
	f, e := d.fs.OpenFile(d.path, experimentalsys.O_RDONLY|experimentalsys.O_DIRECTORY, 0)
	if e != 0 {
		return nil, fromSys(e)
	}
	d.file = f
	return f, errnoSuccess
}
