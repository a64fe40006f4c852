// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"time"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// The steps of a Start inside the executor, in the order they run: the
// names its StartResponse's spans carry (a wire contract: a step is added
// under a new name, never renamed), indexes into StartSpanNames.
const (
	// SpanAdmit: waiting for the executor's start lock and admitting the
	// Start (the one task of an executor of its own, or a new task ID in
	// the shared one).
	SpanAdmit = iota
	// SpanOpen: opening what the task may reach (its directories, mounts,
	// log directory, module), by path or from what the driver handed over.
	SpanOpen
	// SpanLogs: the task's logger, engine and user, and its stdout and
	// stderr files.
	SpanLogs
	// SpanCgroupJoin: joining the task's cgroups.
	SpanCgroupJoin
	// SpanRead: reading (mapping) the module, comparing it with what a
	// spare prepared, or hashing it.
	SpanRead
	// SpanCompile: the program: compiling the module, loading it from the
	// node's cache, or taking what the spare prepared.
	SpanCompile
	// SpanRemember: recording the module as recently started, for the next
	// spare to prepare.
	SpanRemember
	// SpanInstantiate: binding the task's sockets and instantiating the
	// guest (in http mode, starting the trigger).
	SpanInstantiate
	// SpanReply: recording the task and scheduling what follows a start.
	SpanReply
	// SpanUser: becoming the task's user (set apart from instantiate,
	// which it is part of: it comes before or after the instantiation, as
	// the module has a start function or not).
	SpanUser
)

// StartSpanNames names the executor's steps of a Start (SpanAdmit…).
var StartSpanNames = []string{"admit", "open", "logs", "cgroup-join", "read", "compile", "remember", "instantiate", "reply", "user"}

// Trace times the steps of one task start, each from the end of the step
// before (Mark), so that they add up to the whole. It is always on: a
// time.Now per step, and one slice for all of them.
type Trace struct {
	names []string
	nanos []int64
	last  time.Time
}

// NewTrace starts timing the steps named names (indexed by Mark's step).
func NewTrace(names []string) *Trace {
	return &Trace{names: names, nanos: make([]int64, len(names)), last: time.Now()}
}

// Mark ends step: it took from the last Mark (or the trace's start) until
// now. A step marked again (a start that retries) adds to its time. A
// nil Trace times nothing.
func (t *Trace) Mark(step int) {
	if t == nil {
		return
	}
	now := time.Now()
	t.nanos[step] += now.Sub(t.last).Nanoseconds()
	t.last = now
}

// Spans is the steps as they cross the protocol, in their order.
func (t *Trace) Spans() []*proto.Span {
	spans := make([]proto.Span, len(t.names))
	out := make([]*proto.Span, len(t.names))
	for i := range spans {
		spans[i].Name, spans[i].Nanos = t.names[i], t.nanos[i]
		out[i] = &spans[i]
	}
	return out
}

// SpanLogArgs is spans as hclog key/value pairs, durations by name.
func SpanLogArgs(spans []*proto.Span) []any {
	args := make([]any, 0, 2*len(spans))
	for _, s := range spans {
		args = append(args, s.GetName(), time.Duration(s.GetNanos()))
	}
	return args
}
