// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"testing"

	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// TestStartTrace: a started task's StartResponse carries every step of the
// executor's Start, in order, none negative, and together no longer than
// the Start's round trip that the driver timed; the driver times its own
// steps beside them.
func TestStartTrace(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"hello"}})
	res := h.run(t, tk)
	must.True(t, res.Successful(), must.Sprintf("result: %+v", res))

	th, ok := h.driver.tasks.Get(tk.cfg.ID)
	must.True(t, ok)
	names := func(spans []*proto.Span) []string {
		var n []string
		for _, s := range spans {
			n = append(n, s.GetName())
			must.NonNegative(t, s.GetNanos(), must.Sprintf("span %s", s.GetName()))
		}
		return n
	}
	must.Eq(t, executor.StartSpanNames, names(th.started.executor))
	must.Eq(t, driverSpanNames, names(th.started.driver))

	var inExecutor int64
	for _, s := range th.started.executor {
		inExecutor += s.GetNanos()
	}
	roundTrip := th.started.driver[spanStartRPC].GetNanos()
	must.Positive(t, inExecutor)
	must.LessEq(t, roundTrip, inExecutor, must.Sprintf("the executor's steps (%d ns) exceed the Start's round trip (%d ns)", inExecutor, roundTrip))
}
