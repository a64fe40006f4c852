// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package host is the executor: the process that runs one task's
// WebAssembly guest with wazero, started by the driver as the plugin
// binary's executor subcommand (Serve). It is the only package that knows
// wazero, and it must not know Nomad: what it needs from a task arrives in
// the protocol's StartRequest.
//
// Lifetimes follow wazero's: the node's compiled-module cache (ModuleCache)
// outlives everything; a program (the compiled module, its runtime, WASI
// host, filesystem view, env, memory cap and stop context) lives as long as
// the task; an instance is one run of a program: the task's own, one per
// nomad alloc exec. The server speaks to programs and instances only.
//
// Every goroutine the server starts is in its wait group and ends when
// serving ends; close waits for them.
package host
