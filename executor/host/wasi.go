// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/wasi"
)

// An instance as the WASI host (package wasi) sees it: *instance is a
// wasi.Instance, put into its calls' context by instantiate.
var _ wasi.Instance = (*instance)(nil)

// Args is the guest's argv.
func (in *instance) Args() []string { return in.args }

// Environ is the guest's environment (see environ.go).
func (in *instance) Environ() []string { return in.environ }

// Table is the guest's descriptor table.
func (in *instance) Table() *wasi.Table { return in.table }

// The guard's hooks (wasi.HostCalls), called only when the program has no
// per-loop check: they keep the counts that a stop (watchStop) and the
// collections (gc.go) read.

// CallHost counts a host call made.
func (in *instance) CallHost() { in.calls.Call() }

// EnterHost counts the guest into a host call.
func (in *instance) EnterHost() { in.calls.Enter() }

// LeaveHost counts the guest out of its host call first, then holds it
// while a collection runs: one that began after this guest was counted out
// sees it outside and does not run (whileInHost).
func (in *instance) LeaveHost() {
	in.calls.Leave()
	in.hostReturn.RLock()
	in.hostReturn.RUnlock() //nolint:staticcheck // SA2001: the wait for the collection is the point
}

// AbortHost counts out a host call that did not return, unless LeaveHost
// did.
func (in *instance) AbortHost() { in.calls.Abort() }
