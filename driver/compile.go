// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"context"
	"errors"
	"io/fs"
	"os"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver/cgroups"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
)

// compileInTask compiles module (a path in the task's view, or the file
// moduleFile outside it) into the node's cache for the shared executor,
// which compiles nothing itself (executor.Compile): in a process of its
// own, placed in cgroups made for the task with its limits, so that what
// compiling takes counts against the task's memory, as it does for a task
// in an executor of its own. The cgroups the driver made are removed after.
// Without cgroups (a node that has none), it compiles unbounded, and a
// start says so in an event (report).
func (d *Driver) compileInTask(ctx context.Context, cfg *drivers.TaskConfig, mounts []executor.Mount, module, moduleFile, limitSource string, report bool) error {
	f, err := openModule(mounts, module, moduleFile)
	if err != nil {
		return err
	}
	defer f.Close()
	cg, cgErr := cgroups.Make(cfg.AllocID, cfg.Name, cgroupLimits(cfg))
	if cgErr != nil && report {
		d.emit(cfg, "The module's compilation is not limited by the task's cgroups: "+cgErr.Error(), map[string]string{"cgroups": "none"})
	}
	defer cgroups.Remove(cg.Made)
	err = executor.Compile(ctx, executor.CompileConfig{Binary: d.shared.binary, Module: f, Name: module, CacheDir: d.config.CacheDir,
		Engine: d.config.Engine, Interruptible: true, Cgroups: cg.Join, Logger: d.logger})
	if err != nil && cg.Memory != "" && cgroups.OOMKills(cg.Memory) > cg.OOMKillsBefore {
		return compiledOutOfMemory(module, limitSource)
	}
	return err
}

// compiledOutOfMemory is the error of a module whose compilation the
// task's memory cgroup ended.
func compiledOutOfMemory(module, limitSource string) error {
	return executor.JobErrorf("module %s could not be loaded within the task's memory (%s): it was killed for want of memory while it compiled the module, which takes several times the module's size. Raise the task's memory (resources.memory, or memory_max where the node allows oversubscription), or make the module smaller", module, limitSource)
}

// openModule opens the module at a path in the task's view, through the
// mount that holds it (a symlink cannot lead out of it), or moduleFile
// when it is set (a module kept outside the view).
func openModule(mounts []executor.Mount, module, moduleFile string) (*os.File, error) {
	if moduleFile != "" {
		f, err := os.Open(moduleFile)
		if err != nil {
			return nil, executor.NodeErrorf("open module %s (%s): %v", module, moduleFile, err)
		}
		return f, nil
	}
	m, rel, err := executor.ResolveGuestPath(mounts, module)
	if err != nil {
		return nil, executor.NotFoundErrorf("module: %v", err)
	}
	root, err := os.OpenRoot(m.HostPath)
	if err != nil {
		return nil, executor.NodeErrorf("open %s: %v", m.GuestPath, err)
	}
	defer root.Close()
	f, err := root.Open(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, executor.NotFoundErrorf("module %s does not exist in the task's view", module)
	}
	if err != nil {
		return nil, executor.NodeErrorf("open module %s: %v", module, err)
	}
	return f, nil
}
