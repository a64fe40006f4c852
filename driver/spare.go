// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
)

// spareExecutor keeps one executor started ahead of the next task, so that
// starting a task does not wait for a process to start and initialise
// (about 15 ms for this binary, most of a small module's start). A task
// takes the spare and a new one is started in the background; when tasks
// start faster than spares, they launch their own.
//
// An unclaimed executor exits on its own after executor's idle timeout
// (ten minutes), so a spare left behind by a driver that died goes away;
// the driver replaces its spare well before that.
type spareExecutor struct {
	ctx    context.Context
	logger hclog.Logger
	binary string

	mu        sync.Mutex
	spare     *executor.Client
	startedAt time.Time
	filling   bool
}

// maxSpareAge is how long a spare is kept before it is replaced; less than
// the executor's idle timeout, so that a taken spare is always alive.
const maxSpareAge = 5 * time.Minute

// take returns a started executor: the spare when there is a live one,
// else a new one. The caller starts the next spare (fill) once its own
// task has started, so that the two do not compete for the CPU.
func (s *spareExecutor) take() (*executor.Client, error) {
	s.mu.Lock()
	c, age := s.spare, time.Since(s.startedAt)
	s.spare = nil
	s.mu.Unlock()
	if c != nil && (c.Exited() || age > maxSpareAge) {
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

// ready reports whether a spare is waiting.
func (s *spareExecutor) ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.spare != nil
}

// fill starts a spare if there is none and none is being started, and
// kills it again if the driver has shut down meanwhile.
func (s *spareExecutor) fill() {
	s.mu.Lock()
	if s.spare != nil || s.filling || s.ctx.Err() != nil {
		s.mu.Unlock()
		return
	}
	s.filling = true
	s.mu.Unlock()

	c, err := s.launch()

	s.mu.Lock()
	defer s.mu.Unlock()
	s.filling = false
	if err != nil {
		s.logger.Warn("cannot start a spare executor; tasks will start their own", "error", err)
		return
	}
	if s.ctx.Err() != nil {
		c.Kill()
		return
	}
	s.spare, s.startedAt = c, time.Now()
}

// run replaces an ageing spare and kills the spare when the driver stops.
func (s *spareExecutor) run() {
	t := time.NewTicker(maxSpareAge / 2)
	defer t.Stop()
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
		case <-t.C:
			s.mu.Lock()
			var old *executor.Client
			if s.spare != nil && time.Since(s.startedAt) > maxSpareAge/2 {
				old, s.spare = s.spare, nil
			}
			s.mu.Unlock()
			if old != nil {
				old.Kill()
				s.fill()
			}
		}
	}
}
