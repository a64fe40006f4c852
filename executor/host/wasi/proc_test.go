// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"bytes"
	"testing"
	"time"

	"github.com/shoenig/test/must"
)

// TestClocks: clock_res_get and clock_time_get know the realtime and the
// monotonic clock (realtime is the host's time, monotonic does not go
// back), refuse the CPU time clocks and unknown ones, and write only
// inside the guest's memory.
func TestClocks(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	out := h.alloc(8)
	for _, id := range []uint32{clockRealtime, clockMonotonic} {
		h.expect(errnoSuccess, "clock_res_get", id, out)
		must.Positive(t, h.u64(out))
		must.LessEq(t, uint64(time.Millisecond), h.u64(out))
		h.expect(errnoFault, "clock_res_get", id, pageSize-7)
		h.expect(errnoFault, "clock_time_get", id, uint64(1), pageSize-7)
	}
	for _, id := range []uint32{clockProcessCPUTime, clockThreadCPUTime, 4, 1 << 31} {
		h.expect(errnoInval, "clock_res_get", id, out)
		h.expect(errnoInval, "clock_time_get", id, uint64(1), out)
	}

	before := time.Now().UnixNano()
	h.expect(errnoSuccess, "clock_time_get", clockRealtime, uint64(1), out)
	after := time.Now().UnixNano()
	must.Between(t, uint64(before), h.u64(out), uint64(after))

	h.expect(errnoSuccess, "clock_time_get", clockMonotonic, uint64(0), out)
	first := h.u64(out)
	h.expect(errnoSuccess, "clock_time_get", clockMonotonic, uint64(0), out)
	must.GreaterEq(t, first, h.u64(out))
}

// TestRandomGet: random_get fills the buffer it is given (and nothing
// around it), a buffer of nothing too, and refuses one outside the
// guest's memory.
func TestRandomGet(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	buf := h.alloc(80)
	h.expect(errnoSuccess, "random_get", buf+8, 64)
	first := h.bytes(buf, 80)
	must.Eq(t, make([]byte, 8), first[:8], must.Sprint("random_get wrote before its buffer"))
	must.Eq(t, make([]byte, 8), first[72:], must.Sprint("random_get wrote past its buffer"))
	must.False(t, bytes.Equal(make([]byte, 64), first[8:72]))
	h.expect(errnoSuccess, "random_get", buf+8, 64)
	must.NotEq(t, first[8:72], h.bytes(buf+8, 64))
	h.expect(errnoSuccess, "random_get", buf, 0)
	h.expect(errnoFault, "random_get", pageSize-10, 11)
	h.expect(errnoFault, "random_get", 0, pageSize+1)
}

// TestSchedYieldAndProcRaise: sched_yield returns; proc_raise, which
// WASI libc never calls, is not supported.
func TestSchedYieldAndProcRaise(t *testing.T) {
	t.Parallel()
	h := newHost(t)
	h.expect(errnoSuccess, "sched_yield")
	h.expect(errnoNosys, "proc_raise", 9)
}

// TestProcExit: proc_exit ends the guest with its code, 0 included.
func TestProcExit(t *testing.T) {
	t.Parallel()
	for _, code := range []uint32{0, 3, 255} {
		h := newHost(t)
		_, err := h.callErr(h.ctx(), "proc_exit", code)
		must.Error(t, err)
		must.Eq(t, int(code), exitCode(err), must.Sprintf("proc_exit(%d) ended the guest with %v", code, err))
		must.True(t, h.mod.IsClosed(), must.Sprint("the guest's module is closed"))
	}
}
