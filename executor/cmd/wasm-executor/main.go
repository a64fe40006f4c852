// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Command wasm-executor is the executor alone, without the driver: the same
// code the plugin binary runs as an executor (host.Serve), linked without
// Nomad's packages. Their initialisation costs a process of the plugin
// binary about 10 ms before it can serve (GODEBUG=inittrace=1); this
// program starts in a third of the plugin binary's time. The build embeds
// it in the plugin binary (package embedded), which launches its executors
// from it; it is not installed on its own.
package main

import (
	"fmt"
	"os"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host"
)

func main() {
	// Started as the plugin binary is for an executor: its first argument
	// is executor.Subcommand (this package does not import its parent).
	if len(os.Args) < 2 || os.Args[1] != "wasm-executor" {
		fmt.Fprintf(os.Stderr, "usage: %s wasm-executor [flags]: started by nomad-driver-wasm, not by hand\n", os.Args[0])
		os.Exit(2)
	}
	nameProcess()
	host.Serve(os.Args[2:])
}
