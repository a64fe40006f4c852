// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package confinedfs mounts a host directory for a WebAssembly guest as a
// wazero experimental/sys.FS that cannot be used to reach anything outside
// that directory.
//
// wazero's own sysfs.DirFS joins guest paths onto the host path and lets the
// kernel resolve them, so ".." or a symlink in the directory (one that was
// already there, or one the guest made) leads straight out of the mount, and
// its files re-open themselves by host path. This package resolves every
// path through an *os.Root instead, which refuses to leave the directory
// however the path is spelled and whatever symlinks it meets (relative,
// absolute, chained, or pointing at directories).
//
// # What it must not do
//
//   - Resolve a guest path any way except through the os.Root. Nothing here
//     joins guest paths onto the host directory or splits them into
//     components of its own; confinement is os.Root's job and is not
//     re-implemented.
//   - Re-open an open file by path. Open files are driven through their
//     descriptor. The single exception is File.Utimens on platforms other
//     than Linux, which has no portable futimens; it goes through the os.Root
//     and only if the name still refers to the same file.
//   - Let an escape succeed partly: a path that would leave the mount fails
//     before anything is created, renamed, linked or changed.
//   - Let the guest create set-user-ID, set-group-ID or sticky files: modes
//     passed to OpenFile, Mkdir and Chmod are cut down to the permission bits.
//
// # Errors
//
// An attempt to leave the mount fails with EPERM, wherever it happens (a ".."
// too many, an absolute path in a symlink, a symlink whose target is outside).
// EPERM rather than EACCES because nothing the host could change about
// permissions would make the operation succeed; it is refused by policy,
// which is what EPERM means. It is also what wazero itself answers when a
// WASI path climbs out of its pre-open by name, and what its DirFS returns
// for absolute symlink targets, so a guest sees one errno for every escape
// (WASI's own ENOTCAPABLE has no wazero Errno).
// Other failures are mapped with experimentalsys.UnwrapOSError.
//
// Paths arrive relative to the mount. "" and "." name the mount itself, and
// leading slashes are dropped, so "/etc/passwd" means "etc/passwd" inside the
// mount, never the host's file.
//
// # Symlinks
//
// Symlink stores its target verbatim: a target is only data until somebody
// follows it, and every follow through this package is confined. A symlink
// whose target leaves the mount therefore exists but cannot be followed
// (EPERM); one that stays inside works. Host processes that read the mounted
// directory without such protection should keep in mind that a guest can
// plant links there.
//
// # Open flags
//
//   - O_NOFOLLOW fails with ELOOP when the last component is a symlink. os.Root
//     follows symlinks (within the root) even when asked not to, so this is a
//     check before and after the open, not an atomic kernel flag. If the name
//     is swapped for a symlink in between, the open may follow it, but only
//     to somewhere inside the mount, and the open then fails with ELOOP.
//   - O_DIRECTORY fails with ENOTDIR on anything but a directory, and with
//     EISDIR when combined with write access; O_DIRECTORY|O_CREAT is EINVAL.
//   - O_SYNC, O_DSYNC and O_RSYNC are all passed to the host as O_SYNC, the
//     strongest of them, since Go offers no portable O_DSYNC or O_RSYNC.
//   - O_NONBLOCK is passed to the host (so a FIFO does not block the open) and
//     reported by IsNonblock; it has no effect on regular files.
//   - O_APPEND: see "Append mode" below.
//
// # Append mode
//
// On Linux, O_APPEND is set and cleared on the open descriptor with
// fcntl(F_SETFL), so appends are atomic in the kernel and SetAppend never
// re-opens anything. Go's os package is never told about O_APPEND (it would
// refuse WriteAt), which means Pwrite on an append-mode file follows Linux:
// the data goes to the end of the file whatever the offset. On other
// platforms append mode is emulated by seeking to the end before each Write,
// which is not atomic against other writers of the same host file.
//
// # Races
//
// Unlink, Rmdir and O_NOFOLLOW decide by looking at the name first, and
// Rename onto an existing directory removes the (empty) destination before
// renaming, because os.Root has no unlinkat-with-flags or POSIX rename. If the
// host or another guest changes the directory between the look and the act,
// the wrong entry may be affected, but always one inside the mount.
//
// An FS is safe for concurrent use. A File, like every wazero File, must be
// used by one goroutine at a time.
package confinedfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

var _ experimentalsys.FS = (*FS)(nil)

// escapeMessage is the text of the error os.Root returns for a path that
// leaves the root. The error value itself is unexported; New captures it, and
// this text is only the fallback if that capture ever stops working.
const escapeMessage = "path escapes from parent"

// FS is an experimentalsys.FS rooted at a host directory through an *os.Root.
//
// Every path is resolved inside that directory; see the package
// documentation for the rules and the errno returned for escape attempts.
type FS struct {
	// UnimplementedFS keeps FS compiling if wazero adds methods; every method
	// it has today is overridden below.
	experimentalsys.UnimplementedFS

	dir      string
	root     *os.Root
	readOnly bool

	// escapeErr is os.Root's unexported "path escapes from parent" error.
	escapeErr error
}

// New opens dir as a confined mount. readOnly makes every mutating operation
// (OpenFile with any write/create/trunc/append flag, Mkdir, Chmod, Rename, Rmdir, Unlink, Link,
// Symlink, Utimens, and File.Write/Pwrite/Truncate/Utimens/SetAppend(true)) fail with EROFS.
func New(dir string, readOnly bool) (*FS, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("confinedfs: opening mount %q: %w", dir, err)
	}
	return NewRoot(root, dir, readOnly), nil
}

// NewRoot makes the directory root, already open, a confined mount; name
// names it in messages. The FS owns root from then on (Close closes it).
// A process that can no longer resolve the directory's path (it has given
// up the privileges that let it) mounts it this way, from a descriptor
// opened while it could.
func NewRoot(root *os.Root, name string, readOnly bool) *FS {
	fsys := &FS{dir: name, root: root, readOnly: readOnly}

	// A lone ".." is refused lexically, before any file is looked at, so this
	// yields os.Root's escape error without side effects. Keeping the value
	// lets escapes be recognised by identity instead of by message.
	if _, err := root.Lstat(".."); err != nil {
		if inner := innerError(err); !isSyscallErrno(inner) {
			fsys.escapeErr = inner
		}
	}
	return fsys
}

// Open opens the file p of the mount for reading, for the host's own use
// (the executor reads a module the guest's view holds); like every path
// here it cannot resolve outside the mount. Escapes tells an error that
// says it tried.
func (f *FS) Open(p string) (*os.File, error) {
	return f.root.Open(mountRel(p))
}

// Escapes says whether err, from this FS, is a refusal to resolve a path
// outside the mount.
func (f *FS) Escapes(err error) bool {
	return f.isEscape(err)
}

// Close releases the underlying os.Root.
//
// Files already opened stay usable until they are closed; path operations
// fail with EBADF afterwards. Close the FS only once the wazero module using
// it is closed: wazero opens a pre-opened directory lazily and panics if that
// open fails with anything but ENOENT.
func (f *FS) Close() error {
	return f.root.Close()
}

// String implements fmt.Stringer.
func (f *FS) String() string {
	return f.dir
}

// OpenFile implements experimentalsys.FS.OpenFile.
func (f *FS) OpenFile(p string, flag experimentalsys.Oflag, perm fs.FileMode) (experimentalsys.File, experimentalsys.Errno) {
	name := mountRel(p)

	var osFlag int
	switch flag & (experimentalsys.O_RDONLY | experimentalsys.O_RDWR | experimentalsys.O_WRONLY) {
	case experimentalsys.O_RDONLY:
		osFlag = os.O_RDONLY
	case experimentalsys.O_RDWR:
		osFlag = os.O_RDWR
	case experimentalsys.O_WRONLY:
		osFlag = os.O_WRONLY
	default: // O_RDWR|O_WRONLY together mean nothing.
		return nil, experimentalsys.EINVAL
	}
	writable := osFlag != os.O_RDONLY

	if flag&experimentalsys.O_DIRECTORY != 0 {
		if writable {
			return nil, experimentalsys.EISDIR
		}
		if flag&experimentalsys.O_CREAT != 0 {
			// Open cannot create directories; Linux also refuses this since 6.4.
			return nil, experimentalsys.EINVAL
		}
	}
	if f.readOnly && (writable || flag&(experimentalsys.O_APPEND|experimentalsys.O_CREAT|experimentalsys.O_TRUNC) != 0) {
		return nil, experimentalsys.EROFS
	}

	if flag&experimentalsys.O_CREAT != 0 {
		osFlag |= os.O_CREATE
	}
	if flag&experimentalsys.O_EXCL != 0 {
		osFlag |= os.O_EXCL
	}
	if flag&experimentalsys.O_TRUNC != 0 {
		osFlag |= os.O_TRUNC
	}
	if flag&(experimentalsys.O_SYNC|experimentalsys.O_DSYNC|experimentalsys.O_RSYNC) != 0 {
		osFlag |= os.O_SYNC
	}
	osFlag |= platformOpenFlags(flag)
	// O_APPEND is deliberately not passed: see setAppend.

	noFollow := flag&experimentalsys.O_NOFOLLOW != 0
	if noFollow {
		if errno := f.refuseSymlink(name, osFlag&os.O_CREATE != 0); errno != 0 {
			return nil, errno
		}
	}

	osf, err := f.root.OpenFile(name, osFlag, perm&fs.ModePerm)
	if err != nil {
		return nil, f.toErrno(err)
	}
	fi, err := osf.Stat()
	if err != nil {
		_ = osf.Close()
		return nil, experimentalsys.UnwrapOSError(err)
	}

	if flag&experimentalsys.O_DIRECTORY != 0 && !fi.IsDir() {
		// Already refused by the kernel where O_DIRECTORY exists; this covers
		// the platforms where it does not.
		_ = osf.Close()
		return nil, experimentalsys.ENOTDIR
	}
	if noFollow {
		// The name may have become a symlink between the check and the open,
		// in which case os.Root followed it. Only accept the open if the name
		// still refers, without following, to what was opened.
		after, err := f.root.Lstat(name)
		if err != nil || after.Mode()&fs.ModeSymlink != 0 || !os.SameFile(fi, after) {
			_ = osf.Close()
			return nil, experimentalsys.ELOOP
		}
	}

	st := sys.NewStat_t(fi)
	file := &file{
		fsys:     f,
		name:     name,
		f:        osf,
		dev:      st.Dev,
		ino:      st.Ino,
		mode:     fi.Mode(),
		isDir:    fi.IsDir(),
		nonblock: flag&experimentalsys.O_NONBLOCK != 0,
	}
	if flag&experimentalsys.O_APPEND != 0 && !file.isDir {
		if errno := file.setAppend(true, kernelAppend); errno != 0 {
			_ = osf.Close()
			return nil, errno
		}
	}
	return file, 0
}

// refuseSymlink returns ELOOP when name is a symlink, and any error looking
// it up except ENOENT when the open may create the file.
func (f *FS) refuseSymlink(name string, creating bool) experimentalsys.Errno {
	fi, err := f.root.Lstat(name)
	if err != nil {
		if errno := f.toErrno(err); errno != experimentalsys.ENOENT || !creating {
			return errno
		}
		return 0
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return experimentalsys.ELOOP
	}
	return 0
}

// Lstat implements experimentalsys.FS.Lstat.
func (f *FS) Lstat(p string) (sys.Stat_t, experimentalsys.Errno) {
	fi, err := f.root.Lstat(mountRel(p))
	if err != nil {
		return sys.Stat_t{}, f.toErrno(err)
	}
	return sys.NewStat_t(fi), 0
}

// Stat implements experimentalsys.FS.Stat.
func (f *FS) Stat(p string) (sys.Stat_t, experimentalsys.Errno) {
	fi, err := f.root.Stat(mountRel(p))
	if err != nil {
		return sys.Stat_t{}, f.toErrno(err)
	}
	return sys.NewStat_t(fi), 0
}

// Mkdir implements experimentalsys.FS.Mkdir.
func (f *FS) Mkdir(p string, perm fs.FileMode) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	// wazero passes modes such as fs.ModeDir|0o700; os.Root rejects anything
	// but permission bits, and the guest must not get setgid/sticky anyway.
	return f.toErrno(f.root.Mkdir(mountRel(p), perm&fs.ModePerm))
}

// Chmod implements experimentalsys.FS.Chmod.
func (f *FS) Chmod(p string, perm fs.FileMode) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	return f.toErrno(f.root.Chmod(mountRel(p), perm&fs.ModePerm))
}

// Rename implements experimentalsys.FS.Rename.
func (f *FS) Rename(from, to string) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	from, to = mountRel(from), mountRel(to)
	errno := f.toErrno(f.root.Rename(from, to))
	if errno != experimentalsys.EEXIST {
		return errno
	}
	return f.renameOntoDir(from, to)
}

// renameOntoDir gives rename(2) semantics where os.Root.Rename, like
// os.Rename, refuses every existing directory as a destination with EEXIST.
func (f *FS) renameOntoDir(from, to string) experimentalsys.Errno {
	dst, err := f.root.Lstat(to)
	if err != nil {
		return f.toErrno(err)
	}
	if !dst.IsDir() {
		return experimentalsys.EEXIST
	}
	src, err := f.root.Lstat(from)
	if err != nil {
		return f.toErrno(err)
	}
	if !src.IsDir() {
		return experimentalsys.EISDIR
	}
	if os.SameFile(src, dst) {
		return 0 // rename(2) of a directory onto itself does nothing.
	}
	if isBelow(to, from) {
		// The kernel would refuse moving a directory into itself, but only
		// after the destination had been removed below.
		return experimentalsys.EINVAL
	}
	// Remove only takes an empty directory, which is precisely the
	// destination rename(2) would accept; otherwise it reports ENOTEMPTY.
	if err := f.root.Remove(to); err != nil {
		return f.toErrno(err)
	}
	if err := f.root.Rename(from, to); err != nil {
		// Put the empty destination back rather than lose it.
		_ = f.root.Mkdir(to, dst.Mode().Perm())
		return f.toErrno(err)
	}
	return 0
}

// Rmdir implements experimentalsys.FS.Rmdir.
func (f *FS) Rmdir(p string) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	name := mountRel(p)
	// os.Root.Remove takes files as well as directories; rmdir(2) must not.
	fi, err := f.root.Lstat(name)
	if err != nil {
		return f.toErrno(err)
	}
	if !fi.IsDir() {
		return experimentalsys.ENOTDIR
	}
	return f.toErrno(f.root.Remove(name))
}

// Unlink implements experimentalsys.FS.Unlink.
func (f *FS) Unlink(p string) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	name := mountRel(p)
	// os.Root.Remove would also remove an empty directory; unlink(2) must not.
	fi, err := f.root.Lstat(name)
	if err != nil {
		return f.toErrno(err)
	}
	if fi.IsDir() {
		return experimentalsys.EISDIR
	}
	return f.toErrno(f.root.Remove(name))
}

// Link implements experimentalsys.FS.Link.
func (f *FS) Link(oldPath, newPath string) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	return f.toErrno(f.root.Link(mountRel(oldPath), mountRel(newPath)))
}

// Symlink implements experimentalsys.FS.Symlink.
//
// oldPath is stored verbatim; see the package documentation.
func (f *FS) Symlink(oldPath, linkName string) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	return f.toErrno(f.root.Symlink(oldPath, mountRel(linkName)))
}

// Readlink implements experimentalsys.FS.Readlink.
func (f *FS) Readlink(p string) (string, experimentalsys.Errno) {
	target, err := f.root.Readlink(mountRel(p))
	if err != nil {
		return "", f.toErrno(err)
	}
	// The guest always sees "/" separators, whatever the host uses.
	return filepath.ToSlash(target), 0
}

// Utimens implements experimentalsys.FS.Utimens.
func (f *FS) Utimens(p string, atim, mtim int64) experimentalsys.Errno {
	if f.readOnly {
		return experimentalsys.EROFS
	}
	return f.toErrno(f.root.Chtimes(mountRel(p), nanosToTime(atim), nanosToTime(mtim)))
}

// toErrno maps an error from os.Root to an Errno, folding every escape
// attempt into EPERM.
func (f *FS) toErrno(err error) experimentalsys.Errno {
	if err == nil {
		return 0
	}
	if f.isEscape(err) {
		return experimentalsys.EPERM
	}
	return experimentalsys.UnwrapOSError(err)
}

func (f *FS) isEscape(err error) bool {
	inner := innerError(err)
	if inner == nil {
		return false
	}
	if f.escapeErr != nil && errors.Is(inner, f.escapeErr) {
		return true
	}
	return inner.Error() == escapeMessage
}

// innerError strips the *os.PathError or *os.LinkError that os.Root wraps
// around the cause.
func innerError(err error) error {
	var pathErr *os.PathError
	if errors.As(err, &pathErr) {
		return pathErr.Err
	}
	var linkErr *os.LinkError
	if errors.As(err, &linkErr) {
		return linkErr.Err
	}
	return err
}

// mountRel turns a guest path into a name relative to the mount. Leading
// slashes are dropped because the mount is the guest's root here, and os.Root
// would otherwise treat them as an escape.
func mountRel(p string) string {
	p = strings.TrimLeft(p, "/")
	if p == "" {
		return "."
	}
	return p
}

// isBelow reports whether p names something strictly inside dir, judging by
// the names alone.
func isBelow(p, dir string) bool {
	p, dir = path.Clean(p), path.Clean(dir)
	if dir == "." {
		return p != "."
	}
	return strings.HasPrefix(p, dir+"/")
}

// nanosToTime converts a wazero timestamp for os.Root.Chtimes, where the zero
// time.Time means "leave unchanged" exactly as UTIME_OMIT does. No int64 of
// nanoseconds since the epoch can reach year 1, so nothing else maps to zero.
func nanosToTime(nanos int64) time.Time {
	if nanos == experimentalsys.UTIME_OMIT {
		return time.Time{}
	}
	return time.Unix(0, nanos)
}
