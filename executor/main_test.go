// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor_test

import (
	"os"
	"testing"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host"
)

// TestMain lets this package's test binary serve as an executor, as the
// plugin binary does: the executor the tests fall back to when the
// embedded program cannot run (binary_linux_test.go).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == executor.Subcommand {
		host.Serve(os.Args[2:])
		return
	}
	os.Exit(m.Run())
}
