// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

// httpTask is an http-mode task run by an in-process executor.
type httpTask struct {
	tk     *task
	url    string
	stderr string // the task's stderr log
	stdout string // the task's stdout log (the access log)
}

// startHTTPTask starts module (a test module name) in http mode on a
// loopback port; adjust changes the request before it is sent.
func startHTTPTask(t testing.TB, module string, adjust func(*proto.StartRequest)) *httpTask {
	t.Helper()
	req := httpStartRequest(t, module, adjust)
	s := newServer(hclog.NewNullLogger(), &logOutput{w: os.Stderr})
	tk, err := s.start(context.Background(), req, nil)
	must.NoError(t, err)
	t.Cleanup(func() {
		tk.prog.stop(int32(syscall.SIGKILL))
		tk.run.kill()
		<-tk.run.done()
		tk.prog.close()
	})
	return &httpTask{tk: tk, url: "http://" + tk.trigger().addr.String(), stderr: req.StderrPath, stdout: req.StdoutPath}
}

// httpStartRequest is the start request of an http-mode task that serves
// module (a test module name) on a loopback port, its logs and state in a
// directory of the test's; adjust changes it.
func httpStartRequest(t testing.TB, module string, adjust func(*proto.StartRequest)) *proto.StartRequest {
	t.Helper()
	local, logs := t.TempDir(), t.TempDir()
	testmodule.Install(t, module, local, "handler.wasm")
	req := &proto.StartRequest{
		Module: "/local/handler.wasm", Entrypoint: "_start", Engine: executor.EngineAuto,
		Mounts:           []*proto.Mount{{GuestPath: "/local", HostPath: local}},
		Env:              map[string]string{"TASK_ENV": "from-the-task"},
		CacheDir:         cacheDirForTest(t),
		MemoryLimitPages: 64 << 20 / executor.PageSize,
		StdoutPath:       filepath.Join(logs, "stdout"),
		StderrPath:       filepath.Join(logs, "stderr"),
		StateDir:         logs,
		Http: &proto.HTTPTrigger{
			Listener:       &proto.Listener{Label: "http", Address: "127.0.0.1"},
			Metrics:        &proto.Listener{Label: "metrics", Address: "127.0.0.1"},
			MaxConcurrency: 8, TimeoutNanos: int64(10 * time.Second), MaxBodyBytes: 1 << 20, AccessLog: true,
		},
	}
	if adjust != nil {
		adjust(req)
	}
	return req
}

// cacheDirForTest is a compiled-module cache shared by the tests of this
// package, so that each module compiles once per run.
func cacheDirForTest(t testing.TB) string {
	dir := filepath.Join(os.TempDir(), "nomad-driver-wasm-host-test-cache")
	must.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

type reply struct {
	status int
	header http.Header
	body   string
}

func (h *httpTask) do(t *testing.T, method, path, body string) reply {
	t.Helper()
	req, err := http.NewRequest(method, h.url+path, strings.NewReader(body))
	must.NoError(t, err)
	if body != "" {
		req.Header.Set("Content-Type", "application/x-test")
	}
	req.Header.Set("X-Trace-Id", "t-1")
	resp, err := http.DefaultClient.Do(req)
	must.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	must.NoError(t, err)
	return reply{resp.StatusCode, resp.Header, string(b)}
}

func readFile(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	must.NoError(t, err)
	return string(b)
}

// TestHTTPTrigger: each request runs a fresh instance with the request in
// its CGI environment and body; what the module writes becomes the
// response, and whatever goes wrong in a module becomes a 5xx with the
// cause in the task's stderr log, never a hung connection.
func TestHTTPTrigger(t *testing.T) {
	t.Parallel()
	h := startHTTPTask(t, "wagi", func(r *proto.StartRequest) { r.Http.TimeoutNanos = int64(time.Second) })

	r := h.do(t, "GET", "/hello?x=1", "")
	must.Eq(t, 200, r.status)
	must.Eq(t, "text/plain", r.header.Get("Content-Type"))
	must.Eq(t, "hello GET /hello x=1\n", r.body)

	r = h.do(t, "POST", "/echo", "the body\x00\xff")
	must.Eq(t, 200, r.status)
	must.Eq(t, "the body\x00\xff", r.body)
	must.Eq(t, "application/x-test", r.header.Get("Content-Type"))

	r = h.do(t, "GET", "/env", "")
	for _, want := range []string{"TASK_ENV=from-the-task\n", "REQUEST_METHOD=GET\n", "HTTP_X_TRACE_ID=t-1\n", "SERVER_PORT=" + h.tk.trigger().port + "\n", "REMOTE_ADDR=127.0.0.1\n"} {
		must.StrContains(t, r.body, want)
	}

	r = h.do(t, "GET", "/status", "")
	must.Eq(t, 404, r.status)
	must.Eq(t, "nope\n", r.body)
	r = h.do(t, "GET", "/header", "")
	must.Eq(t, "yes", r.header.Get("X-Custom"))

	// Nothing one request leaves in memory is seen by the next.
	for range 3 {
		must.Eq(t, "counter=1 marker=0", strings.TrimSpace(h.do(t, "GET", "/counter", "").body))
	}

	for path, want := range map[string]struct {
		status int
		log    string
	}{
		"/trap":       {500, "wasm trap"},
		"/exit3":      {500, "exited with code 3"},
		"/nohdr":      {502, "no blank line"},
		"/badstatus":  {502, "not a final HTTP status"},
		"/garbage":    {502, "malformed CGI response"},
		"/hugeheader": {502, "within the first 64 KiB"},
		"/silent":     {502, "wrote nothing"},
		"/spin":       {504, "no response within timeout = 1s"},
	} {
		r := h.do(t, "GET", path, "")
		must.Eq(t, want.status, r.status, must.Sprintf("GET %s: %s", path, r.body))
		must.StrContains(t, readFile(t, h.stderr), "GET "+path+": "+fmt.Sprint(want.status)+": ", must.Sprintf("GET %s", path))
		must.StrContains(t, readFile(t, h.stderr), want.log, must.Sprintf("GET %s", path))
	}
	// The executor survived all of that.
	must.Eq(t, 200, h.do(t, "GET", "/hello", "").status)

	r = h.do(t, "GET", "/stderr", "")
	must.Eq(t, 200, r.status)
	must.StrContains(t, readFile(t, h.stderr), "stderr line from wagi\n")

	r = h.do(t, "POST", "/echo", strings.Repeat("x", 1<<20+1))
	must.Eq(t, 413, r.status)
}

// TestHTTPTriggerMetrics: the metrics port serves the request counts by
// class, the latency histogram, the instances in flight and the failures
// in Prometheus' text format.
func TestHTTPTriggerMetrics(t *testing.T) {
	t.Parallel()
	h := startHTTPTask(t, "wagi", nil)
	h.do(t, "GET", "/hello", "")
	h.do(t, "GET", "/hello", "")
	h.do(t, "GET", "/status", "")
	h.do(t, "GET", "/trap", "")
	resp, err := http.Get("http://" + h.tk.trigger().metricsAddr.String() + "/metrics")
	must.NoError(t, err)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := string(b)
	for _, want := range []string{
		`wasm_http_requests_total{code="2xx"} 2`,
		`wasm_http_requests_total{code="4xx"} 1`,
		`wasm_http_requests_total{code="5xx"} 1`,
		`wasm_http_request_duration_seconds_bucket{le="+Inf"} 4`,
		`wasm_http_request_duration_seconds_count 4`,
		`wasm_http_instances_in_flight 0`,
		`wasm_http_instance_failures_total 1`,
		"# TYPE wasm_http_request_duration_seconds histogram",
	} {
		must.StrContains(t, m, want+"\n")
	}
}

// TestHTTPTriggerLimits: beyond max_concurrency a request waits, then
// gets 503; the task's memory bounds the instances in flight together.
func TestHTTPTriggerLimits(t *testing.T) {
	t.Parallel()
	h := startHTTPTask(t, "wagi", func(r *proto.StartRequest) { r.Http.MaxConcurrency = 1 })
	var wg sync.WaitGroup
	wg.Go(func() { must.Eq(t, 200, h.do(t, "GET", "/sleep?ms=3000", "").status) })
	waitUntil(t, func() bool { return h.tk.trigger().stats.inFlight.Load() == 1 }, "the first request never ran")
	must.Eq(t, 503, h.do(t, "GET", "/hello", "").status)
	must.StrContains(t, readFile(t, h.stderr), "all 1 instances are busy")
	wg.Wait()

	// 64 MiB of task memory: a request that wants 48 MiB runs, and a
	// second one beside it finds no memory.
	big := startHTTPTask(t, "wagi", nil)
	wg.Go(func() { must.Eq(t, "grew 40\n", big.do(t, "GET", "/grow?mb=40&hold_ms=3000", "").body) })
	waitUntil(t, func() bool { return big.tk.trigger().budget.Used() > 40<<20 }, "the first request never grew")
	r := big.do(t, "GET", "/grow?mb=40", "")
	must.Eq(t, 507, r.status, must.Sprintf("a module that handles its own out-of-memory answers as it likes: %s", r.body))
	wg.Wait()
	must.Eq(t, uint64(0), big.tk.trigger().budget.Used())

	// A module whose initial memory does not fit beside the instances in
	// flight is not instantiated: 503.
	bigmem := startHTTPTask(t, "wagi-bigmem", nil)
	wg.Go(func() { must.Eq(t, 200, bigmem.do(t, "GET", "/sleep?ms=3000", "").status) })
	waitUntil(t, func() bool { return bigmem.tk.trigger().stats.inFlight.Load() == 1 }, "the first request never ran")
	r = bigmem.do(t, "GET", "/hello", "")
	must.Eq(t, 503, r.status)
	must.StrContains(t, readFile(t, bigmem.stderr), "no memory for another instance")
	wg.Wait()
	must.Eq(t, 200, bigmem.do(t, "GET", "/hello", "").status)
}

func waitUntil(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestHTTPTriggerDrain: a stop refuses new connections and lets a request
// in flight finish; a drain that outlives the stop's timeout ends the
// requests still running, promptly.
func TestHTTPTriggerDrain(t *testing.T) {
	t.Parallel()
	h := startHTTPTask(t, "wagi", nil)
	s := &server{tasks: map[string]*task{"": h.tk}, quit: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Go(func() {
		r := h.do(t, "GET", "/sleep?ms=1000", "")
		must.Eq(t, 200, r.status)
		must.Eq(t, "slept\n", r.body)
	})
	waitUntil(t, func() bool { return h.tk.trigger().stats.inFlight.Load() == 1 }, "the request never ran")
	resp, err := s.Stop(context.Background(), &proto.StopRequest{Signal: int32(syscall.SIGTERM), TimeoutNanos: int64(10 * time.Second)})
	must.NoError(t, err)
	must.True(t, resp.Exited)
	wg.Wait()
	must.Eq(t, int32(syscall.SIGTERM), h.tk.run.exitStatus().Signal)
	_, err = net.DialTimeout("tcp", h.tk.trigger().addr.String(), time.Second)
	must.Error(t, err, must.Sprint("a drained trigger still accepts connections"))
	must.StrContains(t, readFile(t, h.stdout), `"GET /sleep?ms=1000 HTTP/1.1" 200 6 `)

	spin := startHTTPTask(t, "wagi", nil)
	s = &server{tasks: map[string]*task{"": spin.tk}, quit: make(chan struct{})}
	wg.Go(func() { must.Eq(t, 503, spin.do(t, "GET", "/spin", "").status) })
	waitUntil(t, func() bool { return spin.tk.trigger().stats.inFlight.Load() == 1 }, "the request never ran")
	began := time.Now()
	resp, err = s.Stop(context.Background(), &proto.StopRequest{Signal: int32(syscall.SIGTERM), TimeoutNanos: int64(200 * time.Millisecond)})
	must.NoError(t, err)
	must.True(t, resp.Exited, must.Sprint("a spinning request held the task past its stop"))
	must.Less(t, 2*time.Second, time.Since(began))
	wg.Wait()
}

// TestHTTPTriggerGoHandler: a Go wasip1 handler serves through the
// trigger as the C one does.
func TestHTTPTriggerGoHandler(t *testing.T) {
	t.Parallel()
	h := startHTTPTask(t, "wagi-go", nil)
	r := h.do(t, "GET", "/x?y=1", "")
	must.Eq(t, 200, r.status)
	must.Eq(t, "hello from go GET /x y=1\n", r.body)
	r = h.do(t, "POST", "/echo", "a body")
	must.Eq(t, "a body", r.body)
}

// trigger is the task's HTTP trigger (http mode), or nil.
func (t *task) trigger() *httpTrigger {
	tr, _ := t.run.(*httpTrigger)
	return tr
}
