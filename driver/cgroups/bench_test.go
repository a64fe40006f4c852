// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build linux

package cgroups

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver/cgroups/cgroupstest"
)

// BenchmarkJoin is what a task start's cgroup-join costs: a process's pid
// written into a task's cgroups (its cgroup.procs), as the executor does.
// alone: 30 ms after the node's last migration, as starts a while apart
// are; back-to-back: right after one. On cgroup v1 a migration takes the
// kernel's threadgroup lock for writing, which waits for an RCU grace
// period unless another migration took it within about one: that wait is
// the start's cgroup-join. It reports the median and the 90th percentile
// of each (ms).
func BenchmarkJoin(b *testing.B) {
	cgroupstest.Require(b, Version)
	var tasks [2]Task
	for i := range tasks {
		t, err := Make(fmt.Sprintf("cgroups-bench.%d", os.Getpid()), strconv.Itoa(i), Limits{CPUShares: 100, MemoryBytes: 64 << 20})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { Remove(t.Made) })
		tasks[i] = t
	}
	cmd := exec.Command("sleep", "600")
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	pid := []byte(strconv.Itoa(cmd.Process.Pid))
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	join := func(i int) time.Duration {
		began := time.Now()
		for _, dir := range tasks[i%2].Join {
			if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), pid, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(began)
	}
	const n = 40
	measure := func(gap time.Duration) (p50, p90 float64) {
		took := make([]time.Duration, n)
		for i := range took {
			time.Sleep(gap) // spacing the joins apart, not waiting for anything
			took[i] = join(i)
		}
		slices.Sort(took)
		return float64(took[n/2].Microseconds()) / 1000, float64(took[n*9/10].Microseconds()) / 1000
	}
	var alone50, alone90, b2b50, b2b90 float64
	for b.Loop() {
		alone50, alone90 = measure(30 * time.Millisecond)
		b2b50, b2b90 = measure(0)
	}
	b.ReportMetric(alone50, "alone-p50-ms")
	b.ReportMetric(alone90, "alone-p90-ms")
	b.ReportMetric(b2b50, "back-to-back-p50-ms")
	b.ReportMetric(b2b90, "back-to-back-p90-ms")
}
