// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

// load is what hey measured.
type load struct {
	rps       float64
	p50, p99  time.Duration
	responses map[int]int
	errors    int
}

var (
	heyRPS    = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	heyLat    = regexp.MustCompile(`(\d+)% in ([\d.]+) secs`)
	heyStatus = regexp.MustCompile(`\[(\d+)\]\s+(\d+) responses`)
)

// hey loads url with c concurrent clients for d, with hey (make deps
// installs it).
func hey(b *testing.B, url string, c int, d time.Duration) load {
	b.Helper()
	bin, err := exec.LookPath("hey")
	if err != nil {
		b.Fatal("the HTTP benchmarks need hey (make deps installs it)")
	}
	out, err := exec.Command(bin, "-z", d.String(), "-c", strconv.Itoa(c), "-disable-compression", url).CombinedOutput()
	if err != nil {
		b.Fatalf("hey: %v\n%s", err, out)
	}
	s := string(out)
	l := load{responses: map[int]int{}}
	m := heyRPS.FindStringSubmatch(s)
	if m == nil {
		b.Fatalf("no Requests/sec in hey's output:\n%s", s)
	}
	l.rps, _ = strconv.ParseFloat(m[1], 64)
	for _, m := range heyLat.FindAllStringSubmatch(s, -1) {
		secs, _ := strconv.ParseFloat(m[2], 64)
		switch m[1] {
		case "50":
			l.p50 = time.Duration(secs * float64(time.Second))
		case "99":
			l.p99 = time.Duration(secs * float64(time.Second))
		}
	}
	for _, m := range heyStatus.FindAllStringSubmatch(s, -1) {
		code, _ := strconv.Atoi(m[1])
		n, _ := strconv.Atoi(m[2])
		l.responses[code] += n
	}
	if i := strings.Index(s, "Error distribution:"); i >= 0 {
		for _, m := range regexp.MustCompile(`\[(\d+)\]`).FindAllStringSubmatch(s[i:], -1) {
			n, _ := strconv.Atoi(m[1])
			l.errors += n
		}
	}
	return l
}

// requests counts the requests hey made.
func (l load) requests() int {
	n := l.errors
	for _, c := range l.responses {
		n += c
	}
	return n
}

// failures counts what was not a 200.
func (l load) failures() int {
	n := l.errors
	for code, c := range l.responses {
		if code != 200 {
			n += c
		}
	}
	return n
}

// serveLocal serves h on a loopback port until the benchmark ends.
func serveLocal(b *testing.B, h http.Handler) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	b.Cleanup(func() { _ = srv.Close() })
	return "http://" + l.Addr().String()
}

// startHTTPBenchTask starts module in http mode through the driver, with a
// real executor process, and returns its URL and the executor's PID.
func startHTTPBenchTask(b *testing.B, d *Driver, module string, concurrency int, adjust ...func(*drivers.TaskConfig, *TaskConfig)) (string, int) {
	b.Helper()
	cfg := benchTask(b, module, nil)
	cfg.Resources.NomadResources.Memory.MemoryMB = 256
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	cfg.Resources.Ports = &structs.AllocatedPorts{{Label: "http", Value: port, HostIP: "127.0.0.1"}}
	tc := TaskConfig{Module: "local/app.wasm", HTTP: HTTPConfig{Port: "http", MaxConcurrency: concurrency, Timeout: "10s", MaxBodyBytes: 1 << 20}}
	for _, f := range adjust {
		f(cfg, &tc)
	}
	if err := cfg.EncodeConcreteDriverConfig(&tc); err != nil {
		b.Fatal(err)
	}
	handle, _, err := d.StartTask(cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = d.StopTask(cfg.ID, 5*time.Second, "SIGTERM")
		_ = d.DestroyTask(cfg.ID, true)
	})
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(url + "/hello")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("the http task never answered: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var state TaskState
	if err := handle.GetDriverState(&state); err != nil {
		b.Fatal(err)
	}
	return url, state.ExecutorPid
}

// wazeroCLI is the wazero command (make bench installs it into
// .tools/bin): the process-per-request baseline.
func wazeroCLI(b *testing.B) string {
	b.Helper()
	if p, err := filepath.Abs("../.tools/bin/wazero"); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("wazero")
	if err != nil {
		b.Fatal("the HTTP benchmark needs the wazero CLI (make bench installs it into .tools/bin)")
	}
	return p
}

// BenchmarkHTTPTrigger: requests per second and latency of a small C
// handler served by the HTTP trigger (a fresh instance per request, in a
// real executor process), against a native Go net/http handler doing the
// same work and against a process per request (the wazero CLI run as a
// CGI program), all under hey in the same run; and the CPU time the
// trigger and the native handler spend per request.
func BenchmarkHTTPTrigger(b *testing.B) {
	const concurrency = 32
	span := 5 * time.Second
	wazero := wazeroCLI(b)
	d := benchDriver(b, b.TempDir(), 0)
	url, executorPID := startHTTPBenchTask(b, d, "wagi", 64)

	native := serveLocal(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "hello %s %s %s\n", r.Method, r.URL.Path, r.URL.RawQuery)
	}))
	cacheDir := b.TempDir()
	perProcess := serveLocal(b, &cgi.Handler{Path: wazero, Args: []string{"run", "-cachedir", cacheDir, "-env-inherit", testmodule.Path(b, "wagi")}})
	for _, u := range []string{native, perProcess} { // warm: the CLI's cache
		if resp, err := http.Get(u + "/hello?x=1"); err != nil || resp.StatusCode != 200 {
			b.Fatalf("baseline %s does not answer: %v", u, err)
		}
	}

	// The CPU time each server spends per request: the executor's for the
	// trigger, this process's (which serves the native handler and waits
	// for hey) for the native handler. Unlike requests per second, it does
	// not depend on how much of the machine hey leaves the server.
	var wasm, nat, cgiLoad load
	var wasmCPU, natCPU time.Duration
	for b.Loop() {
		cpu := procCPU(b, executorPID)
		wasm = hey(b, url+"/hello?x=1", concurrency, span)
		wasmCPU = procCPU(b, executorPID) - cpu
		cpu = procCPU(b, os.Getpid())
		nat = hey(b, native+"/hello?x=1", concurrency, span)
		natCPU = procCPU(b, os.Getpid()) - cpu
		cgiLoad = hey(b, perProcess+"/hello?x=1", concurrency, span)
	}
	for name, l := range map[string]load{"trigger": wasm, "native": nat, "process-per-request": cgiLoad} {
		if l.failures() > 0 {
			b.Errorf("%s: %d requests failed: %v", name, l.failures(), l.responses)
		}
	}
	b.ReportMetric(wasm.rps, "req/s")
	b.ReportMetric(float64(wasm.p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(wasm.p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(nat.rps, "native-req/s")
	b.ReportMetric(cgiLoad.rps, "per-process-req/s")
	b.ReportMetric(wasm.rps/nat.rps, "x-native")
	b.ReportMetric(wasm.rps/cgiLoad.rps, "x-per-process")
	wasmPer, natPer := perRequest(wasmCPU, wasm), perRequest(natCPU, nat)
	b.ReportMetric(wasmPer, "cpu-µs/req")
	b.ReportMetric(natPer, "native-cpu-µs/req")
	b.ReportMetric(natPer/wasmPer, "x-native-cpu")
}

// BenchmarkHTTPTriggerUpstream: an HTTP handler that makes one upstream
// call per request (the outbound example's visits: a new connection to a
// counter, an HTTP/1.0 request, the answer relayed), under hey at
// concurrency 32, against a native Go handler making the same call (a new
// connection each time), in one run: requests per second and CPU per
// request (the executor's for the trigger, this process's for the native
// handler; the counter is a process of its own, the examples' sidecar).
func BenchmarkHTTPTriggerUpstream(b *testing.B) {
	const concurrency = 32
	span := 5 * time.Second
	counter := startCounter(b)
	d := benchDriver(b, b.TempDir(), 0)
	d.config.Outbound.Allow = []string{"tcp://127.0.0.0/8:*"}
	if err := d.config.Validate(); err != nil {
		b.Fatal(err)
	}
	url, executorPID := startHTTPBenchTask(b, d, "visits", 64, func(cfg *drivers.TaskConfig, tc *TaskConfig) {
		cfg.Env["UPSTREAM"] = counter
		tc.Outbound = []string{"tcp://" + counter}
	})
	upstream := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}
	native := serveLocal(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		resp, err := upstream.Get("http://" + counter + "/visit")
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		body, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintf(w, "Hello from Go! The counter at %s says: %s", counter, body)
	}))
	var wasm, nat load
	var wasmCPU, natCPU time.Duration
	for b.Loop() {
		cpu := procCPU(b, executorPID)
		wasm = hey(b, url+"/", concurrency, span)
		wasmCPU = procCPU(b, executorPID) - cpu
		cpu = procCPU(b, os.Getpid())
		nat = hey(b, native+"/", concurrency, span)
		natCPU = procCPU(b, os.Getpid()) - cpu
	}
	for name, l := range map[string]load{"trigger": wasm, "native": nat} {
		if l.failures() > 0 {
			b.Errorf("%s: %d requests failed: %v", name, l.failures(), l.responses)
		}
	}
	b.ReportMetric(wasm.rps, "req/s")
	b.ReportMetric(float64(wasm.p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(nat.rps, "native-req/s")
	b.ReportMetric(wasm.rps/nat.rps, "x-native")
	wasmPer, natPer := perRequest(wasmCPU, wasm), perRequest(natCPU, nat)
	b.ReportMetric(wasmPer, "cpu-µs/req")
	b.ReportMetric(natPer, "native-cpu-µs/req")
	b.ReportMetric(natPer/wasmPer, "x-native-cpu")
}

// startCounter runs the examples' sidecar as a counter on loopback (make
// examples builds it) and returns its address once it answers.
func startCounter(b *testing.B) string {
	b.Helper()
	bin, err := filepath.Abs("../example-jobs/build/sidecar")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		b.Fatalf("the upstream benchmark needs the examples' sidecar (make examples builds it): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	_, port, _ := net.SplitHostPort(addr)
	cmd := exec.Command(bin, "count", port)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/health")
		if err == nil {
			_ = resp.Body.Close()
			return addr
		}
		if time.Now().After(deadline) {
			b.Fatalf("the counter never answered: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// perRequest is cpu per request of l, in microseconds.
func perRequest(cpu time.Duration, l load) float64 {
	return float64(cpu.Microseconds()) / float64(max(l.requests(), 1))
}

// BenchmarkHTTPSoak: the HTTP trigger under hey at concurrency 64 for 60 s
// (WASM_BENCH_SOAK sets another span): failed requests, and the executor's
// resident memory at the start of the load, at its highest, and at the end.
func BenchmarkHTTPSoak(b *testing.B) {
	span := benchSpan(b, "WASM_BENCH_SOAK", 60*time.Second)
	d := benchDriver(b, b.TempDir(), 0)
	url, pid := startHTTPBenchTask(b, d, "wagi", 64)
	var l load
	var rss []float64
	for b.Loop() {
		done := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			tick := time.NewTicker(time.Second)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
					rss = append(rss, float64(memory(b, pid, "VmRSS:"))/(1<<20))
				}
			}
		}()
		l = hey(b, url+"/hello?x=1", 64, span)
		close(done)
		<-sampled
	}
	if l.failures() > 0 {
		b.Errorf("%d requests failed: %v", l.failures(), l.responses)
	}
	if len(rss) < 2 {
		b.Fatal("too few memory samples")
	}
	peak := 0.0
	for _, r := range rss {
		peak = max(peak, r)
	}
	b.ReportMetric(l.rps, "req/s")
	b.ReportMetric(float64(l.failures()), "failed")
	b.ReportMetric(rss[0], "rss-start-MB")
	b.ReportMetric(peak, "rss-max-MB")
	b.ReportMetric(rss[len(rss)-1], "rss-end-MB")
	b.ReportMetric(float64(l.p99.Microseconds())/1000, "p99-ms")
}
