// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
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
	// set once starting from it failed, after which the plugin binary is
	// used.
	path   string
	failed bool
}

// executorBinary is the program to start an executor from, and whether it
// is the embedded one.
func executorBinary() (string, bool, error) {
	program.once.Do(func() {
		if b := embedded.Executor(); b != nil {
			// An error leaves path empty: the plugin binary serves.
			program.path, _ = runnable(b)
		}
	})
	program.mu.Lock()
	path, failed := program.path, program.failed
	program.mu.Unlock()
	if path != "" && !failed {
		return path, true, nil
	}
	self, err := os.Executable()
	if err != nil {
		return "", false, fmt.Errorf("find the plugin binary: %w", err)
	}
	return self, false, nil
}

// embeddedFailed records that an executor could not be started from the
// embedded program (for example a kernel that refuses to run in-memory
// files: vm.memfd_noexec = 2): from now on the plugin binary serves.
func embeddedFailed(logger hclog.Logger, err error) {
	program.mu.Lock()
	first := !program.failed
	program.failed = true
	program.mu.Unlock()
	if first && logger != nil {
		logger.Warn("cannot start an executor from the embedded executor program; starting executors from the plugin binary, about 10 ms slower each", "error", err)
	}
}
