// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

// densityTasks is how many idle tasks BenchmarkDensity runs per driver;
// WASM_BENCH_DENSITY sets another number.
func densityTasks(b *testing.B) int {
	if s := os.Getenv("WASM_BENCH_DENSITY"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("WASM_BENCH_DENSITY=%q is not a positive number", s)
		}
		return n
	}
	return 100
}

// sharedDensityTasks is how many idle tasks BenchmarkDensity runs in the
// shared executor; WASM_BENCH_DENSITY_SHARED sets another number.
func sharedDensityTasks(b *testing.B) int {
	if s := os.Getenv("WASM_BENCH_DENSITY_SHARED"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("WASM_BENCH_DENSITY_SHARED=%q is not a positive number", s)
		}
		return n
	}
	return 1000
}

// BenchmarkDensity is make bench-density: what an idle task costs the node,
// for the wasm driver and, in the same run, raw_exec and docker. Each runs
// one job of N idle tasks (WASM_BENCH_DENSITY, default 100): the probe
// guest asleep as a Wasm module, its native static build asleep under
// raw_exec, and a FROM scratch image whose process waits for its stop
// under docker; then wasm-shared runs the Wasm job with M tasks
// (WASM_BENCH_DENSITY_SHARED, default 1000) on a second client whose
// plugin has shared_executor = true. Each job runs on one client. It
// reports
//   - pss-MB/task: the PSS the tasks added, summed over every process on
//     the machine except the agents (Nomad, Consul, dockerd, containerd),
//     divided by N: executors, logmon, docker_logger, containerd-shim and
//     the tasks' own processes;
//   - avail-MB/task: the drop in MemAvailable, divided by N;
//   - running-s: from registering the job until all N allocations run;
//   - client-MB/task: the Nomad client's own RSS growth, divided by N,
//     client-MB: its RSS with the N tasks, and client-cpu-%: its CPU use
//     over 10 s with the N tasks idle;
//   - stop-s: from the job's stop until every allocation is complete;
//   - for wasm and docker, the ratios of pss-MB/task and running-s to
//     raw_exec's.
func BenchmarkDensity(b *testing.B) {
	n := densityTasks(b)
	if out, err := exec.Command("make", "-s", "-C", filepath.Join("..", "example-jobs"), "image").CombinedOutput(); err != nil {
		b.Fatalf("make -C example-jobs image: %v\n%s", err, out)
	}
	// The second client's plugin runs every task in its shared executor.
	c := StartCluster(b, ClientOptions{Addr: "127.0.0.1"}, ClientOptions{Addr: "127.0.0.2", SharedExecutor: true})
	native := testmodule.Native(b, "probe")
	tasks := map[string]string{
		"wasm": fmt.Sprintf(`driver = "wasm"
      artifact {
        source      = "%s/probe.wasm"
        destination = "local/"
      }
      config {
        module = "local/probe.wasm"
        args   = ["sleep", "86400"]
      }`, c.ArtifactURL),
		"raw_exec": fmt.Sprintf(`driver = "raw_exec"
      config {
        command = %q
        args    = ["sleep", "86400"]
      }`, native),
		"docker": `driver = "docker"
      config {
        image      = "wasm-e2e/pause:1"
        force_pull = false
      }`,
	}
	tasks["wasm-shared"] = tasks["wasm"]
	results := map[string]density{}
	for _, driver := range []string{"raw_exec", "wasm", "docker", "wasm-shared"} {
		b.Run(driver, func(b *testing.B) {
			client, count := 0, n
			if driver == "wasm-shared" {
				client, count = 1, sharedDensityTasks(b)
			}
			var d density
			for b.Loop() {
				d = c.measureDensity(b, driver, tasks[driver], count, client)
			}
			results[driver] = d
			b.ReportMetric(float64(count), "tasks")
			b.ReportMetric(d.pssPerTask, "pss-MB/task")
			b.ReportMetric(d.availPerTask, "avail-MB/task")
			b.ReportMetric(d.running.Seconds(), "running-s")
			b.ReportMetric(d.stop.Seconds(), "stop-s")
			b.ReportMetric(d.clientPerTask, "client-MB/task")
			b.ReportMetric(d.clientRSS, "client-MB")
			b.ReportMetric(d.clientCPU, "client-cpu-%")
			if base, ok := results["raw_exec"]; ok && driver != "raw_exec" {
				b.ReportMetric(d.pssPerTask/base.pssPerTask, "pss-x-raw_exec")
				b.ReportMetric(d.running.Seconds()/base.running.Seconds(), "running-x-raw_exec")
			}
		})
	}
}

type density struct {
	pssPerTask, availPerTask, clientPerTask, clientRSS, clientCPU float64
	running, stop                                                 time.Duration
}

// measureDensity runs a job of n idle tasks of the given driver on client
// i, measures what they cost (see BenchmarkDensity), stops the job and
// purges it, waiting for its processes to be gone.
func (c *Cluster) measureDensity(b *testing.B, driver, task string, n, i int) density {
	b.Helper()
	id := "density-" + driver
	// Small resources and disk, so that a thousand tasks fit the node.
	job, err := c.Nomad.Jobs().ParseHCLOpts(&nomadapi.JobsParseRequest{Canonicalize: true, JobHCL: fmt.Sprintf(`
job %q {
  constraint {
    attribute = "${node.unique.name}"
    value     = "client-%d"
  }
  group "g" {
    count = %d
    ephemeral_disk {
      size = 10
    }
    restart {
      attempts = 0
      mode     = "fail"
    }
    task "idle" {
      %s
      kill_timeout = "5s"
      logs {
        max_files     = 1
        max_file_size = 1
      }
      resources {
        cpu    = 2
        memory = 10
      }
    }
  }
}`, id, i, n, task)})
	if err != nil {
		b.Fatal(err)
	}
	client := c.clients[i].cmd.Process.Pid
	before := sampleNode(b, client)
	registered := time.Now()
	if _, _, err := c.Nomad.Jobs().Register(job, nil); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(time.Duration(n) * 2 * time.Second)
	for running := 0; running < n; {
		if time.Now().After(deadline) {
			b.Fatalf("%s: only %d of %d allocations running after %v", driver, running, n, time.Since(registered))
		}
		time.Sleep(200 * time.Millisecond)
		allocs, _, err := c.Nomad.Jobs().Allocations(id, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		running = 0
		for _, a := range allocs {
			switch a.ClientStatus {
			case nomadapi.AllocClientStatusRunning:
				running++
			case nomadapi.AllocClientStatusFailed:
				b.Fatalf("%s: allocation %s failed", driver, a.ID)
			}
		}
	}
	took := time.Since(registered)
	if strings.HasPrefix(driver, "wasm") {
		// nomad alloc logs works on any of them: the first, the middle
		// and the last.
		allocs, _, err := c.Nomad.Jobs().Allocations(id, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		for _, k := range []int{0, len(allocs) / 2, len(allocs) - 1} {
			alloc, _, err := c.Nomad.Allocations().Info(allocs[k].ID, nil)
			if err != nil {
				b.Fatal(err)
			}
			var out string
			for deadline := time.Now().Add(30 * time.Second); !strings.Contains(out, "sleeping\n"); time.Sleep(200 * time.Millisecond) {
				if time.Now().After(deadline) {
					b.Fatalf("%s: the logs of allocation %s never showed the guest's first line; they have %q (%v)", driver, alloc.ID, out, err)
				}
				out, err = c.readLogs(alloc, "idle", "stdout")
			}
		}
	}
	// Settled: the executors have handed back their start-up memory.
	time.Sleep(10 * time.Second)
	cpuBefore := processCPU(b, client)
	span := 10 * time.Second
	time.Sleep(span)
	clientCPU := (processCPU(b, client) - cpuBefore).Seconds() / span.Seconds() * 100
	after := sampleNode(b, client)

	stopped := time.Now()
	if _, _, err := c.Nomad.Jobs().Deregister(id, false, nil); err != nil {
		b.Fatal(err)
	}
	for done := 0; done < n; {
		if time.Since(stopped) > 10*time.Minute {
			b.Fatalf("%s: only %d of %d allocations complete 10 minutes after the job's stop", driver, done, n)
		}
		time.Sleep(200 * time.Millisecond)
		allocs, _, err := c.Nomad.Jobs().Allocations(id, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		done = 0
		for _, a := range allocs {
			if a.ClientStatus == nomadapi.AllocClientStatusComplete {
				done++
			}
		}
	}
	stop := time.Since(stopped)
	if driver == "wasm-shared" {
		// It released every task (the driver does once it has collected
		// each exit).
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
			v := sharedVersion(b, c)
			if v.Tasks == 0 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatalf("the shared executor still holds %d tasks 30 s after the job's stop", v.Tasks)
			}
		}
	}
	if _, _, err := c.Nomad.Jobs().Deregister(id, true, nil); err != nil {
		b.Fatal(err)
	}
	// Gone: no more processes than before the job.
	gone := time.Now().Add(5 * time.Minute)
	for sampleNode(b, client).procs > before.procs+2 {
		if time.Now().After(gone) {
			b.Logf("%s: the tasks' processes were still there five minutes after the job was purged", driver)
			break
		}
		time.Sleep(time.Second)
	}
	return density{
		pssPerTask:    (after.pss - before.pss) / float64(n),
		availPerTask:  (before.avail - after.avail) / float64(n),
		clientPerTask: (after.clientRSS - before.clientRSS) / float64(n),
		clientRSS:     after.clientRSS,
		clientCPU:     clientCPU,
		running:       took,
		stop:          stop,
	}
}

type nodeSample struct {
	pss, avail, clientRSS float64 // MB
	procs                 int     // processes counted in pss
}

// agentNames are the processes that serve every task and are not counted
// as any task's cost.
var agentNames = map[string]bool{"dockerd": true, "containerd": true, "consul": true}

// sampleNode sums the PSS of every process except the agents and this
// test, and reads MemAvailable and the Nomad client's RSS.
func sampleNode(b *testing.B, client int) nodeSample {
	b.Helper()
	var s nodeSample
	entries, err := os.ReadDir("/proc")
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() || isAgent(pid) {
			continue
		}
		s.pss += procField(fmt.Sprintf("/proc/%d/smaps_rollup", pid), "Pss:")
		s.procs++
	}
	s.avail = procField("/proc/meminfo", "MemAvailable:")
	s.clientRSS = procField(fmt.Sprintf("/proc/%d/status", client), "VmRSS:")
	return s
}

// isAgent says whether pid is an agent: dockerd, containerd, Consul, or a
// Nomad agent (nomad agent …; Nomad's logmon, executors and docker_logger
// are the same binary with other subcommands, and count).
func isAgent(pid int) bool {
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return true // gone
	}
	name := strings.TrimSpace(string(comm))
	if agentNames[name] {
		return true
	}
	if name != "nomad" {
		return false
	}
	cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	args := bytes.Split(cmdline, []byte{0})
	return len(args) > 1 && string(args[1]) == "agent"
}

// procField reads a "Name:  value kB" field of a /proc file, in MB (0 if
// the file is gone).
func procField(path, field string) float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for line := range bytes.Lines(b) {
		if v, ok := bytes.CutPrefix(line, []byte(field)); ok {
			kb, _ := strconv.ParseFloat(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 64)
			return kb / 1024
		}
	}
	return 0
}

// processCPU is the CPU time pid has used (user and system).
func processCPU(b *testing.B, pid int) time.Duration {
	b.Helper()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}
