// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// newSharedTask is a task of the shared executor s without a guest: its
// main instance ends when its program is stopped, or when the test
// finishes it.
func newSharedTask(t *testing.T, s *server, id string) *task {
	t.Helper()
	prog := &program{logger: hclog.NewNullLogger()}
	prog.ctx, prog.cancel = context.WithCancel(context.Background())
	main := &instance{prog: prog, ended: make(chan struct{})}
	main.ctx, main.cancel = context.WithCancel(prog.ctx)
	context.AfterFunc(prog.ctx, func() { main.finish(&proto.ExitStatus{ExitCode: 137, Signal: 9}) })
	t.Cleanup(func() {
		prog.cancel()
		<-main.ended
	})
	tk := &task{id: id, req: &proto.StartRequest{TaskId: id}, files: &taskFiles{}, prog: prog, run: main, command: main,
		logger: hclog.NewNullLogger(), execPrograms: map[string]*program{}, released: make(chan struct{}), releaseDone: make(chan struct{})}
	s.mu.Lock()
	s.tasks[id] = tk
	s.mu.Unlock()
	return tk
}

// TestForgetAfter: a task of the shared executor whose guest exited is
// released once it has lingered, unless its driver released it first; a
// task that runs is never released by it; its watch ends with the server.
func TestForgetAfter(t *testing.T) {
	t.Parallel()
	// The steps forgetAfter watches.
	type step func(s *server, tk *task, watching func() bool)
	exit := func(_ *server, tk *task, _ func() bool) { tk.command.finish(&proto.ExitStatus{ExitCode: 0}) }
	release := func(s *server, tk *task, _ func() bool) { s.release(tk) }
	// releasing is a release under way: its guest has not ended yet.
	releasing := func(_ *server, tk *task, _ func() bool) { tk.releaseOnce.Do(func() { close(tk.released) }) }
	quit := func(s *server, _ *task, _ func() bool) { close(s.quit) }
	// settle waits until forgetAfter waits for what comes next.
	settle := func(_ *server, _ *task, watching func() bool) {
		waitUntil(t, watching, "forgetAfter never waited")
	}
	const short, long = 50 * time.Millisecond, time.Hour
	for _, tc := range []struct {
		name   string
		linger time.Duration
		steps  []step
		// released: the task's release has begun; held: the server still
		// holds it.
		released, held bool
		// lingered: released by forgetAfter, after linger.
		lingered bool
	}{
		{name: "exited and never collected", linger: short, steps: []step{exit}, released: true, lingered: true},
		{name: "exited and released by its driver", linger: long, steps: []step{exit, settle, release}, released: true},
		{name: "released by its driver while it runs", linger: long, steps: []step{settle, release}, released: true},
		{name: "being released while it runs", linger: long, steps: []step{settle, releasing}, released: true, held: true},
		{name: "the server ends while it runs", linger: long, steps: []step{settle, quit}, held: true},
		{name: "the server ends after it exited", linger: long, steps: []step{exit, settle, quit}, held: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
			s.shared = true
			s.forgetLinger = tc.linger
			tk := newSharedTask(t, s, "task")
			id := make(chan string, 1)
			watched := make(chan struct{})
			go func() {
				defer close(watched)
				id <- goroutineID()
				s.forgetAfter(tk)
			}()
			g := <-id
			watching := func() bool { return goroutineBlocked(g) }
			began := time.Now()
			for _, step := range tc.steps {
				step(s, tk, watching)
			}
			select {
			case <-watched:
			case <-time.After(10 * time.Second):
				select {
				case <-s.quit:
				default:
					close(s.quit)
				}
				<-watched
				t.Fatal("forgetAfter did not return")
			}
			s.wg.Wait()
			if tc.lingered {
				must.GreaterEq(t, tc.linger, time.Since(began), must.Sprint("released before it lingered"))
			}
			s.mu.Lock()
			_, held := s.tasks["task"]
			s.mu.Unlock()
			must.Eq(t, tc.held, held)
			select {
			case <-tk.released:
				must.True(t, tc.released, must.Sprint("the task was released"))
			default:
				must.False(t, tc.released, must.Sprint("the task was not released"))
			}
		})
	}
}
