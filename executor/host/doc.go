// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package host is the executor: the process that runs a task's
// WebAssembly guest with wazero (or, the node's shared executor, many
// tasks'), started by the driver as the plugin binary's executor
// subcommand (Serve). With its confined filesystem it is the only code
// that knows wazero, and it must not know Nomad: what it needs from a task
// arrives in the protocol's StartRequest.
//
// Lifetimes follow wazero's: the node's compiled-module cache (modcache.Cache)
// outlives everything; a task's files (taskFiles: its view, log directory,
// task directory), opened once before the executor becomes the task's
// user, and its program (the compiled module, its runtime, WASI host,
// environment, memory cap and stop context) live as long as the task; an
// instance is one run of a program: the task's own, one per nomad alloc
// exec, one per HTTP request.
//
// The guests' WASI host is package wasi, whose functions an instance
// serves (wasi.Instance, in wasi.go): its environment, its sleep and its
// socket wait, which a stop cuts short, and the counts of its host calls,
// kept from what the WASI host's guard tells it, which the stop
// (watchStop) and the collections (gc.go) read.
//
// A task runs through a runner (runner.go): its command instance, or its
// HTTP trigger. The server speaks to runners, programs and instances,
// never to wazero; its RPCs are in a file each: start.go (Start), stop.go
// (Wait, Stop, Signal), exec.go (Exec), stats.go (Stats), shared.go
// (Release, Attach), server.go (Version, and the server itself).
//
// Every goroutine the server starts is in its wait group and ends when
// serving ends; close waits for them, and for the guests it stopped to
// record their exit status. An instance's guest runs on a goroutine of its
// own, which ends with the instance.
package host
