// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// runner is what runs a task, whatever its kind: its command instance, or
// its HTTP trigger, which runs an instance per request. The server waits
// for a task, ends it and reads its stats through this alone; what is
// particular to a kind stays with it. (A task's stop is its program's,
// program.stop: every instance of it ends, or the trigger drains.)
type runner interface {
	// done is closed once the task has ended; exitStatus then says how.
	done() <-chan struct{}
	exitStatus() *proto.ExitStatus
	// kill ends what still runs once a stop's time is out, and says
	// whether the task then ends by itself promptly. The trigger ends its
	// requests in flight; a command instance has nothing more to end from
	// inside the process (watchStop follows one without the per-loop
	// check, and the driver ends its executor).
	kill() bool
	// linearMemory is the task's linear memory in bytes: its instance's,
	// or its instances' in flight together.
	linearMemory() uint64
	// sampleCPU is the CPU time the task has used: its guest's thread's,
	// its instances', or the process's where the process is the task's.
	sampleCPU() cpuSample
}

var (
	_ runner = (*instance)(nil)
	_ runner = (*httpTrigger)(nil)
)

func (in *instance) done() <-chan struct{}         { return in.ended }
func (in *instance) exitStatus() *proto.ExitStatus { return in.status }
func (in *instance) kill() bool                    { return false }
func (in *instance) linearMemory() uint64          { return in.memBytes.Load() }

func (t *httpTrigger) done() <-chan struct{}         { return t.ended }
func (t *httpTrigger) exitStatus() *proto.ExitStatus { return t.status }
func (t *httpTrigger) linearMemory() uint64          { return t.budget.Used() }

// kill ends every request in flight; the drain then completes.
func (t *httpTrigger) kill() bool {
	t.cancelRequests()
	return true
}
