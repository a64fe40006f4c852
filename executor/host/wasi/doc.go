// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package wasi is the executor's WASI preview 1 host
// (wasi_snapshot_preview1), with wazero as the engine underneath. Today it
// is wazero's, with the functions the executor overrides in its place:
// poll_oneoff (poll.go), environ_get and environ_sizes_get (environ.go);
// and the guard that ends a stopped guest without wazero's per-loop check
// at its next host call and tells its instance of each host call
// (guard.go). DESIGN.md's "Guest view" says where it is going: every
// preview 1 function of its own, over a descriptor table per instance.
//
// Its functions reach the instance that calls them through a small
// interface, Instance, which the executor's instance implements and
// WithInstance puts into the context wazero hands host functions. It must
// not import the executor (executor/host): what it needs of a task or a
// program arrives through Instance.
package wasi
