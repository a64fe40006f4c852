// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/cgi"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/memory"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// queueWait is how long a request waits for an instance slot when
// max_concurrency instances are running, before it gets 503.
const queueWait = time.Second

// maxRequestStderr bounds what one request's instance writes on its stderr
// that reaches the task's stderr log.
const maxRequestStderr = 64 << 10

// maxResponseBytes bounds a whole response (headers and body): it is
// buffered, so that a module that fails half-way gets a clean 500.
const maxResponseBytes = 16 << 20

// serverSoftware is the CGI environment's SERVER_SOFTWARE.
var serverSoftware = "nomad-driver-wasm/" + executor.Version

// httpGCPercent is the GOGC of an executor of its own in http mode (see
// serveHTTP).
const httpGCPercent = 400

// maxPooledMemories bounds the linear memories the trigger keeps for the
// next requests (see memory.Pool): as many as instances may run at once, up to
// this. Each keeps its module's initial memory resident (at most
// maxPooledResident): what nearly every instance touches.
const (
	maxPooledMemories = 64
	maxPooledResident = 1 << 20
)

// killWriteGrace is how long a request's response may still take to be
// sent once the drain has run out of time (its 503, usually): within the
// second the executor's Stop waits for the drain after that.
const killWriteGrace = 500 * time.Millisecond

// accessLogFlush is how often the buffered access log is written out.
const accessLogFlush = time.Second

// triggerHost is what the HTTP trigger takes from the executor it runs in.
type triggerHost struct {
	// shared: the node's shared executor, where the trigger is one task
	// among many. It then leaves the process's collector as it is (its
	// setting is the process's), and measures the CPU time of its
	// instances (the process's is not the task's).
	shared bool
	// spawn starts a goroutine that the executor waits for before it
	// exits (server.wg.Go): the drain, which records the task's exit
	// status, and the access log's flush, so that neither is lost to the
	// process's exit.
	spawn func(func())
}

// httpTrigger serves HTTP for an http-mode task and runs a fresh instance
// of its program per request (CGI, as WAGI does). Nothing of one request's
// instance survives into the next.
type httpTrigger struct {
	prog   *program
	cfg    *proto.HTTPTrigger
	logger hclog.Logger
	addr   net.Addr // where it serves
	// metricsAddr is where it serves metrics, or nil.
	metricsAddr net.Addr
	port        string // the port the guest sees as SERVER_PORT
	args        []string

	srv, metricsSrv *http.Server
	// slots holds a token per running instance (max_concurrency).
	slots  chan struct{}
	budget *memory.Budget
	pool   *memory.Pool
	// stderr is the task's stderr log; each request's stderr is written
	// to it in one piece when the request ends.
	stderr io.WriteCloser
	access *accessLog
	stats  *httpMetrics

	// killCtx ends every instance in flight (cancelRequests): when a
	// drain runs out of time, or the executor closes.
	killCtx        context.Context
	cancelRequests context.CancelFunc
	// ended is closed once serving has ended (the drain), and status then
	// says how the task ended.
	ended  chan struct{}
	status *proto.ExitStatus
	// wg holds the servers; requests holds the handlers in flight.
	wg       sync.WaitGroup
	requests sync.WaitGroup
	// admitMu orders the admission of a request (requests.Add) with the
	// drain: once draining is set no request is admitted, so that the
	// drain's requests.Wait never runs beside an Add from zero, and no
	// request runs after the drain has closed what requests use.
	admitMu  sync.Mutex
	draining bool

	// cpu is the CPU time of the trigger's instances, measured in the
	// shared executor only (host.shared), or nil.
	cpu *cpuMeter
	// gcPercent is the GOGC to restore when the trigger ends, where
	// setGC says it set its own (an executor of its own).
	gcPercent int
	setGC     bool
}

// serveHTTP binds the trigger's listeners (in the allocation's network
// namespace when there is one) and serves until the program is stopped.
// The trigger is the task's runner: it is done when it has drained, and
// its exit status says how the task ended.
//
// With runAs, the executor becomes that user once the ports are bound,
// before any request is served.
//
// The trigger's goroutines are started with host.spawn: the executor waits
// for them, so that the task's exit status and access log are written
// before it exits.
func (p *program) serveHTTP(host triggerHost, cfg *proto.HTTPTrigger, args []string, netns string, streams stdio, stateDir *os.Root, runAs *proto.RunAs) (*httpTrigger, error) {
	// The trigger owns streams from here, as an instance owns its own:
	// on a failure they are closed here, never by the caller.
	fail := func(err error) (*httpTrigger, error) {
		_ = streams.stdout.Close()
		_ = streams.stderr.Close()
		return nil, err
	}
	if cfg.Listener == nil {
		return fail(executor.JobErrorf("http mode needs a port to serve on"))
	}
	t := &httpTrigger{prog: p, cfg: cfg, args: args, logger: p.logger.Named("http"),
		slots: make(chan struct{}, max(cfg.MaxConcurrency, 1)), budget: &memory.Budget{Limit: uint64(p.limit) * executor.PageSize},
		stderr: streams.stderr, stats: newHTTPMetrics(),
		pool: &memory.Pool{Max: int(min(max(cfg.MaxConcurrency, 1), maxPooledMemories)), Size: int(uint64(p.limit) * executor.PageSize),
			Keep: min(p.minBytes, maxPooledResident), Image: p.comp.image}}
	var ln, mln net.Listener
	err := inNetNS(netns, func() error {
		var err error
		if ln, err = net.Listen("tcp", executor.ListenerAddress(cfg.Listener)); err != nil {
			return err
		}
		if cfg.Metrics != nil {
			if mln, err = net.Listen("tcp", executor.ListenerAddress(cfg.Metrics)); err != nil {
				_ = ln.Close()
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fail(executor.NodeErrorf("http: cannot bind the task's port: %v", err))
	}
	if runAs != nil {
		if err := becomeUser(runAs); err != nil {
			_ = ln.Close()
			if mln != nil {
				_ = mln.Close()
			}
			return fail(executor.NodeErrorf("cannot run the task as user %s: %v", runAs.Name, err))
		}
	}
	t.addr = ln.Addr()
	_, t.port, _ = net.SplitHostPort(t.addr.String())
	if mln != nil {
		t.metricsAddr = mln.Addr()
	}
	if host.shared {
		t.cpu = newCPUMeter()
	}
	if cfg.AccessLog {
		t.access = newAccessLog(streams.stdout, host.spawn)
	} else {
		_ = streams.stdout.Close()
	}
	t.killCtx, t.cancelRequests = context.WithCancel(context.Background())
	t.ended = make(chan struct{})
	t.srv = &http.Server{Handler: t, ReadHeaderTimeout: 10 * time.Second, ErrorLog: t.logger.StandardLogger(&hclog.StandardLoggerOptions{ForceLevel: hclog.Debug})}
	t.wg.Go(func() {
		if err := t.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.logger.Error("serving HTTP failed", "error", err)
		}
	})
	if mln != nil {
		t.metricsSrv = &http.Server{Handler: http.HandlerFunc(t.serveMetrics), ReadHeaderTimeout: 10 * time.Second}
		t.wg.Go(func() { _ = t.metricsSrv.Serve(mln) })
	}
	// Each request allocates about 24 KiB (its instance's call stack and
	// configuration, its buffers) and the heap that survives is small, so
	// at the default GOGC the collector ran tens of times a second: 225 µs
	// of CPU per request at GOGC=100, 159 µs at 400; 800 saved 5% more for
	// 18 MB more RSS (BenchmarkHTTPTrigger, BenchmarkHTTPSoak). The
	// setting is the process's: the shared executor's tasks keep the
	// default, and an executor of its own has it back once the trigger
	// has ended.
	if !host.shared {
		t.gcPercent, t.setGC = debug.SetGCPercent(httpGCPercent), true
	}
	host.spawn(func() { t.drainWhenStopped(stateDir) })
	t.logger.Info("serving HTTP", "address", ln.Addr().String(), "max_concurrency", cap(t.slots), "timeout", time.Duration(cfg.TimeoutNanos), "metrics", cfg.Metrics != nil)
	return t, nil
}

// drainWhenStopped waits for the program's stop, then stops taking
// connections and lets the requests in flight finish; the executor's Stop
// ends them (kill) when the task's kill_timeout has passed.
func (t *httpTrigger) drainWhenStopped(stateDir *os.Root) {
	<-t.prog.ctx.Done()
	t.logger.Info("draining: new connections are refused, requests in flight finish")
	_ = t.srv.Shutdown(t.killCtx)
	// Shutdown returns early when killed: the handlers still running end
	// their requests (503) before the connections are closed. A request
	// that comes after this is refused (admit).
	t.admitMu.Lock()
	t.draining = true
	t.admitMu.Unlock()
	t.requests.Wait()
	_ = t.srv.Close()
	if t.metricsSrv != nil {
		_ = t.metricsSrv.Close()
	}
	t.wg.Wait()
	if t.access != nil {
		t.access.close()
	}
	t.pool.Close()
	if t.setGC {
		debug.SetGCPercent(t.gcPercent)
	}
	sig := t.prog.stoppedBy()
	status := &proto.ExitStatus{ExitedAtUnixNano: time.Now().UnixNano(), Signal: sig, ExitCode: 128 + sig}
	_ = t.stderr.Close()
	if err := executor.WriteExitStatus(stateDir, status); err != nil {
		t.logger.Error("cannot record exit status", "error", err)
	}
	t.status = status
	close(t.ended)
}

// result is how one request ended, for the metrics and the access log.
type result struct {
	status int
	bytes  int
	failed bool // the instance failed (trap, exit code, timeout, no memory)
}

// admit counts a request in flight (requests), unless the drain has begun
// waiting for them.
func (t *httpTrigger) admit() bool {
	t.admitMu.Lock()
	defer t.admitMu.Unlock()
	if t.draining {
		return false
	}
	t.requests.Add(1)
	return true
}

// sampleCPU is the CPU time the trigger's instances have used, in the
// shared executor (see cpuMeter); elsewhere the process's, which is the
// task's.
func (t *httpTrigger) sampleCPU() cpuSample {
	if t.cpu == nil {
		return sampleCPU()
	}
	return t.cpu.sample()
}

func (t *httpTrigger) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !t.admit() {
		// Only a drain that ran out of time lets a request reach here: the
		// task is ending, and its logs and metrics may be closed already.
		w.Header().Set("Connection", "close")
		writeError(w, http.StatusServiceUnavailable)
		return
	}
	defer t.requests.Done()
	// Once the drain has run out of time, the client cannot hold the
	// handler, and with it the drain and the executor's exit: a body still
	// coming is cut at once, and a response it does not read has
	// killWriteGrace to go.
	stopDeadlines := context.AfterFunc(t.killCtx, func() {
		rc := http.NewResponseController(w)
		now := time.Now()
		_ = rc.SetReadDeadline(now)
		_ = rc.SetWriteDeadline(now.Add(killWriteGrace))
	})
	defer stopDeadlines()
	began := time.Now()
	res := t.serve(w, r)
	took := time.Since(began)
	t.stats.observe(res, took)
	if t.access != nil {
		t.access.log(r, res, took, began)
	}
	// Sent now, not after this returns: a drain that runs out of time
	// closes the connections once the handlers have returned. Counted
	// first, so that a client that has its response finds it counted.
	_ = http.NewResponseController(w).Flush()
}

// serve runs one instance for r and writes its response.
func (t *httpTrigger) serve(w http.ResponseWriter, r *http.Request) result {
	if !t.acquire(r.Context()) {
		return t.refuse(w, r, http.StatusServiceUnavailable, "all %d instances are busy", cap(t.slots))
	}
	defer func() { <-t.slots }()
	t.stats.inFlight.Add(1)
	defer t.stats.inFlight.Add(-1)

	var body []byte
	if r.Body != nil && r.Body != http.NoBody {
		var err error
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, max(t.cfg.MaxBodyBytes, 0)))
		var tooBig *http.MaxBytesError
		switch {
		case errors.As(err, &tooBig):
			return t.refuse(w, r, http.StatusRequestEntityTooLarge, "the body is larger than max_body_bytes = %d", t.cfg.MaxBodyBytes)
		case err != nil:
			return t.refuse(w, r, http.StatusBadRequest, "reading the body: %v", err)
		}
	}

	// The instance ends with the request: when the client goes away, the
	// timeout passes, or the drain runs out of time.
	out := &cappedBuffer{max: maxResponseBytes}
	errOut := &cappedBuffer{max: maxRequestStderr}
	var o outcome
	var err error
	// Its instantiation and its run are the task's CPU time (cpu, in the
	// shared executor).
	t.cpu.run(func() {
		var in *instance
		in, err = t.prog.instantiate(runOptions{
			argv0: path.Base(t.prog.spec.Module), args: t.args, ctx: r.Context(), timeout: time.Duration(t.cfg.TimeoutNanos),
			streams: stdio{stdin: bytes.NewReader(body), stdout: out, stderr: errOut},
			env:     cgi.Env(r, len(body), t.port, serverSoftware), budget: t.budget, pool: t.pool, quiet: true,
		})
		if err == nil {
			stopKill := context.AfterFunc(t.killCtx, in.interrupt)
			o = in.run()
			stopKill()
		}
	})
	if errors.Is(err, errNoMemory) {
		return t.fail(w, r, http.StatusServiceUnavailable, errOut, "no memory for another instance: %v (resources.memory bounds the instances in flight together)", err)
	}
	if err != nil {
		return t.fail(w, r, http.StatusInternalServerError, errOut, "%v", err)
	}
	if t.killCtx.Err() == nil && r.Context().Err() != nil {
		t.writeStderr(r, errOut, "the client went away; the instance was stopped")
		return result{status: 499, failed: true}
	}
	st := o.status
	switch {
	case o.timedOut:
		return t.fail(w, r, http.StatusGatewayTimeout, errOut, "no response within timeout = %s; the instance was stopped", time.Duration(t.cfg.TimeoutNanos))
	case t.killCtx.Err() != nil:
		return t.fail(w, r, http.StatusServiceUnavailable, errOut, "the task stopped before the instance finished")
	case o.memoryDenied && (st.ExitCode != 0 || st.Error != ""):
		return t.fail(w, r, http.StatusServiceUnavailable, errOut, "the instance could not grow its memory: the task's memory is taken by the instances in flight (exit code %d%s)", st.ExitCode, errSuffix(st))
	case st.Error != "":
		return t.fail(w, r, http.StatusInternalServerError, errOut, "%s", st.Error)
	case st.ExitCode != 0:
		return t.fail(w, r, http.StatusInternalServerError, errOut, "the module exited with code %d", st.ExitCode)
	case out.overflow:
		return t.fail(w, r, http.StatusBadGateway, errOut, "the response is larger than %d MiB", maxResponseBytes>>20)
	}
	resp, err := cgi.ParseResponse(out.Bytes())
	if err != nil {
		return t.fail(w, r, http.StatusBadGateway, errOut, "%v", err)
	}
	t.writeStderr(r, errOut, "")
	h := w.Header()
	for k, v := range resp.Header {
		h[k] = v
	}
	h.Set("Content-Length", strconv.Itoa(len(resp.Body)))
	w.WriteHeader(resp.Status)
	n, _ := w.Write(resp.Body)
	return result{status: resp.Status, bytes: n}
}

func errSuffix(st *proto.ExitStatus) string {
	if st.Error == "" {
		return ""
	}
	return ", " + st.Error
}

// acquire takes an instance slot, waiting up to queueWait for one.
func (t *httpTrigger) acquire(ctx context.Context) bool {
	select {
	case t.slots <- struct{}{}:
		return true
	default:
	}
	timer := time.NewTimer(queueWait)
	defer timer.Stop()
	select {
	case t.slots <- struct{}{}:
		return true
	case <-timer.C:
	case <-ctx.Done():
	}
	return false
}

// refuse answers a request that no instance ran for.
func (t *httpTrigger) refuse(w http.ResponseWriter, r *http.Request, status int, format string, args ...any) result {
	msg := fmt.Sprintf(format, args...)
	t.writeStderr(r, nil, fmt.Sprintf("%d: %s", status, msg))
	return result{status: status, bytes: writeError(w, status)}
}

// fail answers a request whose instance failed; the cause and the
// instance's stderr go to the task's stderr log.
func (t *httpTrigger) fail(w http.ResponseWriter, r *http.Request, status int, errOut *cappedBuffer, format string, args ...any) result {
	t.writeStderr(r, errOut, fmt.Sprintf("%d: %s", status, fmt.Sprintf(format, args...)))
	return result{status: status, bytes: writeError(w, status), failed: true}
}

// writeError answers with status and its text; the cause is in the task's
// stderr log, not in the response.
func writeError(w http.ResponseWriter, status int) int {
	body := http.StatusText(status) + "\n"
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	n, _ := io.WriteString(w, body)
	return n
}

// writeStderr writes what a request's instance wrote on its stderr, and a
// line about how the request failed, to the task's stderr log in one
// write, so that requests running side by side do not interleave.
func (t *httpTrigger) writeStderr(r *http.Request, errOut *cappedBuffer, cause string) {
	var b bytes.Buffer
	if errOut != nil {
		b.Write(errOut.Bytes())
		if errOut.overflow {
			fmt.Fprintf(&b, "[stderr of this request truncated at %d KiB]\n", maxRequestStderr>>10)
		}
	}
	if cause != "" {
		fmt.Fprintf(&b, "wasm http: %s %s: %s\n", r.Method, r.URL.RequestURI(), cause)
	}
	if b.Len() > 0 {
		_, _ = t.stderr.Write(b.Bytes())
	}
}

// cappedBuffer keeps the first max bytes written to it and notes whether
// more came. Writes beyond it succeed, so the guest is not failed by its
// own output.
type cappedBuffer struct {
	bytes.Buffer
	max      int
	overflow bool
}

func (b *cappedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); len(p) > room {
		b.overflow = true
		b.Buffer.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return b.Buffer.Write(p)
}

func (*cappedBuffer) Close() error { return nil }

// accessLog writes a line per request to the task's stdout log through a
// buffer, flushed every accessLogFlush and when full: never a write of
// its own per request.
type accessLog struct {
	mu   sync.Mutex
	w    *bufio.Writer
	out  io.WriteCloser
	quit chan struct{}
	done chan struct{}
}

// newAccessLog starts the log's flush with spawn; close ends it.
func newAccessLog(out io.WriteCloser, spawn func(func())) *accessLog {
	a := &accessLog{w: bufio.NewWriterSize(out, 64<<10), out: out, quit: make(chan struct{}), done: make(chan struct{})}
	spawn(func() { a.flushEvery(accessLogFlush) })
	return a
}

func (a *accessLog) log(r *http.Request, res result, took time.Duration, at time.Time) {
	remote, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		remote = r.RemoteAddr
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	fmt.Fprintf(a.w, "%s - - [%s] %q %d %d %.3fms\n", remote, at.UTC().Format("02/Jan/2006:15:04:05 -0700"),
		r.Method+" "+r.URL.RequestURI()+" "+r.Proto, res.status, res.bytes, float64(took.Microseconds())/1000)
}

func (a *accessLog) flushEvery(d time.Duration) {
	defer close(a.done)
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			a.mu.Lock()
			_ = a.w.Flush()
			a.mu.Unlock()
		case <-a.quit:
			return
		}
	}
}

func (a *accessLog) close() {
	close(a.quit)
	<-a.done
	a.mu.Lock()
	_ = a.w.Flush()
	a.mu.Unlock()
	_ = a.out.Close()
}
