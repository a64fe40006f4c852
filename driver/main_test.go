// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"fmt"
	"os"
	"testing"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host"
)

// hostSecret is set in the test process's environment, which executors
// inherit; no guest may see it.
const hostSecret = "WASM_DRIVER_TEST_HOST_SECRET"

// TestMain lets the test binary serve as the executor, as the plugin binary
// does, so that the tests run the real out-of-process executor (with -race).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == executor.Subcommand {
		host.Serve(os.Args[2:])
		return
	}
	if os.Getenv(launchSpareEnv) == "1" {
		launchSpareAndWait()
		return
	}
	os.Setenv(hostSecret, "leaked")
	code := m.Run()
	if pluginBinaryDir != "" {
		_ = os.RemoveAll(pluginBinaryDir)
	}
	os.Exit(code)
}

// launchSpareEnv makes the test binary stand in for a driver: it launches
// an executor, prints its pid and waits to be killed.
const launchSpareEnv = "WASM_DRIVER_TEST_LAUNCH_SPARE"

func launchSpareAndWait() {
	c, err := executor.Launch(executor.LaunchConfig{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(c.Pid)
	select {}
}
