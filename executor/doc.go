// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package executor runs one task's WebAssembly guest in a process of its own
// and is the only package that knows wazero.
//
// The driver starts the executor as a hidden subcommand of the plugin binary
// (see Subcommand and Serve), in its own session, and talks to it over
// go-plugin gRPC (the protocol in executor/proto). Client is the driver's side
// of that protocol; the server side owns everything about the guest: reading
// and validating the module, the node's compiled-module cache, the WASI
// wiring (arguments, environment, confined mounts, clocks, randomness), the
// guest's stdout and stderr, its exit status and its resource usage.
//
// The executor must not know Nomad: what it needs from a task arrives in the
// StartRequest, already translated by the driver.
package executor
