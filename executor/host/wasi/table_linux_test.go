// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"testing"

	"github.com/shoenig/test/must"
	"golang.org/x/sys/unix"
)

// TestTableCloseTwice: a second Close of a table (its instance ended
// twice over) closes nothing more: above all not the numbers its waker's
// pipe had, which may belong to another file by then (in a shared
// executor, another task's). Not parallel: it puts descriptors of its own
// at those numbers.
func TestTableCloseTwice(t *testing.T) {
	h := newHost(t)
	l, addr := h.listen()
	conn, _ := h.connect(l, addr, 0)
	h.poll(fdSub(1, eventFdRead, conn), clockSub(2, 0)) // makes the waker
	w := h.in.table.waker
	must.NotNil(t, w)
	numbers := []int{w.r, w.w}
	h.in.table.Close()

	var p [2]int
	must.NoError(t, unix.Pipe2(p[:], unix.O_CLOEXEC))
	t.Cleanup(func() { _ = unix.Close(p[0]); _ = unix.Close(p[1]) })
	for _, n := range numbers {
		if _, err := unix.FcntlInt(uintptr(n), unix.F_GETFD, 0); err == nil {
			t.Skipf("descriptor %d, the waker's, was taken again before the test could", n)
		}
		must.NoError(t, unix.Dup3(p[0], n, unix.O_CLOEXEC))
		t.Cleanup(func() { _ = unix.Close(n) })
	}
	h.in.table.Close()
	for _, n := range numbers {
		if _, err := unix.FcntlInt(uintptr(n), unix.F_GETFD, 0); err != nil {
			t.Errorf("BUG Table.Close, called again, closed descriptor %d, the waker's pipe's once and another file's now "+
				"(waker.close closes w.r and w.w every time): %v", n, err)
		}
	}
}
