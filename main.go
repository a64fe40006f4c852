// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Command nomad-driver-wasm is a Nomad task driver plugin that runs
// WebAssembly modules. Run with executor.Subcommand as its first argument
// it is instead an executor, started by the driver to run one task.
package main

import (
	"os"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == executor.Subcommand {
		host.Serve(os.Args[2:])
		return
	}
	// driver.Serve is Nomad's plugins.Serve with DisableLogCollection
	// carried to the client (see there).
	driver.Serve()
}
