// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/embedded"
)

// program is what executors are started from when the caller names no
// binary: the executor program embedded in the plugin binary, run from a
// sealed in-memory file, where the build embedded one and this system runs
// it; else the plugin binary itself (os.Executable), which serves as an
// executor too (main.go).
var program struct {
	once sync.Once
	mu   sync.Mutex
	// path runs the embedded program ("" when there is none); failed is
	// set once executing it failed, after which the plugin binary is used;
	// warned once that was logged.
	path           string
	failed, warned bool
	// self is the plugin binary's path (os.Executable), or selfErr why
	// there is none; setupErr is why the embedded program could not be
	// made runnable.
	self              string
	selfErr, setupErr error
}

// pluginBinary is the plugin binary's path, found once.
func pluginBinary() (string, error) {
	program.once.Do(findPrograms)
	if program.selfErr != nil {
		return "", fmt.Errorf("find the plugin binary: %w", program.selfErr)
	}
	return program.self, nil
}

// executorBinary is the program to start an executor from, and whether it
// is the embedded one. logger hears, once, why the embedded program cannot
// be used.
func executorBinary(logger hclog.Logger) (string, bool, error) {
	program.once.Do(findPrograms)
	program.mu.Lock()
	path, failed, setupErr := program.path, program.failed, program.setupErr
	program.mu.Unlock()
	if setupErr != nil {
		embeddedFailed(logger, setupErr) // said once, to the first logger
	}
	if path != "" && !failed {
		return path, true, nil
	}
	self, err := pluginBinary()
	return self, false, err
}

// findPrograms finds the plugin binary and puts the embedded program, if
// the build has one, where it can be run.
func findPrograms() {
	program.self, program.selfErr = os.Executable()
	f := embedded.Open()
	if f == nil {
		return // a build without it: nothing to say
	}
	defer f.Close()
	if program.path, program.setupErr = runnable(f); program.setupErr != nil {
		program.failed = true
	}
}

// embeddedFailed records that the embedded program cannot be run (for
// example a kernel that refuses to run in-memory files: vm.memfd_noexec =
// 2, or a seccomp filter without memfd_create): from now on the plugin
// binary serves. The first caller with a logger says so.
func embeddedFailed(logger hclog.Logger, err error) {
	program.mu.Lock()
	program.failed = true
	warn := !program.warned && logger != nil
	if warn {
		program.warned = true
	}
	program.mu.Unlock()
	if warn {
		logger.Warn("cannot start executors from the executor program the plugin binary embeds; starting them from the plugin binary, about 10 ms slower each", "error", err)
	}
}

// fallBack says whether starting an executor from the embedded program
// failed in a way that starting it from the plugin binary may not: the
// program could not be executed. Not a cancelled start, nor an executor
// that ran and then failed (which the plugin binary would do the same).
func fallBack(ctx context.Context, err error) bool {
	if err == nil || ctx.Err() != nil {
		return false
	}
	var pe *os.PathError
	return errors.As(err, &pe) && pe.Op == "fork/exec"
}

// isEmbedded says whether bin is the embedded program's path.
func isEmbedded(bin string) bool {
	program.mu.Lock()
	defer program.mu.Unlock()
	return bin != "" && bin == program.path
}
