// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"errors"
	"io/fs"
	"os"
	"syscall"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/internal/confinedfs"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// taskFiles is everything of the host a task may reach, opened once when
// the task starts: its view (the mounts), the allocation's log directory,
// its state directory, its part of the executor log and a module file
// outside the view. Nothing is resolved by path after that. A Nomad client
// makes its data_dir 0700, so an executor that has become the task's user
// cannot resolve any path beneath it; it works from these descriptors,
// which an executor of its own opened while it was still root
// (openTaskFiles), and the driver opened for a shared executor that runs
// as its user from the start (handedTaskFiles, see handoff.go).
type taskFiles struct {
	view view
	// logDir is the allocation's log directory when the executor writes
	// the task's logs (StartRequest.logs), else nil.
	logDir *os.Root
	// stateDir is the task's directory, where the exit status is recorded,
	// or nil.
	stateDir *os.Root
	// logFile is the task's part of the executor log, or nil; logFileErr
	// says why it could not be opened (the executor then logs to its own).
	logFile    *os.File
	logFileErr error
	// module is the module's file outside the view (module_file), or nil.
	module *os.File
}

// openTaskFiles opens what req names by path, as the executor still can.
func openTaskFiles(req *proto.StartRequest) (_ *taskFiles, err error) {
	f := &taskFiles{}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	for _, m := range req.Mounts {
		fsys, err := confinedfs.New(m.HostPath, m.ReadOnly)
		if err != nil {
			return nil, unreachable("mount "+m.GuestPath, m.HostPath, err)
		}
		f.view = append(f.view, mount{Mount: executor.Mount{GuestPath: m.GuestPath, HostPath: m.HostPath, ReadOnly: m.ReadOnly}, fs: fsys})
	}
	if req.Logs != nil {
		if f.logDir, err = os.OpenRoot(req.Logs.Dir); err != nil {
			return nil, unreachable("the log directory", req.Logs.Dir, err)
		}
	}
	if req.StateDir != "" {
		if f.stateDir, err = os.OpenRoot(req.StateDir); err != nil {
			return nil, unreachable("the task directory", req.StateDir, err)
		}
	}
	if req.ModuleFile != "" {
		if f.module, err = os.Open(req.ModuleFile); err != nil {
			return nil, unreachable("module "+req.Module+", pulled to", req.ModuleFile, err)
		}
	}
	if req.LogFile != "" {
		f.logFile, f.logFileErr = os.OpenFile(req.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	}
	return f, nil
}

// handedTaskFiles takes what the driver opened for req and handed over,
// by the names above. It owns every file in handed from then on, used or
// not. A name req needs and handed lacks is a node error: the driver that
// sent the task is of another version.
func handedTaskFiles(req *proto.StartRequest, handed map[string]*os.File) (_ *taskFiles, err error) {
	f := &taskFiles{}
	defer func() {
		for _, h := range handed {
			_ = h.Close()
		}
		if err != nil {
			f.close()
		}
	}()
	take := func(name string) (*os.File, error) {
		h, ok := handed[name]
		if !ok {
			return nil, executor.NodeErrorf("the driver handed over no %q for task %s: the driver and the shared executor are of different versions; restart the shared executor (stop its tasks, or the client)", name, req.TaskId)
		}
		delete(handed, name)
		return h, nil
	}
	root := func(name, what, path string) (*os.Root, error) {
		h, err := take(name)
		if err != nil {
			return nil, err
		}
		defer h.Close()
		r, err := rootOf(h)
		if err != nil {
			return nil, unreachable(what, path, err)
		}
		return r, nil
	}
	for _, m := range req.Mounts {
		r, err := root(executor.HandoffMount+m.GuestPath, "mount "+m.GuestPath, m.HostPath)
		if err != nil {
			return nil, err
		}
		f.view = append(f.view, mount{Mount: executor.Mount{GuestPath: m.GuestPath, HostPath: m.HostPath, ReadOnly: m.ReadOnly}, fs: confinedfs.NewRoot(r, m.HostPath, m.ReadOnly)})
	}
	if req.Logs != nil {
		if f.logDir, err = root(executor.HandoffLogDir, "the log directory", req.Logs.Dir); err != nil {
			return nil, err
		}
	}
	if req.StateDir != "" {
		if f.stateDir, err = root(executor.HandoffStateDir, "the task directory", req.StateDir); err != nil {
			return nil, err
		}
	}
	if req.LogFile != "" {
		if f.logFile, err = take(executor.HandoffLogFile); err != nil {
			return nil, err
		}
	}
	if req.ModuleFile != "" {
		if f.module, err = take(executor.HandoffModule); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// logPath names the task's log for messages: its directory, or its FIFO.
func logPath(req *proto.StartRequest) string {
	if req.Logs != nil {
		return req.Logs.Dir
	}
	return req.StdoutPath
}

// unreachable is the error for a file of the task the executor cannot
// open: the operator's to fix when it is a matter of permissions (it names
// the path and what to change), else the node's.
func unreachable(what, path string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return executor.OperatorErrorf("the wasm executor (uid %d) cannot open %s (%s): %v. It opens what a task may reach before it becomes the task's user; one it cannot reach then is a matter of the node's permissions: make the directory reachable by the driver's user, or run the Nomad client as root", os.Geteuid(), what, path, err)
	}
	return executor.NodeErrorf("open %s (%s): %v", what, path, err)
}

// close closes whatever is open; the view's mounts too, so only once no
// program uses them.
func (f *taskFiles) close() {
	f.view.close()
	for _, r := range []*os.Root{f.logDir, f.stateDir} {
		if r != nil {
			_ = r.Close()
		}
	}
	for _, h := range []*os.File{f.logFile, f.module} {
		if h != nil {
			_ = h.Close()
		}
	}
}

// mount is one directory of the guest's view, open.
type mount struct {
	executor.Mount
	fs *confinedfs.FS
}

// view is the guest's view of the host: its mounts, open. The programs of
// a task share it (its own and those nomad alloc exec runs), and the task
// closes it when it is released.
type view []mount

func (v view) mounts() []executor.Mount {
	out := make([]executor.Mount, len(v))
	for i, m := range v {
		out[i] = m.Mount
	}
	return out
}

func (v view) close() {
	for _, m := range v {
		_ = m.fs.Close()
	}
}

// open opens the module at guestPath through the mount that holds it, so
// that a symlink cannot lead outside the task's view.
func (v view) open(guestPath string) (*os.File, error) {
	m, rel, err := executor.ResolveGuestPath(v.mounts(), guestPath)
	if err != nil {
		return nil, executor.NotFoundErrorf("module: %v", err)
	}
	var fsys *confinedfs.FS
	for _, o := range v {
		if o.GuestPath == m.GuestPath {
			fsys = o.fs
		}
	}
	f, err := fsys.Open(rel)
	if err != nil {
		return nil, openModuleError(guestPath, m.GuestPath, fsys.Escapes(err), err)
	}
	if st, err := f.Stat(); err == nil && st.IsDir() {
		_ = f.Close()
		return nil, executor.JobErrorf("module %s is a directory, not a .wasm file", guestPath)
	}
	return f, nil
}

// openModuleError classifies a failure to open the module at guestPath:
// the job's when the path names nothing usable (it does not exist, leads
// outside the view, or is not a file), the operator's when the node's
// permissions refuse it, the node's otherwise (too many open files, an I/O
// error), where Nomad's restart policy applies.
func openModuleError(guestPath, mountPath string, escapes bool, err error) error {
	var errno syscall.Errno
	errors.As(err, &errno)
	switch {
	case escapes:
		return executor.NotFoundErrorf("module %s resolves outside the task's view through a symlink; the module must be a file inside %s", guestPath, mountPath)
	case errors.Is(err, fs.ErrNotExist):
		return executor.NotFoundErrorf("module %s does not exist in the task's view: check the module path and the artifact block that should download it (for an artifact, destination defaults to local/)", guestPath)
	case errno == syscall.ELOOP || errno == syscall.ENOTDIR || errno == syscall.ENAMETOOLONG:
		return executor.JobErrorf("module %s cannot be opened: %v", guestPath, err)
	case errors.Is(err, fs.ErrPermission) && os.Geteuid() != 0:
		// Opened as the task's user (an exec, the shared executor): the
		// file is not the task's to read.
		return executor.JobErrorf("module %s cannot be opened by the task's user (uid %d): %v; make it readable by that user (chmod a+r), as an artifact block's download is", guestPath, os.Geteuid(), err)
	case errors.Is(err, fs.ErrPermission):
		return executor.OperatorErrorf("module %s cannot be opened: %v: the executor opens it as root; fix the file's permissions (or the security module that refuses it) on the node", guestPath, err)
	}
	return executor.NodeErrorf("module %s cannot be opened: %v", guestPath, err)
}

// read reads the module at guestPath whole, refusing one larger than
// maxBytes (when positive), and returns it with its SHA-256.
func (v view) read(guestPath string, maxBytes int64) ([]byte, string, error) {
	f, err := v.open(guestPath)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	if err := checkModuleSize(f, guestPath, maxBytes); err != nil {
		return nil, "", err
	}
	b, err := readAll(f)
	if err != nil {
		return nil, "", executor.NodeErrorf("read module %s: %v", guestPath, err)
	}
	return b, moduleDigest(b), nil
}
