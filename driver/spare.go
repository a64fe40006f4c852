// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"context"
	"sync"

	"github.com/hashicorp/go-hclog"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// spareExecutor keeps one executor started ahead of the next task, so that
// starting a task does not wait for a process to start and initialise
// (about 15 ms for this binary, most of a small module's start). A task
// takes the spare and a new one is started in the background; when tasks
// start faster than spares, they launch their own. The fingerprint asks
// the spare what the node offers tasks.
//
// Ownership: run is the one goroutine that starts spares; it kills the
// spare and returns when the driver's context ends. An unclaimed executor
// also exits by itself when this process is gone, kill -9 included (it
// watches a pipe from it: executor.WatchFDFlag), so no spare outlives its
// driver.
type spareExecutor struct {
	ctx    context.Context
	logger hclog.Logger
	binary string
	// wanted asks run for a spare; it holds at most one request.
	wanted chan struct{}

	mu    sync.Mutex
	spare *executor.Client
	// ready is closed and replaced each time a spare is stored or run gives
	// up making one, for callers that wait for one.
	ready chan struct{}
	err   error // why the last launch failed
}

func newSpareExecutor(ctx context.Context, logger hclog.Logger, binary string) *spareExecutor {
	return &spareExecutor{ctx: ctx, logger: logger, binary: binary, wanted: make(chan struct{}, 1), ready: make(chan struct{})}
}

// fill asks for a spare, without waiting for it.
func (s *spareExecutor) fill() {
	select {
	case s.wanted <- struct{}{}:
	default:
	}
}

// take returns a started executor: the spare when there is a live one,
// else a new one. It asks for the next spare.
func (s *spareExecutor) take() (*executor.Client, error) {
	s.mu.Lock()
	c := s.spare
	s.spare = nil
	s.mu.Unlock()
	defer s.fill()
	if c != nil && c.Exited() {
		c.Kill()
		c = nil
	}
	if c != nil {
		return c, nil
	}
	return s.launch()
}

func (s *spareExecutor) launch() (*executor.Client, error) {
	return executor.Launch(executor.LaunchConfig{Binary: s.binary, Logger: s.logger})
}

// version asks an executor of this node for its version and, through req,
// for what the node offers tasks: the spare's answer, waiting for one to be
// started when there is none.
func (s *spareExecutor) version(ctx context.Context, req *proto.VersionRequest) (*proto.VersionResponse, error) {
	for attempt := 0; ; attempt++ {
		s.mu.Lock()
		c, ready, err := s.spare, s.ready, s.err
		s.mu.Unlock()
		if c != nil && !c.Exited() {
			return c.Version(ctx, req)
		}
		// A failure from before this call is not reported: try again.
		if attempt > 0 && err != nil {
			return nil, err
		}
		s.fill()
		select {
		case <-ready:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// run keeps a spare until the driver's context ends, then kills it.
func (s *spareExecutor) run() {
	for {
		select {
		case <-s.ctx.Done():
			s.mu.Lock()
			c := s.spare
			s.spare = nil
			s.mu.Unlock()
			if c != nil {
				c.Kill()
			}
			return
		case <-s.wanted:
		}
		s.mu.Lock()
		have := s.spare != nil && !s.spare.Exited()
		s.mu.Unlock()
		if have {
			continue
		}
		c, err := s.launch()
		if err != nil {
			s.logger.Warn("cannot start a spare executor; tasks will start their own", "error", err)
		}
		s.mu.Lock()
		old := s.spare
		s.spare, s.err = c, err
		close(s.ready)
		s.ready = make(chan struct{})
		s.mu.Unlock()
		if old != nil {
			old.Kill() // it had exited
		}
	}
}

// sparePid is the spare's process ID, or 0 when there is none.
func (s *spareExecutor) sparePid() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.spare == nil {
		return 0
	}
	return s.spare.Pid
}
