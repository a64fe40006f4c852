// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build e2e

package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/shoenig/test/must"
)

// TestLogsFollowAndTail: nomad alloc logs -f and -tail work on the log
// files the executor writes (Nomad runs no logmon for wasm tasks): a
// follower sees the lines the guest writes after it began, and the tail
// is the end of the current file. (Where a follower starts is Nomad's
// business: from the end with offset 0 it streams the whole file first.)
func TestLogsFollowAndTail(t *testing.T) {
	c, alloc := runTicker(t, "logs", 3)
	follow := func() (chan struct{}, <-chan *nomadapi.StreamFrame, <-chan error) {
		cancel := make(chan struct{})
		frames, errs := c.Nomad.AllocFS().Logs(alloc, true, "ticker", "stdout", nomadapi.OriginStart, 0, cancel, nil)
		return cancel, frames, errs
	}
	cancel, frames, errs := follow()
	defer func() { close(cancel) }()
	want := fmt.Sprintf("tick %d\n", lastTick(c.logs(t, alloc, "ticker", "stdout"))+5)
	var got strings.Builder
	deadline := time.After(30 * time.Second)
	for !strings.Contains(got.String(), want) {
		select {
		case f := <-frames:
			if f != nil {
				got.Write(f.Data)
			}
		case err := <-errs:
			// The client's stream can end with a transient error (the
			// same "No path to node" as readLogs retries): follow again,
			// from the start; the deadline bounds the retries.
			t.Logf("following the log: %v; following again", err)
			close(cancel)
			cancel, frames, errs = follow()
		case <-deadline:
			t.Fatalf("following the log never showed %q; it showed:\n%s", want, got.String())
		}
	}

	before := c.logs(t, alloc, "ticker", "stdout")
	tailCancel := make(chan struct{})
	defer close(tailCancel)
	tail, tailErrs := c.Nomad.AllocFS().Logs(alloc, false, "ticker", "stdout", nomadapi.OriginEnd, 16, tailCancel, nil)
	var last strings.Builder
	for done := false; !done; {
		select {
		case f, ok := <-tail:
			if !ok {
				done = true
				break
			}
			last.Write(f.Data)
		case err := <-tailErrs:
			t.Fatalf("the log's tail: %v", err)
		case <-time.After(30 * time.Second):
			t.Fatal("the log's tail did not end")
		}
	}
	// The tail starts 16 bytes before the end the file had when it was
	// asked for, and runs to its end when it was read: the ticker goes on
	// writing, so that start lies between 16 bytes before the end the file
	// had before and 16 before the end it has after.
	after := c.logs(t, alloc, "ticker", "stdout")
	must.StrContains(t, last.String(), "tick ")
	start := strings.LastIndex(after, last.String())
	must.Between(t, len(before)-16, start, len(after)-16, must.Sprintf("the tail %q in the log of %d bytes (%d before)", last.String(), len(after), len(before)))
}
