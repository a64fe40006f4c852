// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build e2e

package e2e

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"
)

// BenchmarkJobStart measures, on a real agent, the time from registering
// the hello job to its task running (the task's StartedAt), for the wasm
// driver with a warm module cache and, in the same run, for raw_exec on the
// equivalent native static binary and docker on an equivalent FROM scratch
// image. Each sub-benchmark reports p50 and its ratio to raw_exec.
func BenchmarkJobStart(b *testing.B) {
	if out, err := exec.Command("make", "-s", "-C", filepath.Join("..", "example-jobs"), "native").CombinedOutput(); err != nil {
		b.Fatalf("make -C example-jobs native: %v\n%s", err, out)
	}
	c := StartCluster(b)
	native := filepath.Join(repoRoot(b), "example-jobs", "build", "hello-native")
	tasks := map[string]string{
		"wasm": fmt.Sprintf(`driver = "wasm"
      artifact {
        source      = "%s/hello.wasm"
        destination = "local/"
      }
      config {
        module = "local/hello.wasm"
      }`, c.ArtifactURL),
		"raw_exec": fmt.Sprintf(`driver = "raw_exec"
      config {
        command = %q
      }`, native),
		"docker": `driver = "docker"
      config {
        image      = "wasm-e2e/hello:1"
        force_pull = false
      }`,
	}
	p50 := map[string]time.Duration{}
	for _, driver := range []string{"raw_exec", "wasm", "docker"} {
		b.Run(driver, func(b *testing.B) {
			c.timeJob(b, driver, tasks[driver], 0) // warms caches and images
			var ds []time.Duration
			for i := 0; b.Loop(); i++ {
				ds = append(ds, c.timeJob(b, driver, tasks[driver], i+1))
			}
			slices.Sort(ds)
			p50[driver] = ds[len(ds)/2]
			b.ReportMetric(float64(p50[driver])/float64(time.Millisecond), "p50-ms")
			if base, ok := p50["raw_exec"]; ok && driver != "raw_exec" {
				b.ReportMetric(float64(p50[driver])/float64(base), "x-raw_exec")
			}
			if dock, ok := p50["docker"]; ok && driver == "docker" {
				b.ReportMetric(float64(p50["wasm"])/float64(dock), "wasm-x-docker")
			}
		})
	}
}

// timeJob registers a one-task batch job and returns the time until the
// task started, then purges the job.
func (c *Cluster) timeJob(b *testing.B, driver, task string, i int) time.Duration {
	b.Helper()
	id := fmt.Sprintf("bench-%s-%d", driver, i)
	job, err := c.Nomad.Jobs().ParseHCLOpts(&nomadapi.JobsParseRequest{Canonicalize: true, JobHCL: fmt.Sprintf(`
job %q {
  type = "batch"
  group "g" {
    task "hello" {
      %s
      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}`, id, task)})
	if err != nil {
		b.Fatal(err)
	}
	registered := time.Now()
	if _, _, err := c.Nomad.Jobs().Register(job, nil); err != nil {
		b.Fatal(err)
	}
	var started time.Time
	deadline := time.Now().Add(2 * time.Minute)
	for started.IsZero() {
		if time.Now().After(deadline) {
			b.Fatalf("job %s did not start", id)
		}
		allocs, _, err := c.Nomad.Jobs().Allocations(id, true, nil)
		if err == nil && len(allocs) > 0 {
			if ts := allocs[0].TaskStates["hello"]; ts != nil && !ts.StartedAt.IsZero() {
				started = ts.StartedAt
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, _, err := c.Nomad.Jobs().Deregister(id, true, nil); err != nil {
		b.Fatal(err)
	}
	return started.Sub(registered)
}
