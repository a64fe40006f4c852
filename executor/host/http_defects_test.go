// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"
	"google.golang.org/grpc"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// The trigger's defects of issue #19: its CPU in the shared executor, the
// goroutines the executor must wait for, and the admission of requests
// against the drain.

// servedHTTPTask is an http-mode task started through the server's Start,
// as the driver does, in a server of its own.
type servedHTTPTask struct {
	s   *server
	tk  *task
	req *proto.StartRequest
	// close closes the server (once; the test's end does, if not before).
	close func()
}

// startServedHTTPTask starts the wagi module in http mode in a new server,
// the node's shared executor or an executor of its own; adjust changes the
// start request.
func startServedHTTPTask(t *testing.T, shared bool, adjust func(*proto.StartRequest)) *servedHTTPTask {
	t.Helper()
	s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
	s.shared = shared
	req := httpStartRequest(t, "wagi", func(r *proto.StartRequest) {
		r.TaskId = "web"
		if adjust != nil {
			adjust(r)
		}
	})
	if shared {
		precompile(t, req, filepath.Join(req.Mounts[0].HostPath, "handler.wasm"))
	}
	_, err := s.Start(context.Background(), req)
	must.NoError(t, err)
	tk, err := s.current("web")
	must.NoError(t, err)
	var once sync.Once
	st := &servedHTTPTask{s: s, tk: tk, req: req, close: func() { once.Do(s.close) }}
	t.Cleanup(func() {
		st.close()
		tk.prog.close()
	})
	return st
}

// statsStream receives what Stats sends.
type statsStream struct {
	grpc.ServerStream
	ctx context.Context
	out chan *proto.StatsResponse
}

func (s *statsStream) Context() context.Context { return s.ctx }

func (s *statsStream) Send(r *proto.StatsResponse) error {
	select {
	case s.out <- r:
		return nil
	case <-s.ctx.Done():
		return s.ctx.Err()
	}
}

// TestHTTPTriggerSharedStatsCountRequestCPU: in the shared executor an
// http task's CPU is what its requests' instances use, counted while they
// run, and kept once they have ended (the trigger runs no guest of its
// own).
func TestHTTPTriggerSharedStatsCountRequestCPU(t *testing.T) {
	t.Parallel()
	st := startServedHTTPTask(t, true, func(r *proto.StartRequest) { r.Http.TimeoutNanos = int64(time.Minute) })
	tk := st.tk

	ctx, cancel := context.WithCancel(context.Background())
	stream := &statsStream{ctx: ctx, out: make(chan *proto.StatsResponse)}
	var wg sync.WaitGroup
	defer wg.Wait()
	stopTask := func() {
		tk.prog.stop(int32(syscall.SIGKILL))
		tk.run.kill()
	}
	defer stopTask()
	defer cancel()
	wg.Go(func() {
		_ = st.s.Stats(&proto.StatsRequest{TaskId: "web", IntervalNanos: int64(50 * time.Millisecond)}, stream)
	})
	// A request whose instance spins until the task stops.
	answered := make(chan int, 1)
	wg.Go(func() {
		resp, err := http.Get("http://" + tk.trigger().addr.String() + "/spin")
		if err != nil {
			answered <- 0
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		answered <- resp.StatusCode
	})

	const want = 50 * time.Millisecond
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	var last float64
	for counted := false; !counted; {
		select {
		case r := <-stream.out:
			last = r.CpuUserSeconds
			counted = time.Duration(last*float64(time.Second)) >= want
		case <-deadline.C:
			t.Fatalf("the task's stats never counted its request's CPU while it ran: %.3f s", last)
		}
	}
	must.Eq(t, int64(1), tk.trigger().stats.inFlight.Load(), must.Sprint("counted only once the request had ended"))

	stopTask()
	select {
	case code := <-answered:
		must.Eq(t, http.StatusServiceUnavailable, code)
	case <-time.After(30 * time.Second):
		t.Fatal("the spinning request did not end with its task")
	}
	// Ended, its instance's CPU stays counted.
	must.GreaterEq(t, time.Duration(last*float64(time.Second)), tk.trigger().sampleCPU().user)
}

// TestHTTPTriggerCloseWaitsForDrain: the executor's close (its exit) waits
// for the trigger's drain, so that the access log is flushed and the
// task's exit status recorded before the process exits.
func TestHTTPTriggerCloseWaitsForDrain(t *testing.T) {
	t.Parallel()
	st := startServedHTTPTask(t, false, bigBodies)
	tk, req := st.tk, st.req
	h := &httpTask{tk: tk, url: "http://" + tk.trigger().addr.String()}
	must.Eq(t, http.StatusOK, h.do(t, "GET", "/hello", "").status)
	// And one in flight as the executor closes, which the drain waits for
	// (killWriteGrace: its client does not read its response).
	deafRequest(t, tk.trigger())

	st.close()
	select {
	case <-tk.run.done():
	default:
		t.Fatal("the executor's close returned before the trigger had drained")
	}
	log := readFile(t, req.StdoutPath)
	must.StrContains(t, log, `"GET /hello HTTP/1.1" 200 `, must.Sprint("the access log was not flushed"))
	must.StrContains(t, log, `"POST /echo HTTP/1.1" 200 `, must.Sprint("the access log was not flushed"))
	_, err := os.Stat(filepath.Join(req.StateDir, executor.ExitStatusFile))
	must.NoError(t, err, must.Sprint("the task's exit status was not recorded"))
}

// bigBodySize is the size of deafRequest's body and response: beyond what
// the sockets' buffers hold.
const bigBodySize = 12 << 20

// bigBodies lets a task take deafRequest's request.
func bigBodies(r *proto.StartRequest) {
	r.Http.MaxBodyBytes = bigBodySize
	r.MemoryLimitPages = 256 << 20 / executor.PageSize
}

// deafRequest sends tr a request whose response (bigBodySize) is read only
// as far as its first bytes: its handler is then held writing it.
func deafRequest(t *testing.T, tr *httpTrigger) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", tr.addr.String())
	must.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	// The handler reads the whole body before it answers.
	_, err = fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n", bigBodySize)
	must.NoError(t, err)
	_, err = io.CopyN(c, zeros{}, bigBodySize)
	must.NoError(t, err)
	_, err = io.ReadFull(c, make([]byte, 1024))
	must.NoError(t, err, must.Sprint("the response never began"))
	return c
}

// TestHTTPTriggerRefusesRequestsOnceDraining: a request that reaches the
// trigger once its drain waits for the requests in flight is refused, not
// counted beside the drain's wait (a WaitGroup's Add from zero concurrent
// with its Wait, which the race detector reports) nor run after the drain
// has closed what requests use.
func TestHTTPTriggerRefusesRequestsOnceDraining(t *testing.T) {
	t.Parallel()
	h := startHTTPTask(t, "wagi", nil)
	tr := h.tk.trigger()
	serve := func() int {
		rec := httptest.NewRecorder()
		tr.ServeHTTP(rec, httptest.NewRequest("GET", "/hello", nil))
		return rec.Code
	}
	// Requests arrive all through the drain.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for serve() != http.StatusServiceUnavailable {
				select {
				case <-h.tk.run.done():
					return
				default:
				}
			}
		})
	}
	waitUntil(t, func() bool { return tr.stats.inFlight.Load() > 0 }, "no request ran")
	h.tk.prog.stop(int32(syscall.SIGTERM))
	select {
	case <-h.tk.run.done():
	case <-time.After(30 * time.Second):
		t.Fatal("the trigger did not drain")
	}
	wg.Wait()

	before := tr.stats.count.Load()
	must.Eq(t, http.StatusServiceUnavailable, serve(), must.Sprint("a request was run after the drain"))
	must.Eq(t, before, tr.stats.count.Load(), must.Sprint("a request was counted after the drain"))
}

// TestHTTPTriggerCloseNotHeldByClients: since the executor's close waits
// for the drain, nothing a client does may hold the drain once it has run
// out of time: neither a body that never ends, nor a response it does not
// read.
func TestHTTPTriggerCloseNotHeldByClients(t *testing.T) {
	t.Parallel()
	st := startServedHTTPTask(t, false, bigBodies)
	tr := st.tk.trigger()
	// A body that stops coming.
	slow, err := net.Dial("tcp", tr.addr.String())
	must.NoError(t, err)
	defer slow.Close()
	_, err = fmt.Fprintf(slow, "POST /echo HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\npartial")
	must.NoError(t, err)
	waitUntil(t, func() bool { return tr.stats.inFlight.Load() == 1 }, "the slow request never ran")
	// A response that is not read.
	deaf := deafRequest(t, tr)

	closed := make(chan struct{})
	go func() { // ends with the close, which the test waits for
		st.close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(20 * time.Second):
		_ = slow.Close()
		_ = deaf.Close()
		<-closed
		t.Fatal("the executor's close waited for its clients")
	}
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
