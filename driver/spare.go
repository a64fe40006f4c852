// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

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

	mu   sync.Mutex
	warm *executor.Warm // what spares prepare; set by setWarm
	// recent are the modules started through this driver, most recent
	// first, at most warm.Modules of them.
	recent []recentStart
	spare  *executor.Client
	// spareKnows are the digests the spare was launched to prepare.
	spareKnows []string
	// ready is closed and replaced each time a spare is stored or run gives
	// up making one, for callers that wait for one.
	ready chan struct{}
	err   error // why the last launch failed
	// stale: the spare should be replaced by one that knows a newer start.
	stale bool
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
// else a new one. The caller asks for the next spare (fill) once its own
// task has started, so that the two do not compete for the CPU.
func (s *spareExecutor) take() (*executor.Client, error) {
	s.mu.Lock()
	c := s.spare
	s.spare = nil
	s.mu.Unlock()
	if c != nil && c.Exited() {
		c.Kill()
		c = nil
	}
	if c != nil {
		return c, nil
	}
	// A task's own executor prepares nothing: its Start comes at once.
	return s.launch(nil)
}

func (s *spareExecutor) launch(warm *executor.Warm) (*executor.Client, error) {
	return executor.Launch(executor.LaunchConfig{Binary: s.binary, Logger: s.logger, Warm: warm})
}

// recentStart is a module's latest start.
type recentStart struct {
	digest string
	at     time.Time
}

// started records that module digest has just started. A spare that was
// launched before and was not told of it is replaced by one that
// prepares it, so that the next start of the module is a prepared one.
func (s *spareExecutor) started(digest string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.warm == nil || s.warm.Modules == 0 {
		return
	}
	recent := []recentStart{{digest, time.Now()}}
	for _, r := range s.recent {
		if r.digest != digest && time.Since(r.at) < executor.RecentWindow && len(recent) < s.warm.Modules {
			recent = append(recent, r)
		}
	}
	s.recent = recent
	if s.spare != nil && !slices.Contains(s.spareKnows, digest) {
		s.stale = true
	}
}

// setWarm says what the next spares prepare while they wait (see
// executor.Warm); the spare there is now, made for other settings, is
// replaced.
func (s *spareExecutor) setWarm(w *executor.Warm) {
	s.mu.Lock()
	s.warm = w
	old := s.spare
	s.spare = nil
	s.mu.Unlock()
	if old != nil {
		old.Kill()
	}
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
			v, err := c.Version(ctx, req)
			// A spare replaced while it answered: ask its successor.
			if errors.Is(err, executor.ErrExecutorLost) && attempt < 3 {
				continue
			}
			return v, err
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
		have := s.spare != nil && !s.spare.Exited() && !s.stale
		var warm *executor.Warm
		if s.warm != nil {
			w := *s.warm
			for _, r := range s.recent {
				w.Digests = append(w.Digests, r.digest)
			}
			warm = &w
		}
		s.stale = false
		s.mu.Unlock()
		if have {
			continue
		}
		c, err := s.launch(warm)
		if err != nil {
			s.logger.Warn("cannot start a spare executor; tasks will start their own", "error", err)
		}
		s.mu.Lock()
		old := s.spare
		s.spare, s.err = c, err
		s.spareKnows = nil
		if warm != nil {
			s.spareKnows = warm.Digests
		}
		close(s.ready)
		s.ready = make(chan struct{})
		s.mu.Unlock()
		if old != nil {
			old.Kill() // it had exited, or it is replaced
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
