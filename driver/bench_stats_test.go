// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build linux

package driver

import (
	"context"
	"testing"
	"time"
)

// BenchmarkSharedStats: what Nomad's stats collection (each task's stats
// stream, a sample a second) costs the shared executor with 100 idle
// tasks: its CPU time per sample sent (stats-cpu-µs/sample), over 10 s.
func BenchmarkSharedStats(b *testing.B) {
	const tasks, span = 100, 10 * time.Second
	for b.Loop() {
		b.StopTimer()
		d := benchDriver(b, b.TempDir(), 0)
		useSharedExecutor(d, d.config.WarmModules)
		ctx, cancel := context.WithCancel(context.Background())
		var pid int
		for range tasks {
			cfg := benchTask(b, "probe", []string{"sleep", "3600"})
			handle, _, err := d.StartTask(cfg)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = d.DestroyTask(cfg.ID, true) })
			pid = executorPid(b, handle)
			ch, err := d.TaskStats(ctx, cfg.ID, time.Second)
			if err != nil {
				b.Fatal(err)
			}
			go func() {
				for range ch {
				}
			}()
		}
		time.Sleep(2 * time.Second) // every stream has sent its first sample
		b.StartTimer()
		before := procCPU(b, pid)
		time.Sleep(span)
		spent := procCPU(b, pid) - before
		cancel()
		b.ReportMetric(float64(spent.Microseconds())/float64(tasks*int(span/time.Second)), "stats-cpu-µs/sample")
	}
}
