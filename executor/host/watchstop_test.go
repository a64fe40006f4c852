// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// newStoppedInstance is an instance of a program of its own, without a
// guest, stopped with signal as stopMain stops a program (or, with
// instanceSignal, as an instance is stopped alone).
func newStoppedInstance(t *testing.T, signal int32, instanceSignal bool) *instance {
	t.Helper()
	prog := &program{logger: hclog.NewNullLogger()}
	prog.ctx, prog.cancel = context.WithCancel(context.Background())
	t.Cleanup(prog.cancel)
	in := &instance{prog: prog, ended: make(chan struct{})}
	in.ctx, in.cancel = context.WithCancel(prog.ctx)
	if instanceSignal {
		in.stop(signal)
	} else {
		prog.stop(signal)
	}
	return in
}

// TestWatchStop: a stopped instance without the per-loop check is left to
// end by itself while it does, or while it is inside a host call (where
// the stop reaches it), or while the process has not had computeGrace of
// CPU time since the stop (the guest may not have run); one still in its
// own code after computeGrace, of time and of CPU time, is abandoned: its
// exit recorded as the stop's. The watch ends with the server.
func TestWatchStop(t *testing.T) {
	t.Parallel()
	ended := &proto.ExitStatus{ExitCode: 128 + 15, Signal: 15}
	for _, tc := range []struct {
		name string
		// signal stops the program, or the instance alone.
		signal         int32
		instanceSignal bool
		inHost         bool // inside a host call at first
		// unscheduled: the process uses no CPU time at first (else it
		// uses a core, as a guest spinning in its own code does).
		unscheduled bool
		// then, once computeGrace has passed twice over (nil: nothing).
		then      func(s *server, in *instance, cpu *guestCPU)
		abandoned bool
		want      *proto.ExitStatus // nil: no status
	}{
		{name: "in its own code", signal: 15, abandoned: true, want: ended},
		{name: "in its own code, stopped alone", signal: 9, instanceSignal: true, abandoned: true, want: &proto.ExitStatus{ExitCode: 128 + 9, Signal: 9}},
		{name: "inside a host call, then back in its own code", signal: 15, inHost: true,
			then: func(_ *server, in *instance, _ *guestCPU) { in.calls.Leave() }, abandoned: true, want: ended},
		{name: "inside a host call, where it ends", signal: 15, inHost: true,
			then: func(_ *server, in *instance, _ *guestCPU) { in.finish(&proto.ExitStatus{ExitCode: 3}) }, want: &proto.ExitStatus{ExitCode: 3}},
		{name: "inside a host call when the server ends", signal: 15, inHost: true,
			then: func(s *server, _ *instance, _ *guestCPU) { close(s.quit) }},
		{name: "not run since the stop, then in its own code", signal: 15, unscheduled: true,
			then: func(_ *server, _ *instance, cpu *guestCPU) { cpu.run() }, abandoned: true, want: ended},
		{name: "not run since the stop, then ending at a host call", signal: 15, unscheduled: true,
			then: func(_ *server, in *instance, _ *guestCPU) { in.finish(&proto.ExitStatus{ExitCode: 143, Signal: 15}) }, want: ended},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
			var cpu guestCPU
			if !tc.unscheduled {
				cpu.run()
			}
			s.cpuTime = cpu.time
			in := newStoppedInstance(t, tc.signal, tc.instanceSignal)
			if tc.inHost {
				in.calls.Enter()
			}
			watched := make(chan struct{})
			began, thenAt := time.Now(), time.Time{}
			go func() {
				defer close(watched)
				s.watchStop(in)
			}()
			if tc.then != nil {
				// Still watching: it waits as long as the guest is in a
				// host call, or has not run.
				select {
				case <-watched:
					t.Fatal("the watch ended while the guest was inside a host call or had not run")
				case <-time.After(2 * computeGrace):
				}
				must.False(t, in.abandoned.Load())
				thenAt = time.Now()
				tc.then(s, in, &cpu)
			}
			select {
			case <-watched:
			case <-time.After(10 * time.Second):
				close(s.quit)
				<-watched
				t.Fatal("the watch did not end")
			}
			must.Eq(t, tc.abandoned, in.abandoned.Load())
			if tc.abandoned {
				must.GreaterEq(t, computeGrace, time.Since(began), must.Sprint("abandoned before its grace"))
				if tc.unscheduled {
					must.GreaterEq(t, computeGrace, time.Since(thenAt), must.Sprint("abandoned before its grace of CPU time"))
				}
			}
			if tc.want == nil {
				select {
				case <-in.ended:
					t.Fatalf("an exit was recorded: %v", in.status)
				default:
				}
				return
			}
			<-in.ended
			must.Eq(t, tc.want.ExitCode, in.status.ExitCode)
			must.Eq(t, tc.want.Signal, in.status.Signal)
		})
	}
}

// guestCPU is the CPU time of a process whose guest spins in its own code
// once it runs: none before, then as much as the wall clock's.
type guestCPU struct{ since atomic.Int64 } // when it began to run (Unix ns); 0: not yet

func (g *guestCPU) run() { g.since.Store(time.Now().UnixNano()) }

func (g *guestCPU) time() time.Duration {
	if since := g.since.Load(); since != 0 {
		return time.Since(time.Unix(0, since))
	}
	return 0
}

// TestWatchStopEndsEarly: the watch ends at once, abandoning nothing, when
// the instance ends or the server does within the grace.
func TestWatchStopEndsEarly(t *testing.T) {
	t.Parallel()
	for _, end := range []string{"instance", "server"} {
		t.Run(end, func(t *testing.T) {
			t.Parallel()
			s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
			in := newStoppedInstance(t, int32(syscall.SIGTERM), false)
			if end == "instance" {
				in.finish(&proto.ExitStatus{})
			} else {
				close(s.quit)
			}
			began := time.Now()
			s.watchStop(in)
			must.Less(t, computeGrace, time.Since(began), must.Sprint("the watch waited out the grace"))
			must.False(t, in.abandoned.Load())
		})
	}
}
