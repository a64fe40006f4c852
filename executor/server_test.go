// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"net"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"
	"google.golang.org/grpc"
)

// serveForTest serves s on a loopback listener and returns a channel that
// is closed when serving ends.
func serveForTest(t *testing.T, s *server) <-chan struct{} {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must.NoError(t, err)
	s.grpcServer = grpc.NewServer()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.grpcServer.Serve(l)
	}()
	t.Cleanup(s.grpcServer.Stop)
	return done
}

func TestUnclaimedExecutorExits(t *testing.T) {
	t.Parallel()
	s := &server{logger: hclog.NewNullLogger(), claimed: make(chan struct{})}
	done := serveForTest(t, s)
	go s.exitIfIdle(50 * time.Millisecond)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("an executor that was never given a task did not exit")
	}
}

func TestClaimedExecutorStays(t *testing.T) {
	t.Parallel()
	s := &server{logger: hclog.NewNullLogger(), claimed: make(chan struct{})}
	done := serveForTest(t, s)
	close(s.claimed)
	returned := make(chan struct{})
	go func() {
		s.exitIfIdle(time.Millisecond)
		close(returned)
	}()
	<-returned
	select {
	case <-done:
		t.Fatal("a claimed executor stopped serving")
	default:
	}
}
