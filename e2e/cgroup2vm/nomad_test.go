// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build cgroup2vm

// Package cgroup2vm is the end-to-end test of the driver's cgroup v2 limits
// under a real Nomad agent. It runs only inside the virtual machine of
// e2e/cgroup2.sh (make test-cgroup2), booted with the unified hierarchy,
// which gives it the Nomad binary, the plugin and the test module.
package cgroup2vm

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	nomadapi "github.com/hashicorp/nomad/api"
	"github.com/shoenig/test/must"
	"github.com/shoenig/test/wait"
)

// The machine's layout (see e2e/cgroup2.sh).
const (
	nomadBin   = "/nomad"
	pluginDir  = "/plugins"
	modulesDir = "/modules"
	cgroupRoot = "/sys/fs/cgroup"
)

// TestNomadCgroupsV2: on a cgroup v2 node, Nomad's client makes a cgroup
// for each task (nomad.slice/<partition>.slice/<alloc>.<task>.scope), and
// the task's executor runs in it, alone, with the task's limits: cpu.weight
// from resources.cpu, memory.max of the task's memory plus the executor's
// 64 MiB, and with resources.cores the reserved core as its cpuset. The
// task's memory stats come from the cgroup. Stopped, the task leaves no
// cgroup behind.
func TestNomadCgroupsV2(t *testing.T) {
	nomad := startNomad(t)

	node := waitNode(t, nomad)
	must.Eq(t, "v2", node.Attributes["driver.wasm.cgroups"])

	// A task on Nomad's shared cores.
	shared := runJob(t, nomad, "shared", "cpu = 300")
	scope := filepath.Join(cgroupRoot, "nomad.slice", "share.slice", shared.ID+".ticker.scope")
	pid := onlyProcess(t, scope)
	must.StrContains(t, cmdline(t, pid), "wasm-executor")
	must.Eq(t, "0::/nomad.slice/share.slice/"+shared.ID+".ticker.scope", readFile(t, fmt.Sprintf("/proc/%d/cgroup", pid)))
	// 300 MHz of shares on Nomad's curve from cpu.shares to cpu.weight
	// (log2 of the shares mapped quadratically onto log10 of the weight).
	must.Eq(t, "39", readFile(t, filepath.Join(scope, "cpu.weight")))
	must.Eq(t, strconv.Itoa(32<<20+64<<20), readFile(t, filepath.Join(scope, "memory.max")))

	var usage *nomadapi.ResourceUsage
	must.Wait(t, wait.InitialSuccess(wait.BoolFunc(func() bool {
		stats, err := nomad.Allocations().Stats(shared, nil)
		if err != nil || stats.Tasks["ticker"] == nil || stats.Tasks["ticker"].ResourceUsage == nil {
			return false
		}
		usage = stats.Tasks["ticker"].ResourceUsage
		return usage.MemoryStats != nil && usage.MemoryStats.Usage > 0
	}), wait.Timeout(2*time.Minute), wait.Gap(time.Second)))
	// The cgroup's memory.current, which counts the kernel's memory for
	// the task too, not the executor's RSS.
	must.NotEq(t, usage.MemoryStats.RSS, usage.MemoryStats.Usage)

	// A task that reserves a core: its cpuset is that core.
	reserved := runJob(t, nomad, "reserved", "cores = 1")
	rscope := filepath.Join(cgroupRoot, "nomad.slice", "reserve.slice", reserved.ID+".ticker.scope")
	rpid := onlyProcess(t, rscope)
	must.StrContains(t, cmdline(t, rpid), "wasm-executor")
	// The API does not say which core Nomad reserved, its reserve
	// partition does (the shared one has the rest).
	core := readFile(t, filepath.Join(cgroupRoot, "nomad.slice", "reserve.slice", "cpuset.cpus"))
	_, err := strconv.Atoi(core)
	must.NoError(t, err, must.Sprintf("one reserved core: %q", core))
	must.Eq(t, core, readFile(t, filepath.Join(rscope, "cpuset.cpus")))
	must.StrNotContains(t, readFile(t, filepath.Join(cgroupRoot, "nomad.slice", "share.slice", "cpuset.cpus")), core)

	for _, a := range []*nomadapi.Allocation{shared, reserved} {
		_, _, err := nomad.Jobs().Deregister(a.JobID, false, nil)
		must.NoError(t, err)
	}
	for _, dir := range []string{scope, rscope} {
		must.Wait(t, wait.InitialSuccess(wait.BoolFunc(func() bool {
			_, err := os.Stat(dir)
			return os.IsNotExist(err)
		}), wait.Timeout(2*time.Minute), wait.Gap(200*time.Millisecond)), must.Sprintf("%s is still there", dir))
	}
	for _, p := range []int{pid, rpid} {
		must.Wait(t, wait.InitialSuccess(wait.BoolFunc(func() bool {
			return syscall.Kill(p, 0) != nil
		}), wait.Timeout(time.Minute), wait.Gap(200*time.Millisecond)), must.Sprintf("executor %d still runs", p))
	}
}

// startNomad starts a Nomad agent in dev mode (server and client) with the
// plugin and returns its API client.
func startNomad(t *testing.T) *nomadapi.Client {
	t.Helper()
	dir := t.TempDir()
	// The task's user (nobody) reaches the cache. Not the data_dir: Nomad
	// makes it, 0700, as on a real client, and an executor that runs as
	// the task's user reaches nothing there by path, only through the
	// descriptors it opened before.
	must.NoError(t, os.Chmod(dir, 0o711))
	cache := filepath.Join(dir, "cache")
	must.NoError(t, os.MkdirAll(cache, 0o755))
	config := filepath.Join(dir, "agent.hcl")
	must.NoError(t, os.WriteFile(config, []byte(fmt.Sprintf(`
data_dir   = %q
plugin_dir = %q
disable_update_check = true
client {
  network_interface = "lo"
}
plugin "nomad-driver-wasm" {
  config {
    cache_dir          = %q
    allowed_host_paths = [%q]
  }
}
`, filepath.Join(dir, "data"), pluginDir, cache, modulesDir)), 0o644))
	log, err := os.Create(filepath.Join(dir, "nomad.log"))
	must.NoError(t, err)
	cmd := exec.Command(nomadBin, "agent", "-dev", "-config", config)
	cmd.Stdout, cmd.Stderr = log, log
	must.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGINT)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			b, _ := os.ReadFile(log.Name())
			t.Logf("Nomad's log:\n%s", b)
		}
	})
	nomad, err := nomadapi.NewClient(nomadapi.DefaultConfig())
	must.NoError(t, err)
	return nomad
}

// waitNode waits for the node to be ready with a healthy wasm driver.
func waitNode(t *testing.T, nomad *nomadapi.Client) *nomadapi.Node {
	t.Helper()
	var node *nomadapi.Node
	must.Wait(t, wait.InitialSuccess(wait.BoolFunc(func() bool {
		nodes, _, err := nomad.Nodes().List(nil)
		if err != nil || len(nodes) != 1 || nodes[0].Status != "ready" {
			return false
		}
		node, _, err = nomad.Nodes().Info(nodes[0].ID, nil)
		return err == nil && node.Drivers["wasm"] != nil && node.Drivers["wasm"].Healthy
	}), wait.Timeout(3*time.Minute), wait.Gap(time.Second)))
	return node
}

// runJob runs a service job of one wasm task, ticker, asleep, with the
// given resources beside 32 MiB of memory, and returns its allocation
// once it runs.
func runJob(t *testing.T, nomad *nomadapi.Client, id, resources string) *nomadapi.Allocation {
	t.Helper()
	job, err := nomad.Jobs().ParseHCL(fmt.Sprintf(`
job %q {
  group "g" {
    task "ticker" {
      driver = "wasm"
      config {
        module = "%s/probe.wasm"
        args   = ["sleep", "600"]
      }
      resources {
        %s
        memory = 32
      }
    }
  }
}`, id, modulesDir, resources), true)
	must.NoError(t, err)
	_, _, err = nomad.Jobs().Register(job, nil)
	must.NoError(t, err)
	var alloc *nomadapi.Allocation
	must.Wait(t, wait.InitialSuccess(wait.BoolFunc(func() bool {
		list, _, err := nomad.Jobs().Allocations(id, false, nil)
		if err != nil || len(list) != 1 || list[0].ClientStatus != "running" {
			return false
		}
		alloc, _, err = nomad.Allocations().Info(list[0].ID, nil)
		return err == nil
	}), wait.Timeout(3*time.Minute), wait.Gap(time.Second)), must.Sprintf("job %s never ran", id))
	return alloc
}

// onlyProcess is the one process in cgroup dir.
func onlyProcess(t *testing.T, dir string) int {
	t.Helper()
	procs := strings.Fields(readFile(t, filepath.Join(dir, "cgroup.procs")))
	must.Len(t, 1, procs, must.Sprintf("processes in %s", dir))
	pid, err := strconv.Atoi(procs[0])
	must.NoError(t, err)
	return pid
}

func cmdline(t *testing.T, pid int) string {
	t.Helper()
	return strings.ReplaceAll(readFile(t, fmt.Sprintf("/proc/%d/cmdline", pid)), "\x00", " ")
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	must.NoError(t, err)
	return strings.TrimSpace(string(b))
}
