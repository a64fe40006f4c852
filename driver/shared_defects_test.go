// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"github.com/shoenig/test/must"
	"google.golang.org/grpc"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// fakeSharedExecutor answers the protocol as a shared executor of process
// pid would: its first hangAfter Version calls (all, when 0), then none
// until the test ends (a hung executor).
type fakeSharedExecutor struct {
	proto.UnimplementedExecutorServer
	pid       int
	hangAfter int32
	versions  atomic.Int32
	// hanging is closed when a Version call is held.
	hanging  chan struct{}
	hangOnce sync.Once
	// release ends the calls held, at the test's end.
	release chan struct{}
}

func (f *fakeSharedExecutor) Version(ctx context.Context, _ *proto.VersionRequest) (*proto.VersionResponse, error) {
	if n := f.versions.Add(1); f.hangAfter > 0 && n > f.hangAfter {
		f.hangOnce.Do(func() { close(f.hanging) })
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-f.release:
			return nil, errors.New("released")
		}
	}
	return &proto.VersionResponse{Protocol: executor.ProtocolVersion, Pid: int32(f.pid), Shared: true}, nil
}

func (f *fakeSharedExecutor) Attach(_ *proto.AttachRequest, stream proto.Executor_AttachServer) error {
	select {
	case <-stream.Context().Done():
	case <-f.release:
	}
	return nil
}

// serveFakeSharedExecutor serves f on a loopback port until the test ends,
// and returns what reattaches to it.
func serveFakeSharedExecutor(t *testing.T, f *fakeSharedExecutor) *plugin.ReattachConfig {
	t.Helper()
	f.hanging, f.release = make(chan struct{}), make(chan struct{})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must.NoError(t, err)
	g := grpc.NewServer()
	proto.RegisterExecutorServer(g, f)
	var wg sync.WaitGroup
	wg.Go(func() { _ = g.Serve(ln) })
	t.Cleanup(func() {
		close(f.release)
		g.Stop()
		wg.Wait()
	})
	return &plugin.ReattachConfig{Protocol: plugin.ProtocolGRPC, ProtocolVersion: 1, Addr: ln.Addr(), Pid: f.pid}
}

// TestSharedExecutorHungHoldsNoStart: a shared executor that stops
// answering while the driver reattaches to it (a recovered task's) holds
// up neither the starts that go to the executor in use nor the recovery
// for ever: its Version call has a deadline, and no lock is held across
// it.
func TestSharedExecutorHungHoldsNoStart(t *testing.T) {
	t.Parallel()
	// Two live processes for the two executors: this one and its parent.
	good := serveFakeSharedExecutor(t, &fakeSharedExecutor{pid: os.Getpid()})
	hung := &fakeSharedExecutor{pid: os.Getppid(), hangAfter: 1} // Reattach's own call is answered
	hungRC := serveFakeSharedExecutor(t, hung)

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	s := newSharedExecutor(ctx, hclog.NewNullLogger(), "")
	inUse, err := s.reattach(good)
	must.NoError(t, err)
	c, err := s.get()
	must.NoError(t, err)
	must.Eq(t, inUse, c)

	recovered := make(chan error, 1)
	began := time.Now()
	go func() { // ends by versionTimeout, or by the hung executor's release at the test's end
		_, err := s.reattach(hungRC)
		recovered <- err
	}()
	select {
	case <-hung.hanging:
	case <-time.After(30 * time.Second):
		t.Fatal("the reattach never asked the hung executor")
	}

	got := make(chan *executor.Client, 1)
	go func() { // ends once get returns, which the release at the test's end ensures
		c, _ := s.get()
		got <- c
	}()
	select {
	case c := <-got:
		must.Eq(t, inUse, c)
	case <-time.After(versionTimeout / 2):
		t.Fatal("a start waited for the reattach of a hung executor")
	}

	select {
	case err := <-recovered:
		must.ErrorContains(t, err, "did not say what it is")
		must.Less(t, versionTimeout+5*time.Second, time.Since(began))
	case <-time.After(versionTimeout + 30*time.Second):
		t.Fatal("the reattach of a hung executor never returned")
	}
}
