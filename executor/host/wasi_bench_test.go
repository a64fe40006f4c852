// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/internal/confinedfs"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/wasi"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

// filesPerRun is how many small files one run of the files guest makes,
// writes, reads back, stats, lists and removes.
const filesPerRun = 200

// benchInstance is the least an instance is for the WASI host: its
// arguments and its table.
type benchInstance struct {
	args  []string
	table *wasi.Table
	wasi.HostCallCount
}

func (in *benchInstance) Args() []string     { return in.args }
func (in *benchInstance) Environ() []string  { return nil }
func (in *benchInstance) Table() *wasi.Table { return in.table }
func (in *benchInstance) CallHost()          { in.Call() }
func (in *benchInstance) EnterHost()         { in.Enter() }
func (in *benchInstance) LeaveHost()         { in.Leave() }
func (in *benchInstance) AbortHost()         { in.Abort() }
func (in *benchInstance) close()             { in.table.Close() }

var _ wasi.Instance = (*benchInstance)(nil)

// BenchmarkWASIFiles is a file-heavy guest (the files test guest: 200
// small files created, written, read back, stated, listed and removed in
// a mount) under the executor's WASI host, against the same guest under
// wazero's own WASI, in-process, in one run: each iteration runs both, on
// the same confined mount and the node's engine. It reports the medians
// and their ratio, x-wazero (the target is 1.1 at most).
func BenchmarkWASIFiles(b *testing.B) {
	ctx := context.Background()
	local := b.TempDir()
	testmodule.Install(b, "files", local, "files.wasm")
	wasm, err := os.ReadFile(filepath.Join(local, "files.wasm"))
	if err != nil {
		b.Fatal(err)
	}
	engine, err := resolveEngine(executor.EngineAuto)
	if err != nil {
		b.Fatal(err)
	}
	fsys, err := confinedfs.New(b.TempDir(), false)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = fsys.Close() })
	args := []string{"files", "/work", strconv.Itoa(filesPerRun)}

	// One runtime per host, each with the module compiled in it.
	ours := wazero.NewRuntimeWithConfig(ctx, runtimeConfig(engine, false))
	b.Cleanup(func() { _ = ours.Close(ctx) })
	if _, err := wasi.Instantiate(ctx, ours, false); err != nil {
		b.Fatal(err)
	}
	theirs := wazero.NewRuntimeWithConfig(ctx, runtimeConfig(engine, false))
	b.Cleanup(func() { _ = theirs.Close(ctx) })
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, theirs); err != nil {
		b.Fatal(err)
	}
	oursMod, err := ours.CompileModule(ctx, wasm)
	if err != nil {
		b.Fatal(err)
	}
	theirsMod, err := theirs.CompileModule(ctx, wasm)
	if err != nil {
		b.Fatal(err)
	}
	theirsConfig := wazero.NewModuleConfig().WithName("").WithArgs(args...).WithStderr(os.Stderr).
		WithFSConfig(wazero.NewFSConfig().(sysfs.FSConfig).WithSysFSMount(fsys, "/work"))

	run := func(r wazero.Runtime, mod wazero.CompiledModule, callCtx context.Context, config wazero.ModuleConfig) time.Duration {
		began := time.Now()
		m, err := r.InstantiateModule(callCtx, mod, config)
		took := time.Since(began)
		var exit *sys.ExitError
		if err != nil && (!errors.As(err, &exit) || exit.ExitCode() != 0) {
			b.Fatalf("the files guest failed: %v", err)
		}
		if m != nil {
			_ = m.Close(ctx)
		}
		return took
	}
	var oursTook, theirsTook []time.Duration
	for b.Loop() {
		in := &benchInstance{args: args, table: wasi.NewTable(wasi.Stdio{Err: os.Stderr})}
		in.table.Preopen("/work", fsys)
		oursTook = append(oursTook, run(ours, oursMod, wasi.WithInstance(ctx, in), wazero.NewModuleConfig().WithName("")))
		in.close()
		theirsTook = append(theirsTook, run(theirs, theirsMod, ctx, theirsConfig))
	}
	median := func(d []time.Duration) time.Duration {
		slices.Sort(d)
		return d[len(d)/2]
	}
	o, t := median(oursTook), median(theirsTook)
	b.ReportMetric(float64(o.Microseconds()), "ours-µs")
	b.ReportMetric(float64(t.Microseconds()), "wazero-µs")
	b.ReportMetric(float64(o)/float64(t), "x-wazero")
}
