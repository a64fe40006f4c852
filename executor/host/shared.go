// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// The node's shared executor (plugin config shared_executor = true) runs
// every Wasm task of the node as a program of one process. What differs
// from an executor of its own:
//
//   - Every instance has wazero's per-loop check, so that a stop reaches
//     one task's guest alone, wherever it spins; the garbage collector
//     runs as usual (gc.go is for guests without the check).
//   - A task stays until the driver releases it (Release) once it has
//     collected its exit; one whose driver never comes back is forgotten
//     lingerAfterExit after its exit, which is also in its task directory.
//   - The process exits once it holds no task and no driver: its launcher
//     (until the watch pipe from it closes) and each driver that reattached
//     and holds Attach open.
//   - Each task's part of the executor log goes to its own file in its
//     task directory; the process's own log is the file it was launched
//     with.
//   - Stats: linear memory per task is exact; CPU is the task's own: its
//     command instance's guest runs on a thread of its own (instance.tid),
//     and an http task's request instances are metered (cpuMeter); RSS
//     is the whole process's, shared by all its tasks, and says so.
//   - If the process dies, every task in it is lost: the driver reports
//     each as a node failure.

// releaseWait is how long Release waits for a stopped guest to end before
// it lets go of the task anyway.
const releaseWait = 5 * time.Second

// trimDelay is how long the shared executor waits after a start before it
// hands back memory, so that a burst of starts pays for one collection.
const trimDelay = time.Second

// trimSoon hands memory back to the system trimDelay from now, once for
// all the starts until then.
func (s *server) trimSoon() {
	s.mu.Lock()
	pending := s.trimPending
	s.trimPending = true
	s.mu.Unlock()
	if pending {
		return
	}
	s.wg.Go(func() {
		if !s.pause(trimDelay) {
			return
		}
		s.mu.Lock()
		s.trimPending = false
		s.mu.Unlock()
		debug.FreeOSMemory()
		trimBinaryPages()
	})
}

// forgetAfter releases a task of the shared executor lingerAfterExit after
// its guest exited, unless its driver released it before.
func (s *server) forgetAfter(t *task) {
	select {
	case <-t.run.done():
	case <-t.released:
		return
	case <-s.quit:
		return
	}
	timer := time.NewTimer(s.forgetLinger)
	defer timer.Stop()
	select {
	case <-timer.C:
		t.logger.Info("the guest exited and no driver collected its status; forgetting the task (its status is in its task directory)")
		s.release(t)
	case <-t.released:
	case <-s.quit:
	}
}

// Release forgets a task: its guest is stopped first if it still runs.
// An executor of its own then exits.
func (s *server) Release(_ context.Context, req *proto.ReleaseRequest) (*proto.ReleaseResponse, error) {
	t, err := s.current(req.TaskId)
	if err != nil {
		// Released already, or forgotten: nothing is left to do.
		return &proto.ReleaseResponse{}, nil //nolint:nilerr // releasing is idempotent
	}
	s.release(t)
	if !s.shared {
		s.shutdown("its task was released")
	}
	return &proto.ReleaseResponse{}, nil
}

// release stops a task's guest and its execs if they still run, closes
// what the task holds and removes it; the shared executor then exits if it
// holds nothing and no driver holds it. An exec that comes after it is
// refused (execProgram); one that came before is waited for, as the guest
// is, up to releaseWait: what has not ended by then keeps its programs and
// files until the process exits.
func (s *server) release(t *task) {
	t.releaseOnce.Do(func() {
		close(t.released)
		t.execMu.Lock()
		t.execClosed = true
		programs := t.execPrograms
		t.execPrograms = nil
		t.execMu.Unlock()
		t.prog.stop(int32(syscall.SIGKILL))
		for _, p := range programs {
			p.stop(int32(syscall.SIGKILL))
		}
		t.run.kill()
		execsDone := make(chan struct{})
		s.wg.Go(func() {
			t.execs.Wait()
			close(execsDone)
		})
		defer close(t.releaseDone)
		deadline := time.NewTimer(s.releaseWait)
		defer deadline.Stop()
		ended := true
		for _, done := range []<-chan struct{}{t.run.done(), execsDone} {
			select {
			case <-done:
			case <-deadline.C:
				ended = false
			}
			if !ended {
				t.logger.Warn("the guest or an exec did not end after its stop; leaving its programs to the process's exit", "waited", s.releaseWait)
				break
			}
		}
		if ended {
			for _, p := range programs {
				p.close()
			}
			t.prog.close()
		}
		s.mu.Lock()
		if s.tasks[t.id] == t {
			delete(s.tasks, t.id)
		}
		s.mu.Unlock()
		opened, refused := t.prog.spec.Network.counts()
		t.logger.Info("task released", "outbound_opened", opened, "outbound_refused", refused)
		if ended {
			t.files.close()
			t.prog.spec.Network.close()
		}
		s.exitIfIdle()
	})
}

// Attach holds a shared executor for a driver until the driver goes away.
func (s *server) Attach(_ *proto.AttachRequest, stream proto.Executor_AttachServer) error {
	if !s.shared {
		return executor.NodeErrorf("only the shared executor takes Attach")
	}
	s.mu.Lock()
	s.drivers++
	s.mu.Unlock()
	select {
	case <-stream.Context().Done():
	case <-s.quit:
	}
	s.detach()
	return nil
}

// detach counts a driver gone.
func (s *server) detach() {
	s.mu.Lock()
	s.drivers--
	s.mu.Unlock()
	s.exitIfIdle()
}

// exitIfIdle ends the shared executor once it holds no task and no driver.
func (s *server) exitIfIdle() {
	if !s.shared {
		return
	}
	s.mu.Lock()
	idle := len(s.tasks) == 0 && s.drivers <= 0
	s.mu.Unlock()
	if idle {
		s.shutdown("the shared executor holds no task and no driver")
	}
}
