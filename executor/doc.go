// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package executor is the driver's side of an executor: the process that
// runs one task's WebAssembly guest. It holds the protocol (executor/proto),
// the client that launches, reattaches to and talks to executors, the
// classes of failure that cross the protocol, and the few facts both sides
// share (guest paths, the exit-status file, engine names).
//
// It must not link wazero: the driver imports it, and the build checks that
// the driver does not link wazero (make check). Everything that runs a
// guest is in executor/host, which only the executor subcommand imports.
//
// The driver starts an executor as a hidden subcommand of the plugin binary
// (Subcommand), in its own session, and talks to it over go-plugin gRPC.
// The executor must not know Nomad: what it needs from a task arrives in the
// StartRequest, already translated by the driver.
package executor
