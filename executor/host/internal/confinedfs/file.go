// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package confinedfs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"syscall"

	experimentalsys "github.com/tetratelabs/wazero/experimental/sys"
	"github.com/tetratelabs/wazero/sys"
)

// wazero type-asserts PollableFile for fd_fdstat_get, fd_fdstat_set_flags
// and poll_oneoff, so files implement it rather than just File.
var _ experimentalsys.PollableFile = (*file)(nil)

// file is an open file or directory of an FS. Every operation goes through
// the descriptor held in f; nothing is looked up by path again (except
// Utimens off Linux, see futimens).
type file struct {
	// UnimplementedFile keeps file compiling if wazero adds methods; every
	// method it has today is overridden below.
	experimentalsys.UnimplementedFile

	fsys *FS
	// name is the mount-relative name the file was opened by. It goes stale
	// on rename and is only used where no descriptor-based call exists.
	name string
	f    *os.File

	// Fixed for the life of the descriptor, so read once at open.
	dev   uint64
	ino   sys.Inode
	mode  fs.FileMode
	isDir bool

	// appendMode is what the guest asked for with O_APPEND or SetAppend.
	appendMode bool
	// appendInKernel is set when O_APPEND is on the descriptor itself;
	// otherwise Write emulates it.
	appendInKernel bool
	nonblock       bool
	closed         bool
}

// Dev implements experimentalsys.File.Dev.
func (f *file) Dev() (uint64, experimentalsys.Errno) {
	return f.dev, 0
}

// Ino implements experimentalsys.File.Ino.
func (f *file) Ino() (sys.Inode, experimentalsys.Errno) {
	return f.ino, 0
}

// IsDir implements experimentalsys.File.IsDir.
func (f *file) IsDir() (bool, experimentalsys.Errno) {
	return f.isDir, 0
}

// IsAppend implements experimentalsys.File.IsAppend.
func (f *file) IsAppend() bool {
	return f.appendMode
}

// SetAppend implements experimentalsys.File.SetAppend without re-opening the
// file: see the package documentation on append mode.
func (f *file) SetAppend(enable bool) experimentalsys.Errno {
	switch {
	case f.closed:
		return experimentalsys.EBADF
	case f.isDir:
		return experimentalsys.EISDIR
	case enable && f.fsys.readOnly:
		return experimentalsys.EROFS
	}
	return f.setAppend(enable, kernelAppend)
}

// setAppend switches append mode, on the descriptor when inKernel, else by
// emulation in Write. Tests call it directly to cover the emulation on
// platforms that have the kernel path.
func (f *file) setAppend(enable, inKernel bool) experimentalsys.Errno {
	if inKernel || f.appendInKernel {
		if err := setAppendFlag(f.f, enable && inKernel); err != nil {
			return experimentalsys.UnwrapOSError(err)
		}
	}
	f.appendMode = enable
	f.appendInKernel = enable && inKernel
	return 0
}

// IsNonblock implements experimentalsys.PollableFile.IsNonblock.
func (f *file) IsNonblock() bool {
	return f.nonblock
}

// SetNonblock implements experimentalsys.PollableFile.SetNonblock.
func (f *file) SetNonblock(enable bool) experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	if err := setNonblockFlag(f.f, enable); err != nil {
		return experimentalsys.UnwrapOSError(err)
	}
	f.nonblock = enable
	return 0
}

// Poll implements experimentalsys.Pollable.Poll.
//
// Only regular files and directories can be opened in practice, and POSIX
// has those always ready, so there is nothing to wait for.
func (f *file) Poll(flag experimentalsys.Pflag, _ int32) (bool, experimentalsys.Errno) {
	switch {
	case f.closed:
		return false, experimentalsys.EBADF
	case flag&^(experimentalsys.POLLIN|experimentalsys.POLLOUT) != 0:
		return false, experimentalsys.ENOTSUP
	case f.isDir || f.mode.IsRegular():
		return true, 0
	}
	return false, experimentalsys.ENOSYS
}

// Stat implements experimentalsys.File.Stat.
func (f *file) Stat() (sys.Stat_t, experimentalsys.Errno) {
	if f.closed {
		return sys.Stat_t{}, experimentalsys.EBADF
	}
	fi, err := f.f.Stat()
	if err != nil {
		return sys.Stat_t{}, experimentalsys.UnwrapOSError(err)
	}
	return sys.NewStat_t(fi), 0
}

// Read implements experimentalsys.File.Read.
func (f *file) Read(buf []byte) (int, experimentalsys.Errno) {
	switch {
	case f.closed:
		return 0, experimentalsys.EBADF
	case f.isDir:
		return 0, experimentalsys.EISDIR
	case len(buf) == 0:
		return 0, 0
	}
	n, err := f.f.Read(buf)
	return n, experimentalsys.UnwrapOSError(err) // io.EOF maps to success.
}

// Pread implements experimentalsys.File.Pread.
func (f *file) Pread(buf []byte, off int64) (int, experimentalsys.Errno) {
	switch {
	case f.closed:
		return 0, experimentalsys.EBADF
	case f.isDir:
		return 0, experimentalsys.EISDIR
	case off < 0:
		return 0, experimentalsys.EINVAL
	case len(buf) == 0:
		return 0, 0
	}
	n, err := f.f.ReadAt(buf, off)
	return n, experimentalsys.UnwrapOSError(err)
}

// seekOffset is int64 under a name of its own only so that go vet's
// stdmethods check, which wants every Seek to be io.Seeker's, leaves alone
// the signature experimentalsys.File prescribes.
type seekOffset = int64

// Seek implements experimentalsys.File.Seek.
//
// On a directory only a rewind is allowed; os.File.Seek drops the cached
// directory state and rewinds the descriptor, so the next Readdir starts over
// and sees entries added since.
func (f *file) Seek(offset seekOffset, whence int) (int64, experimentalsys.Errno) {
	switch {
	case f.closed:
		return 0, experimentalsys.EBADF
	case whence < io.SeekStart || whence > io.SeekEnd:
		return 0, experimentalsys.EINVAL
	case f.isDir && (offset != 0 || whence != io.SeekStart):
		return 0, experimentalsys.EISDIR
	}
	n, err := f.f.Seek(offset, whence)
	if err != nil {
		return 0, experimentalsys.UnwrapOSError(err)
	}
	return n, 0
}

// Readdir implements experimentalsys.File.Readdir.
func (f *file) Readdir(n int) ([]experimentalsys.Dirent, experimentalsys.Errno) {
	if f.closed || !f.isDir {
		return nil, experimentalsys.EBADF
	}
	// Readdir rather than ReadDir because Dirent needs the inode. On Unix the
	// os package stats entries relative to the directory descriptor, so this
	// does not look paths up from the host root either.
	infos, err := f.f.Readdir(n)
	if errno := experimentalsys.UnwrapOSError(err); errno != 0 {
		if errno == experimentalsys.EINVAL || errno == experimentalsys.ENOTDIR {
			errno = experimentalsys.EBADF // the errors Readdir may return
		}
		return nil, errno
	}
	dirents := make([]experimentalsys.Dirent, 0, len(infos))
	for _, info := range infos {
		dirents = append(dirents, experimentalsys.Dirent{
			Name: info.Name(),
			Ino:  sys.NewStat_t(info).Ino,
			Type: info.Mode().Type(),
		})
	}
	return dirents, 0
}

// Write implements experimentalsys.File.Write.
func (f *file) Write(buf []byte) (int, experimentalsys.Errno) {
	switch {
	case f.closed:
		return 0, experimentalsys.EBADF
	case f.isDir:
		return 0, experimentalsys.EISDIR
	case f.fsys.readOnly:
		return 0, experimentalsys.EROFS
	case len(buf) == 0:
		return 0, 0
	}
	if f.appendMode && !f.appendInKernel {
		if _, err := f.f.Seek(0, io.SeekEnd); err != nil {
			return 0, experimentalsys.UnwrapOSError(err)
		}
	}
	n, err := f.f.Write(buf)
	return n, experimentalsys.UnwrapOSError(err)
}

// Pwrite implements experimentalsys.File.Pwrite.
func (f *file) Pwrite(buf []byte, off int64) (int, experimentalsys.Errno) {
	switch {
	case f.closed:
		return 0, experimentalsys.EBADF
	case f.isDir:
		return 0, experimentalsys.EISDIR
	case f.fsys.readOnly:
		return 0, experimentalsys.EROFS
	case off < 0:
		return 0, experimentalsys.EINVAL
	case len(buf) == 0:
		return 0, 0
	}
	n, err := f.f.WriteAt(buf, off)
	return n, experimentalsys.UnwrapOSError(err)
}

// Truncate implements experimentalsys.File.Truncate.
func (f *file) Truncate(size int64) experimentalsys.Errno {
	switch {
	case f.closed:
		return experimentalsys.EBADF
	case f.isDir:
		return experimentalsys.EISDIR
	case f.fsys.readOnly:
		return experimentalsys.EROFS
	case size < 0:
		return experimentalsys.EINVAL
	}
	return experimentalsys.UnwrapOSError(f.f.Truncate(size))
}

// Sync implements experimentalsys.File.Sync.
func (f *file) Sync() experimentalsys.Errno {
	if f.closed {
		return experimentalsys.EBADF
	}
	return experimentalsys.UnwrapOSError(f.f.Sync())
}

// Datasync implements experimentalsys.File.Datasync. Go has no portable
// fdatasync, and a full sync is a superset of it.
func (f *file) Datasync() experimentalsys.Errno {
	return f.Sync()
}

// Utimens implements experimentalsys.File.Utimens.
func (f *file) Utimens(atim, mtim int64) experimentalsys.Errno {
	switch {
	case f.closed:
		return experimentalsys.EBADF
	case f.fsys.readOnly:
		return experimentalsys.EROFS
	case atim == experimentalsys.UTIME_OMIT && mtim == experimentalsys.UTIME_OMIT:
		return 0
	}
	return f.futimens(atim, mtim)
}

// Close implements experimentalsys.File.Close. Closing twice is harmless.
func (f *file) Close() experimentalsys.Errno {
	if f.closed {
		return 0
	}
	f.closed = true
	return experimentalsys.UnwrapOSError(f.f.Close())
}

func isSyscallErrno(err error) bool {
	var errno syscall.Errno
	return errors.As(err, &errno)
}
