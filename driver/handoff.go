// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// handoffTimeout bounds handing a task's descriptors to the shared
// executor.
const handoffTimeout = 10 * time.Second

// handOver gives the shared executor that runs as default_user what task
// id may reach, opened here (the driver runs as root): the executor cannot
// resolve any path under the client's data_dir (0700) itself. See
// executor/handoff.go. Nothing is handed to an executor of the task's own,
// nor to a shared executor that runs as the driver does: those open what
// they need while they can.
func (d *Driver) handOver(exec *executor.Task, id string, req *proto.StartRequest) error {
	if !exec.Shared() || d.shared.user() == nil {
		return nil
	}
	var files []executor.HandoffFile
	defer func() {
		for _, f := range files {
			_ = f.File.Close()
		}
	}()
	open := func(name, path string, flag int) error {
		f, err := os.OpenFile(path, flag|os.O_RDONLY, 0o640)
		if err != nil {
			return handOverError(path, err)
		}
		files = append(files, executor.HandoffFile{Name: name, File: f})
		return nil
	}
	for _, m := range req.Mounts {
		if err := open(executor.HandoffMount+m.GuestPath, m.HostPath, 0); err != nil {
			return err
		}
	}
	if req.Logs != nil {
		if err := open(executor.HandoffLogDir, req.Logs.Dir, 0); err != nil {
			return err
		}
	}
	if req.StateDir != "" {
		if err := open(executor.HandoffStateDir, req.StateDir, 0); err != nil {
			return err
		}
	}
	if req.LogFile != "" {
		f, err := os.OpenFile(req.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
		if err != nil {
			return handOverError(req.LogFile, err)
		}
		files = append(files, executor.HandoffFile{Name: executor.HandoffLogFile, File: f})
	}
	if req.ModuleFile != "" {
		if err := open(executor.HandoffModule, req.ModuleFile, 0); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(d.ctx, handoffTimeout)
	defer cancel()
	socket := executor.HandoffSocket(d.shared.directory(), exec.Client().Pid)
	if err := executor.SendHandoff(ctx, socket, id, files); err != nil {
		if errors.Is(err, executor.ErrExecutorLost) {
			return err // startTask starts the task in a new shared executor
		}
		return executor.NodeErrorf("%v", err)
	}
	return nil
}

// handOverError is the error of a path of the task the driver cannot open
// for the shared executor: the operator's when permissions refuse it (the
// driver runs as root: a security module, a mount that refuses root), else
// the node's.
func handOverError(path string, err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return executor.OperatorErrorf("the wasm driver cannot open %s to hand it to the node's shared executor: %v; the driver must be able to open the task's directories (run the Nomad client as root, and check the security modules and mounts that refuse it)", path, err)
	}
	return executor.NodeErrorf("open %s for the shared executor: %v", path, err)
}

// directory is where the shared executor keeps its files.
func (s *sharedExecutor) directory() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dir
}

// pruneHandoffSockets removes the handoff sockets in dir of shared
// executors that are gone: one that ran as its user could not remove its
// own.
func pruneHandoffSockets(dir string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "handoff-")
		if !ok {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSuffix(rest, ".sock"))
		if err == nil && executor.ProcessGone(pid) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
