// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"net"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"
	"google.golang.org/grpc"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// serveForTest serves s on a loopback listener, as go-plugin would, and
// returns a channel that is closed when serving ends.
func serveForTest(t *testing.T, s *server) <-chan struct{} {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	must.NoError(t, err)
	g := grpc.NewServer()
	s.serving(g)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = g.Serve(l)
	}()
	t.Cleanup(func() {
		g.Stop()
		<-done
	})
	return done
}

// waitStopped fails the test unless serving ends (done is closed) soon.
func waitStopped(t *testing.T, done <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal(what)
	}
}

// watchPipe gives s a launcher watch pipe and returns its write end: the
// driver's.
func watchPipe(t *testing.T, s *server) *os.File {
	t.Helper()
	r, w, err := os.Pipe()
	must.NoError(t, err)
	fd, err := dupFD(r)
	must.NoError(t, err)
	_ = r.Close()
	s.watchLauncher(fd)
	return w
}

func TestUnclaimedExecutorExitsWithItsLauncher(t *testing.T) {
	t.Parallel()
	s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
	done := serveForTest(t, s)
	w := watchPipe(t, s)
	must.NoError(t, w.Close()) // the driver is gone
	waitStopped(t, done, "an unclaimed executor did not stop serving when its launcher went away")
	s.close()
}

func TestClaimedExecutorStays(t *testing.T) {
	t.Parallel()
	s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
	done := serveForTest(t, s)
	w := watchPipe(t, s)
	s.mu.Lock()
	s.started = true // claimed
	s.mu.Unlock()
	must.NoError(t, w.Close())
	// The watch has seen the end of the pipe once its goroutine is done;
	// nothing else runs in the server's group.
	s.wg.Wait()
	select {
	case <-done:
		t.Fatal("a claimed executor stopped serving when its launcher went away")
	default:
	}
}

// TestStopBeforeServing: a stop asked for before go-plugin made the gRPC
// server stops it as soon as it exists.
func TestStopBeforeServing(t *testing.T) {
	t.Parallel()
	s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
	s.shutdown("test")
	done := serveForTest(t, s)
	waitStopped(t, done, "a stop requested before serving was lost")
	s.close()
}

// TestExecutorExitsAfterAFailedStart: an executor whose task could not
// start exits by itself when no other start comes, and the failure carries
// its class.
func TestExecutorExitsAfterAFailedStart(t *testing.T) {
	t.Parallel()
	s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
	s.failedLinger = 50 * time.Millisecond
	done := serveForTest(t, s)
	_, err := s.Start(context.Background(), &proto.StartRequest{
		Module: "/local/missing.wasm", Entrypoint: "_start", Engine: executor.EngineAuto,
		Mounts: []*proto.Mount{{GuestPath: "/local", HostPath: t.TempDir()}}, CacheDir: t.TempDir(),
	})
	must.ErrorContains(t, err, "does not exist in the task's view")
	must.Eq(t, executor.ClassJob, executor.ClassOf(err))
	waitStopped(t, done, "an executor whose start failed did not exit")
	s.close()
}
