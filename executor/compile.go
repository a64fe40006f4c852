// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"

	"github.com/hashicorp/go-hclog"
)

// Compiling a module for the node's shared executor. The shared executor
// runs as default_user and compiles nothing itself: compiling takes many
// times a module's size, and in one process beside every other task's
// guest that memory would be bounded by no task. A module it finds no
// compiled entry of fails its Start with NotCompiled; the driver then
// compiles it into the node's cache in a process of its own, placed in the
// task's cgroups (Compile), and starts the task again.

// CompileFlag makes the executor binary compile one module into the node's
// cache and exit (see Compile); the module is its descriptor 3.
const CompileFlag = "-compile"

// The compile process's other arguments.
const (
	CompileCacheDirFlag      = "-compile-cache-dir"
	CompileEngineFlag        = "-compile-engine"
	CompileInterruptibleFlag = "-compile-interruptible"
	CompileNameFlag          = "-compile-name"
	CompileCgroupFlag        = "-compile-cgroup"
)

// The compile process's exit codes: its error's class, its message on its
// stderr.
const (
	CompileExitJob      = 10
	CompileExitOperator = 11
	CompileExitNode     = 12
)

// CompileExitCode is the compile process's exit code for err.
func CompileExitCode(err error) int {
	switch ClassOf(err) {
	case ClassJob:
		return CompileExitJob
	case ClassOperator:
		return CompileExitOperator
	}
	return CompileExitNode
}

// CompileConfig says what Compile compiles, and where.
type CompileConfig struct {
	// Binary is the executor's executable; empty means this process's.
	Binary string
	// Module is the module's file, open; Name names it in messages.
	Module *os.File
	Name   string
	// CacheDir is the node's compiled-module cache, Engine the engine
	// ("auto", "compiler", "interpreter"), Interruptible whether the code
	// has the per-loop check (the shared executor's has).
	CacheDir      string
	Engine        string
	Interruptible bool
	// Cgroups are the cgroup directories the process joins before it
	// reads the module: the task's, so that compiling counts against its
	// memory.
	Cgroups []string
	// Logger hears why the embedded executor program cannot be run, if it
	// cannot.
	Logger hclog.Logger
}

// Compile compiles a module into the node's cache in a process of its own,
// which joins cfg.Cgroups first. Its error carries the class the process
// gave it; a process killed (the cgroup's OOM killer) is a node error the
// caller may know better (it can read the cgroup's OOM kills).
func Compile(ctx context.Context, cfg CompileConfig) error {
	bin, embedded := cfg.Binary, false
	if bin == "" {
		var err error
		if bin, embedded, err = executorBinary(cfg.Logger); err != nil {
			return err
		}
	}
	args := []string{Subcommand, CompileFlag, CompileCacheDirFlag + "=" + cfg.CacheDir, CompileEngineFlag + "=" + cfg.Engine, CompileNameFlag + "=" + cfg.Name}
	if cfg.Interruptible {
		args = append(args, CompileInterruptibleFlag)
	}
	for _, cg := range cfg.Cgroups {
		args = append(args, CompileCgroupFlag+"="+cg)
	}
	var stderr bytes.Buffer
	run := func(bin string) (started bool, err error) {
		cmd := command(ctx, bin, args...)
		cmd.ExtraFiles = []*os.File{cfg.Module}
		stderr.Reset()
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			return false, err
		}
		return true, cmd.Wait()
	}
	started, err := run(bin)
	if !started && embedded && fallBack(ctx, err) {
		embeddedFailed(cfg.Logger, err)
		if bin, _, err = executorBinary(cfg.Logger); err != nil {
			return err
		}
		_, err = run(bin)
	}
	if err == nil {
		return nil
	}
	msg := strings.TrimSpace(stderr.String())
	var exit *exec.ExitError
	if !errors.As(err, &exit) || msg == "" {
		return NodeErrorf("compile module %s: %v %s", cfg.Name, err, msg)
	}
	switch exit.ExitCode() {
	case CompileExitJob:
		return JobErrorf("%s", msg)
	case CompileExitOperator:
		return OperatorErrorf("%s", msg)
	}
	return NodeErrorf("%s", msg)
}
