// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"fmt"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"
)

// latencyBuckets are the upper bounds, in seconds, of the request latency
// histogram.
var latencyBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// httpMetrics counts an http-mode task's requests. Every update is an
// atomic add: nothing per request waits on a lock or a write.
type httpMetrics struct {
	// requests by status class: index 1 is 1xx … 5 is 5xx.
	requests [6]atomic.Uint64
	// buckets[i] counts requests that took at most latencyBuckets[i]
	// (non-cumulative here; cumulated when served).
	buckets  []atomic.Uint64
	count    atomic.Uint64
	sumNanos atomic.Uint64
	inFlight atomic.Int64
	failures atomic.Uint64
}

func newHTTPMetrics() *httpMetrics {
	return &httpMetrics{buckets: make([]atomic.Uint64, len(latencyBuckets))}
}

func (m *httpMetrics) observe(res result, took time.Duration) {
	if c := res.status / 100; c >= 1 && c <= 5 {
		m.requests[c].Add(1)
	}
	if res.failed {
		m.failures.Add(1)
	}
	m.count.Add(1)
	m.sumNanos.Add(uint64(took.Nanoseconds()))
	s := took.Seconds()
	for i, le := range latencyBuckets {
		if s <= le {
			m.buckets[i].Add(1)
			break
		}
	}
}

// serveMetrics writes the metrics in Prometheus' text exposition format.
func (t *httpTrigger) serveMetrics(w http.ResponseWriter, _ *http.Request) {
	m := t.stats
	w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
	fmt.Fprintln(w, "# HELP wasm_http_requests_total Requests answered, by status class.")
	fmt.Fprintln(w, "# TYPE wasm_http_requests_total counter")
	for c := 1; c <= 5; c++ {
		fmt.Fprintf(w, "wasm_http_requests_total{code=\"%dxx\"} %d\n", c, m.requests[c].Load())
	}
	fmt.Fprintln(w, "# HELP wasm_http_request_duration_seconds Time from a request's arrival to its response.")
	fmt.Fprintln(w, "# TYPE wasm_http_request_duration_seconds histogram")
	var cum uint64
	for i, le := range latencyBuckets {
		cum += m.buckets[i].Load()
		fmt.Fprintf(w, "wasm_http_request_duration_seconds_bucket{le=\"%s\"} %d\n", strconv.FormatFloat(le, 'g', -1, 64), cum)
	}
	count := m.count.Load()
	fmt.Fprintf(w, "wasm_http_request_duration_seconds_bucket{le=\"+Inf\"} %d\n", count)
	fmt.Fprintf(w, "wasm_http_request_duration_seconds_sum %g\n", float64(m.sumNanos.Load())/1e9)
	fmt.Fprintf(w, "wasm_http_request_duration_seconds_count %d\n", count)
	fmt.Fprintln(w, "# HELP wasm_http_instances_in_flight Instances running a request now.")
	fmt.Fprintln(w, "# TYPE wasm_http_instances_in_flight gauge")
	fmt.Fprintf(w, "wasm_http_instances_in_flight %d\n", m.inFlight.Load())
	fmt.Fprintln(w, "# HELP wasm_http_instance_failures_total Requests whose instance trapped, exited non-zero, timed out or found no memory.")
	fmt.Fprintln(w, "# TYPE wasm_http_instance_failures_total counter")
	fmt.Fprintf(w, "wasm_http_instance_failures_total %d\n", m.failures.Load())
	fmt.Fprintln(w, "# HELP wasm_linear_memory_bytes Linear memory of the instances in flight.")
	fmt.Fprintln(w, "# TYPE wasm_linear_memory_bytes gauge")
	fmt.Fprintf(w, "wasm_linear_memory_bytes %d\n", t.budget.Used())
	opened, refused := t.prog.spec.Network.counts()
	fmt.Fprintln(w, "# HELP wasm_outbound_connections_total Outbound connections the guest's instances made (opened) or that its outbound rules refused (refused).")
	fmt.Fprintln(w, "# TYPE wasm_outbound_connections_total counter")
	fmt.Fprintf(w, "wasm_outbound_connections_total{result=\"opened\"} %d\n", opened)
	fmt.Fprintf(w, "wasm_outbound_connections_total{result=\"refused\"} %d\n", refused)
}
