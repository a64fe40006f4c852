// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"syscall"
	"time"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

func (s *server) Wait(ctx context.Context, req *proto.WaitRequest) (*proto.WaitResponse, error) {
	t, err := s.current(req.TaskId)
	if err != nil {
		return nil, err
	}
	select {
	case <-t.run.done():
		return &proto.WaitResponse{Status: t.run.exitStatus()}, nil
	case <-t.releaseDone:
		// Released, and its guest did not end in release's wait: nobody
		// will learn more of it.
		select {
		case <-t.run.done():
			return &proto.WaitResponse{Status: t.run.exitStatus()}, nil
		default:
		}
		return &proto.WaitResponse{Status: &proto.ExitStatus{ExitCode: 128 + 9, Signal: 9, ExitedAtUnixNano: time.Now().UnixNano(),
			Error: "the guest did not end after its stop: the task was released from the node's shared executor, which runs on for its other tasks, and its guest left to that executor's exit"}}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (s *server) Stop(ctx context.Context, req *proto.StopRequest) (*proto.StopResponse, error) {
	t, err := s.current(req.TaskId)
	if err != nil {
		return nil, err
	}
	s.stopMain(t, req.Signal)
	timer := time.NewTimer(time.Duration(req.TimeoutNanos))
	defer timer.Stop()
	select {
	case <-t.run.done():
		return &proto.StopResponse{Exited: true}, nil
	case <-timer.C:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	// The stop ran out of time: what still runs is ended where the runner
	// can (a trigger's requests in flight, whose instances share this
	// process, end promptly); else the driver ends the executor.
	if !t.run.kill() {
		return &proto.StopResponse{Exited: false}, nil
	}
	select {
	case <-t.run.done():
		return &proto.StopResponse{Exited: true}, nil
	case <-time.After(time.Second):
		return &proto.StopResponse{Exited: false}, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// stopMain stops the task's program with signal. A command instance
// compiled without the per-loop check is then watched (watchStop).
func (s *server) stopMain(t *task, signal int32) {
	t.prog.stop(signal)
	if t.command != nil && !t.prog.spec.Interruptible {
		t.watchOnce.Do(func() { s.wg.Go(func() { s.watchStop(t.command) }) })
	}
}

// watchStop follows a stopped instance that has no per-loop check. One
// in a host call, or making one, ends there (the WASI host's guard), as a
// guest with the check would. One that is still running its own code
// after computeGrace, of time and of the executor's CPU time, cannot be
// reached from inside the process: it is abandoned (its exit status
// recorded as the stop's), and the executor exits soon after
// (exitAfter), which ends it. The CPU time tells a guest that spins from
// one the node's scheduler has not run since the stop, which would make
// its next host call once it runs: on a loaded node the wall clock alone
// took one for the other. (The process's CPU time stands for the
// guest's: an executor of its own, the only kind that runs guests
// without the check, does little else once its task is stopped.) One
// that stays inside a host call that the stop cannot cut short (a kernel
// wait) is left to the driver, which kills the executor once the stop's
// timeout has passed, as before.
func (s *server) watchStop(in *instance) {
	began := s.cpuTime()
	grace := time.NewTimer(computeGrace)
	defer grace.Stop()
	select {
	case <-in.ended:
		return
	case <-s.quit:
		return
	case <-grace.C:
	}
	tick := time.NewTicker(computeGrace / 4)
	defer tick.Stop()
	for in.calls.Inside() != 0 || s.cpuTime()-began < computeGrace {
		select {
		case <-in.ended:
			return
		case <-s.quit:
			return
		case <-tick.C:
		}
	}
	s.logger.Warn("the guest was stopped while it ran its own code, which a stop cannot reach without wazero's per-loop check: recording its exit as the stop's and ending the executor")
	in.abandon()
}

// processCPUTime is the CPU time the process has used, in user and
// kernel mode; the wall clock where the kernel does not say.
func processCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return time.Duration(time.Now().UnixNano())
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func (s *server) Signal(_ context.Context, req *proto.SignalRequest) (*proto.SignalResponse, error) {
	t, err := s.current(req.TaskId)
	if err != nil {
		return nil, err
	}
	switch syscall.Signal(req.Signal) {
	case syscall.SIGINT, syscall.SIGTERM:
		s.stopMain(t, req.Signal)
		return &proto.SignalResponse{}, nil
	}
	return nil, executor.JobErrorf("signal %d cannot be delivered: %s", req.Signal, executor.ErrSignalUnsupported)
}
