// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Command nomad-driver-wasm is a Nomad task driver plugin that runs
// WebAssembly modules. Run with executor.Subcommand as its first argument
// it is instead an executor, started by the driver to run one task.
package main

import (
	"context"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == executor.Subcommand {
		host.Serve(os.Args[2:])
		return
	}
	plugins.Serve(func(logger hclog.Logger) interface{} {
		return driver.New(context.Background(), logger)
	})
}
