// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/cgi"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/memory"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/modcache"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

// BenchmarkInstancePerRequest is what the HTTP trigger pays per request
// for its fresh instance: instantiate the compiled program with a CGI
// environment and a body, run _start to the end, parse what it wrote, and
// close it. It reports the median and the 99th percentile, for a small C
// handler and for a Go one.
func BenchmarkInstancePerRequest(b *testing.B) {
	for _, module := range []string{"wagi", "wagi-go"} {
		b.Run(module, func(b *testing.B) {
			local := b.TempDir()
			testmodule.Install(b, module, local, "handler.wasm")
			files, err := openTaskFiles(&proto.StartRequest{Mounts: []*proto.Mount{{GuestPath: "/local", HostPath: local}}})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(files.close)
			body, digest, err := files.view.read("/local/handler.wasm", 0)
			if err != nil {
				b.Fatal(err)
			}
			engine, err := resolveEngine(executor.EngineAuto)
			if err != nil {
				b.Fatal(err)
			}
			spec := programSpec{Module: "/local/handler.wasm", Engine: engine, Entrypoint: "_start", View: files.view,
				Env: map[string]string{"NOMAD_TASK_NAME": "bench"}, MemoryLimitPages: 64 << 20 / executor.PageSize}
			cache := modcache.Cache{Dir: filepath.Join(os.TempDir(), "nomad-driver-wasm-host-test-cache"), Logger: hclog.NewNullLogger(), Validate: validateConfig()}
			p, err := loadProgram(context.Background(), hclog.NewNullLogger(), cache, spec, body, digest, nil)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(p.close)
			budget := &memory.Budget{Limit: 64 << 20}
			pool := &memory.Pool{Max: 8, Size: 64 << 20, Keep: p.minBytes, Image: p.comp.image}
			b.Cleanup(pool.Close)
			env := envOf(map[string]string{"REQUEST_METHOD": "GET", "PATH_INFO": "/hello", "QUERY_STRING": "x=1", "SERVER_PORT": "8080",
				"REMOTE_ADDR": "127.0.0.1", "HTTP_USER_AGENT": "bench", "CONTENT_LENGTH": "0", "GATEWAY_INTERFACE": "CGI/1.1"})
			var took []time.Duration
			for b.Loop() {
				began := time.Now()
				out := &cappedBuffer{max: maxResponseBytes}
				in, err := p.start(runOptions{argv0: "handler.wasm", streams: stdio{stdin: bytes.NewReader(nil), stdout: out, stderr: &cappedBuffer{max: maxRequestStderr}},
					env: env, budget: budget, pool: pool, quiet: true})
				if err != nil {
					b.Fatal(err)
				}
				<-in.ended
				resp, err := cgi.ParseResponse(out.Bytes())
				if err != nil || in.status.ExitCode != 0 || resp.Status != 200 {
					b.Fatalf("exit %v, %v: %q", in.status, err, out.String())
				}
				took = append(took, time.Since(began))
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Nanoseconds())/1e3, "p50-µs")
			b.ReportMetric(float64(took[len(took)*99/100].Nanoseconds())/1e3, "p99-µs")
		})
	}
}

// BenchmarkTriggerRequest is the HTTP trigger's own cost per request,
// without the network: a request to the small C handler through the
// trigger's handler (CGI environment, fresh instance, response parsing and
// writing), one at a time, with its allocations.
func BenchmarkTriggerRequest(b *testing.B) {
	h := startHTTPTask(b, "wagi", func(r *proto.StartRequest) {
		r.Http.Metrics, r.Http.AccessLog = nil, false
	})
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodGet, "/hello?x=1", nil)
		req.Header.Set("User-Agent", "bench")
		req.Header.Set("Accept", "*/*")
		rec := httptest.NewRecorder()
		h.tk.trigger().ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}

// BenchmarkOutboundRoundTrip is a guest's outbound connection: connect to
// an echo server on loopback, send a byte, shut down writing, receive the
// answer to its end, close (the connect test guest's loop, timed inside
// the guest with its monotonic clock), against a native Go loop doing the
// same in this process, in one run. The echo server is a process of its
// own (this test binary, see TestMain), as an upstream is: in this
// process, its goroutines would wait for the processor that the guest's
// thread holds while it blocks in poll(2), which timed Go's scheduler more
// than the guest (1.25–1.78× here at GOMAXPROCS 2, 0.82× at 4). It
// reports each one's median and 99th percentile, and the ratio of the
// medians (the target is 1.5 at most).
func BenchmarkOutboundRoundTrip(b *testing.B) {
	const n = 2000
	port := echoProcess(b)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	var guest, native [2]float64 // p50, p99 in µs
	for b.Loop() {
		r := runOutbound(b, "connect", loopbackRules(port), "loop", "127.0.0.1", strconv.Itoa(port), strconv.Itoa(n))
		if r.exit != 0 || !strings.HasPrefix(r.stdout, "p50-us ") {
			b.Fatalf("the guest's loop failed (exit %d): %s %s", r.exit, r.stdout, r.stderr)
		}
		if _, err := fmt.Sscanf(r.stdout, "p50-us %g p99-us %g", &guest[0], &guest[1]); err != nil {
			b.Fatalf("%q: %v", r.stdout, err)
		}
		took := make([]time.Duration, n)
		for i := range took {
			began := time.Now()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Write([]byte("x")); err != nil {
				b.Fatal(err)
			}
			if err := c.(*net.TCPConn).CloseWrite(); err != nil {
				b.Fatal(err)
			}
			if _, err := io.ReadAll(c); err != nil {
				b.Fatal(err)
			}
			_ = c.Close()
			took[i] = time.Since(began)
		}
		slices.Sort(took)
		native = [2]float64{float64(took[n/2].Nanoseconds()) / 1e3, float64(took[n*99/100].Nanoseconds()) / 1e3}
	}
	b.ReportMetric(guest[0], "p50-µs")
	b.ReportMetric(guest[1], "p99-µs")
	b.ReportMetric(native[0], "native-p50-µs")
	b.ReportMetric(native[1], "native-p99-µs")
	b.ReportMetric(guest[0]/native[0], "x-native")
}

// echoEnv makes this test binary an echo server (TestMain): it prints its
// port, then answers every connection with what it read until its end,
// until it is killed.
const echoEnv = "WASM_HOST_TEST_ECHO_SERVER"

// echoProcess starts the echo server as a process of its own, killed when
// the benchmark ends, and returns its port on 127.0.0.1.
func echoProcess(b *testing.B) int {
	b.Helper()
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), echoEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var port int
	if _, err := fmt.Fscanln(out, &port); err != nil {
		b.Fatalf("the echo server said no port: %v", err)
	}
	return port
}

// serveEcho is the echo server's process (see echoEnv).
func serveEcho() {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(l.Addr().(*net.TCPAddr).Port)
	for {
		c, err := l.Accept()
		if err != nil {
			os.Exit(1)
		}
		go func() {
			defer c.Close()
			b, _ := io.ReadAll(c)
			_, _ = c.Write(append([]byte("echo:"), b...))
		}()
	}
}

// BenchmarkLoadCached is the compile step of a cached start: a program
// made from a module whose compiled entry is in the node's cache (read and
// checked, wazero's decode and validation, the WASI host for its imports,
// the memory image), for the small C module and the Go one: into a
// runtime of its own (p50-ms), and into the blank runtime a spare made
// ahead, with the WASI host of every function in it (blank-p50-ms), as a
// start of a module the spare did not prepare is. Beside them, in the
// same run, its floor: wazero alone compiling the same module (as
// split) from a compilation cache of its own that holds it, which decodes
// and validates the module and reads its code, and which no API of
// wazero's lets a caller skip.
func BenchmarkLoadCached(b *testing.B) {
	for _, module := range []string{"probe", "hello-go"} {
		b.Run(module, func(b *testing.B) {
			body, err := os.ReadFile(testmodule.Path(b, module))
			if err != nil {
				b.Fatal(err)
			}
			digest := moduleDigest(body)
			engine, err := resolveEngine(executor.EngineAuto)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			spec := programSpec{Module: "/local/app.wasm", Engine: engine, Entrypoint: "_start", MemoryLimitPages: 64 << 20 / executor.PageSize}
			cache := modcache.Cache{Dir: b.TempDir(), Logger: hclog.NewNullLogger(), Validate: validateConfig()}
			load := func() *program {
				p, err := loadProgram(ctx, hclog.NewNullLogger(), cache, spec, bytes.Clone(body), digest, nil)
				if err != nil {
					b.Fatal(err)
				}
				return p
			}
			load().close() // into the cache
			src, _ := splitData(body)
			wazeroCache := b.TempDir()
			wazeroLoad := func() {
				c, err := wazero.NewCompilationCacheWithDir(wazeroCache)
				if err != nil {
					b.Fatal(err)
				}
				r := wazero.NewRuntimeWithConfig(ctx, runtimeConfig(engine, false).WithCompilationCache(c))
				if _, err := r.CompileModule(ctx, bytes.Clone(src)); err != nil {
					b.Fatal(err)
				}
				_ = r.Close(ctx)
				_ = c.Close(ctx)
			}
			wazeroLoad() // into wazero's cache
			var took, blank, floor []time.Duration
			for b.Loop() {
				began := time.Now()
				p := load()
				took = append(took, time.Since(began))
				if !p.cacheHit {
					b.Fatal("not a cache hit")
				}
				p.close()
				// As a spare's start does: into the runtime it made ahead.
				b.StopTimer()
				made, err := newBlank(ctx, engine)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				withBlank := cache
				withBlank.Blank = made
				began = time.Now()
				p, err = loadProgram(ctx, hclog.NewNullLogger(), withBlank, spec, bytes.Clone(body), digest, nil)
				if err != nil {
					b.Fatal(err)
				}
				blank = append(blank, time.Since(began))
				if !p.comp.FromBlank {
					b.Fatal("not loaded into the blank")
				}
				p.close()
				began = time.Now()
				wazeroLoad()
				floor = append(floor, time.Since(began))
			}
			for _, d := range [][]time.Duration{took, blank, floor} {
				slices.Sort(d)
			}
			b.ReportMetric(float64(took[len(took)/2].Nanoseconds())/1e6, "p50-ms")
			b.ReportMetric(float64(blank[len(blank)/2].Nanoseconds())/1e6, "blank-p50-ms")
			b.ReportMetric(float64(floor[len(floor)/2].Nanoseconds())/1e6, "wazero-p50-ms")
		})
	}
}
