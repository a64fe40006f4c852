// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
)

// BenchmarkLogFlood: a guest printing as fast as it can for 30 s
// (WASM_BENCH_FLOOD sets another span) into its executor-written logs,
// rotated at 10 files of 10 MB (Nomad's defaults). It reports the rate
// written (MB/s, counting rotated-away files), the executor's RSS at the
// start, its highest and at the end, and the log directory's largest size
// (log-dir-max-MB: bounded by 10 × 10 MB).
func BenchmarkLogFlood(b *testing.B) {
	span := benchSpan(b, "WASM_BENCH_FLOOD", 30*time.Second)
	d := benchDriver(b, b.TempDir(), 0)
	var rss, dirMB []float64
	var written float64
	for b.Loop() {
		cfg := benchTask(b, "probe", []string{"flood"})
		handle, _, err := d.StartTask(cfg)
		if err != nil {
			b.Fatal(err)
		}
		pid := executorPid(b, handle)
		logDir := cfg.TaskDir().LogDir
		tick := time.NewTicker(time.Second)
		for end := time.Now().Add(span); time.Now().Before(end); {
			<-tick.C
			rss = append(rss, float64(memory(b, pid, "VmRSS:"))/(1<<20))
			dirMB = append(dirMB, float64(logDirBytes(b, logDir))/(1<<20))
		}
		tick.Stop()
		written = float64(writtenBytes(b, logDir, cfg)) / (1 << 20) / span.Seconds()
		if err := d.StopTask(cfg.ID, 5*time.Second, "SIGTERM"); err != nil {
			b.Fatal(err)
		}
		_ = d.DestroyTask(cfg.ID, true)
	}
	peak, dirPeak := 0.0, 0.0
	for i := range rss {
		peak, dirPeak = max(peak, rss[i]), max(dirPeak, dirMB[i])
	}
	b.ReportMetric(written, "MB/s")
	b.ReportMetric(rss[0], "rss-start-MB")
	b.ReportMetric(peak, "rss-max-MB")
	b.ReportMetric(rss[len(rss)-1], "rss-end-MB")
	b.ReportMetric(dirPeak, "log-dir-max-MB")
}

// benchSpan is how long a timed benchmark runs: def, or the duration the
// environment variable env names.
func benchSpan(b *testing.B, env string, def time.Duration) time.Duration {
	s := os.Getenv(env)
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		b.Fatalf("%s=%q: %v", env, s, err)
	}
	return d
}

// logDirBytes is the size of the files in dir.
func logDirBytes(b *testing.B, dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	var n int64
	for _, e := range entries {
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() {
			n += info.Size()
		}
	}
	return n
}

// writtenBytes estimates what the task wrote to stdout: every rotated file
// up to the current one was full (10 MB), plus the current one.
func writtenBytes(b *testing.B, dir string, cfg *drivers.TaskConfig) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	highest, size := -1, int64(0)
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), cfg.Name+".stdout.")
		if !ok {
			continue
		}
		var i int
		if _, err := fmt.Sscan(rest, &i); err == nil && i > highest {
			info, _ := os.Stat(filepath.Join(dir, e.Name()))
			highest, size = i, info.Size()
		}
	}
	return int64(highest)*(defaultLogMaxFileSize<<20) + size
}
