// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package wasi is the executor's WASI preview 1 host
// (wasi_snapshot_preview1), with wazero as the engine underneath: every
// preview 1 function is this package's, over one descriptor table per
// instance (Table: stdio, the mounts as preopened directories through the
// confined filesystem, the files and directories the guest opens, the
// listeners granted to it and the connections it accepts, each with its
// preview 1 rights). wazero's own wasi_snapshot_preview1 is not
// instantiated, and nothing of a guest's is reached through a wazero
// module configuration.
//
// The functions, by family: args.go (args_*, environ_*), proc.go
// (clock_*, random_get, sched_yield, proc_*), fd.go (fd_*), path.go
// (path_*), readdir.go (fd_readdir), poll.go (poll_oneoff), sock.go
// (sock_*, and the listeners the executor binds: Listen, AddListener).
// guard.go ends a stopped guest without wazero's per-loop check at its
// next host call and tells its instance of each host call.
//
// A guest's path is resolved relative to a directory descriptor, never
// above it (checked by its names), then by the mount's confined
// filesystem, which resolves it through an os.Root and refuses whatever,
// symlinks included, would leave the mount. Sockets are the host's own
// descriptors, non-blocking whatever the guest asks; a guest's blocking
// call waits in poll(2) with the table's waker, which the instance's stop
// fires, and a socket is closed as soon as the guest closes it.
//
// Its functions reach the instance that calls them through a small
// interface, Instance, which the executor's instance implements and
// WithInstance puts into the context wazero hands host functions. It must
// not import the executor (executor/host): what it needs of a task or a
// program arrives through Instance.
//
// Conformance: the WebAssembly WASI test suite's 72 preview 1 tests pass
// with both engines (make conformance, executor/host/conformance_test.go).
package wasi
