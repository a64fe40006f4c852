// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

// computeRounds scales the compute guest's work: about 0.35 s natively on
// a 2-core VM, long enough that a task's start and stop (a few
// milliseconds) do not weigh in the driver's time.
const computeRounds = "6"

// computeRuns is how many times each side of the compute row runs; each
// reports its median.
const computeRuns = 5

// BenchmarkCompute is make bench's compute row: the same CPU-bound C
// source (executor/testdata/compute.c) run natively, as a command task
// under the driver (the real executor binary, its module compiled before
// the run), and in plain wazero in-process with its default configuration,
// instantiate and run timed, compile not. It also runs in wazero with the
// per-loop check (WithCloseOnContextDone), which is what the instances that
// share a process pay (nomad alloc exec's, the HTTP trigger's): a command
// task runs without it.
//
// Metrics: each side's median wall time in seconds; x-wazero (driver over
// plain wazero, target ≤ 1.15) and x-native (driver over native), and
// check-x-wazero (the check's cost).
func BenchmarkCompute(b *testing.B) {
	args := []string{computeRounds}
	native := medianRun(b, func() {
		cmd := exec.Command(testmodule.Native(b, "compute"), args...)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("native compute: %v: %s", err, out)
		}
	})
	module, err := os.ReadFile(testmodule.Path(b, "compute"))
	if err != nil {
		b.Fatal(err)
	}
	plain := medianRun(b, inProcess(b, wazero.NewRuntimeConfig(), module, args))
	checked := medianRun(b, inProcess(b, wazero.NewRuntimeConfig().WithCloseOnContextDone(true), module, args))

	d := benchDriver(b, filepath.Join(b.TempDir(), "cache"), 0)
	runTask(b, d, "compute", args) // compiles the module into the node's cache
	underDriver := medianRun(b, func() { runTask(b, d, "compute", args) })

	for b.Loop() {
		// The runs above are the measurement; see the metrics.
	}
	b.ReportMetric(native.Seconds(), "native-s")
	b.ReportMetric(plain.Seconds(), "wazero-s")
	b.ReportMetric(checked.Seconds(), "wazero-check-s")
	b.ReportMetric(underDriver.Seconds(), "driver-s")
	b.ReportMetric(float64(underDriver)/float64(plain), "x-wazero")
	b.ReportMetric(float64(underDriver)/float64(native), "x-native")
	b.ReportMetric(float64(checked)/float64(plain), "check-x-wazero")
}

// medianRun runs fn computeRuns times and returns the median wall time.
func medianRun(b *testing.B, fn func()) time.Duration {
	b.Helper()
	var ds []time.Duration
	for range computeRuns {
		start := time.Now()
		fn()
		ds = append(ds, time.Since(start))
	}
	return percentile(ds, 0.5)
}

// inProcess returns a run of module in a wazero runtime configured by cfg,
// compiled once beforehand: what a program embedding wazero pays.
func inProcess(b *testing.B, cfg wazero.RuntimeConfig, module []byte, args []string) func() {
	b.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, cfg)
	b.Cleanup(func() { _ = rt.Close(ctx) })
	wasi_snapshot_preview1.MustInstantiate(ctx, rt)
	compiled, err := rt.CompileModule(ctx, module)
	if err != nil {
		b.Fatal(err)
	}
	return func() {
		config := wazero.NewModuleConfig().WithName("").WithArgs(append([]string{"compute"}, args...)...).WithStdout(io.Discard)
		mod, err := rt.InstantiateModule(ctx, compiled, config)
		if err != nil {
			b.Fatal(err)
		}
		_ = mod.Close(ctx)
	}
}

// runTask runs module as a command task until it exits, and checks that it
// succeeded.
func runTask(b *testing.B, d *Driver, module string, args []string) {
	b.Helper()
	waitSpare(b, d)
	cfg := benchTask(b, module, args)
	if _, _, err := d.StartTask(cfg); err != nil {
		b.Fatal(err)
	}
	ch, err := d.WaitTask(context.Background(), cfg.ID)
	if err != nil {
		b.Fatal(err)
	}
	res := <-ch
	_ = d.DestroyTask(cfg.ID, true)
	if res.ExitCode != 0 || res.Err != nil {
		b.Fatalf("%s %v: exit %s, %v", module, args, strconv.Itoa(res.ExitCode), res.Err)
	}
}
