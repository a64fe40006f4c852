// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"testing"
	"time"

	"github.com/shoenig/test/must"
)

// TestTrace: each step runs from the end of the one before, a step marked
// again adds to its time, a step never marked is 0, the spans keep the
// names' order, marking allocates nothing, and a nil Trace times nothing.
// (Not parallel: AllocsPerRun.)
func TestTrace(t *testing.T) {
	tr := NewTrace([]string{"a", "b", "c"})
	time.Sleep(2 * time.Millisecond)
	tr.Mark(0)
	tr.Mark(2)
	time.Sleep(time.Millisecond)
	tr.Mark(2)
	spans := tr.Spans()
	must.SliceLen(t, 3, spans)
	must.Eq(t, "a", spans[0].GetName())
	must.Eq(t, "b", spans[1].GetName())
	must.Eq(t, "c", spans[2].GetName())
	must.GreaterEq(t, (2 * time.Millisecond).Nanoseconds(), spans[0].GetNanos())
	must.Eq(t, 0, spans[1].GetNanos())
	must.GreaterEq(t, time.Millisecond.Nanoseconds(), spans[2].GetNanos())
	must.Eq(t, 0, testing.AllocsPerRun(100, func() { tr.Mark(1) }))
	must.Eq(t, []any{"a", time.Duration(spans[0].GetNanos()), "b", time.Duration(0), "c", time.Duration(spans[2].GetNanos())}, SpanLogArgs(spans))

	var none *Trace
	none.Mark(0)
}
