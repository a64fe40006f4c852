// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/client/allocdir"
	"github.com/hashicorp/nomad/helper/uuid"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/hashicorp/nomad/plugins/drivers/fsisolation"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

// The benchmarks measure what a task costs the node: how long it takes to
// start (StartTask until the guest's first byte of output) and how much
// memory an idle task's executor holds. Each reports its own distribution
// (p50, p90) and its ratio to the equivalent native static binary run as a
// plain process (fork/exec until its first byte of output), measured in the
// same run. Run them with make bench.

// pluginBinaryDir holds the programs the benchmarks built, removed by
// TestMain when the run ends.
var pluginBinaryDir string

// executorPrograms are what executors can start from, built once: the
// plugin binary (as every executor did before the build embedded the
// executor program, and still does where that cannot run) and the executor
// program the plugin binary embeds (executor/cmd/wasm-executor, built as
// executor/embedded/build.sh builds it), which a real plugin runs from a
// memfd and the benchmarks from a file.
type executorPrograms struct{ plugin, embedded string }

var benchPrograms = sync.OnceValues(func() (executorPrograms, error) {
	dir, err := os.MkdirTemp("", "nomad-driver-wasm-bench-")
	if err != nil {
		return executorPrograms{}, err
	}
	pluginBinaryDir = dir
	p := executorPrograms{plugin: filepath.Join(dir, "nomad-driver-wasm"), embedded: filepath.Join(dir, "wasm-executor")}
	for _, args := range [][]string{
		{"build", "-o", p.plugin, "."},
		{"build", "-ldflags", "-s -w", "-o", p.embedded, "./executor/cmd/wasm-executor"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return executorPrograms{}, &buildError{out: out, err: err}
		}
	}
	return p, nil
})

// benchExecutor is the program the benchmarks' drivers start executors
// from: the embedded executor program, as a real plugin does; with
// WASM_BENCH_EXECUTOR=plugin the plugin binary, to compare the two in one
// session.
func benchExecutor(b *testing.B) string {
	b.Helper()
	p, err := benchPrograms()
	if err != nil {
		b.Fatal(err)
	}
	if os.Getenv("WASM_BENCH_EXECUTOR") == "plugin" {
		return p.plugin
	}
	return p.embedded
}

type buildError struct {
	out []byte
	err error
}

func (e *buildError) Error() string { return e.err.Error() + ": " + string(e.out) }

// benchDriver is a driver running the real executor program (see
// benchExecutor), whose spares prepare up to warm recent modules.
func benchDriver(b *testing.B, cacheDir string, warm int) *Driver {
	b.Helper()
	return benchDriverWith(b, benchExecutor(b), cacheDir, warm)
}

func benchDriverWith(b *testing.B, bin, cacheDir string, warm int) *Driver {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	d := New(ctx, hclog.NewNullLogger())
	d.config = Config{CacheDir: cacheDir, Engine: EngineAuto, WarmModules: warm}
	if err := d.config.Validate(); err != nil {
		b.Fatal(err)
	}
	d.executors.binary = bin
	d.shared.binary = bin // and compiles in the task's cgroups
	d.executors.setWarm(d.config.spareWarm(warm))
	d.executors.fill()
	return d
}

// useSharedExecutor makes d run its tasks in the node's shared executor,
// which keeps the programs of up to keep ended tasks, as SetConfig does
// with shared_executor = true: no spare.
func useSharedExecutor(d *Driver, keep int) {
	d.config.SharedExecutor = true
	d.executors.setWarm(nil)
	d.shared.configure(sharedDir(d.config.CacheDir), d.config.defaultRunAs, keep)
}

// waitPrepared waits until the driver's spare executor holds a prepared
// module: the state of a node between repeated starts of one module.
func waitPrepared(b *testing.B, d *Driver) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		v, err := d.executors.version(ctx, &proto.VersionRequest{})
		if err != nil {
			b.Fatal(err)
		}
		if len(v.PreparedModules) > 0 {
			return
		}
		select {
		case <-ctx.Done():
			b.Fatal("the spare executor prepared no module")
		case <-time.After(time.Millisecond):
		}
	}
}

// benchTask builds a task directory holding the module. Its executor
// writes its stdout to the task's log file (see stdoutLog).
func benchTask(b *testing.B, module string, args []string) *drivers.TaskConfig {
	b.Helper()
	dir := b.TempDir()
	// Reachable by the task's user (nobody), as Nomad's alloc dir is (the
	// benchmark's temp dirs are 0700, the one above them too).
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			b.Fatal(err)
		}
	}
	cfg := &drivers.TaskConfig{
		ID:      uuid.Generate(),
		AllocID: uuid.Generate(),
		Name:    "bench",
		Env:     map[string]string{"NOMAD_TASK_NAME": "bench"},
		Resources: &drivers.Resources{NomadResources: &structs.AllocatedTaskResources{
			Memory: structs.AllocatedMemoryResources{MemoryMB: goModuleMemoryMB},
		}},
	}
	ad := allocdir.NewAllocDir(hclog.NewNullLogger(), dir, filepath.Join(dir, "mounts"), cfg.AllocID)
	if err := ad.Build(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = ad.Destroy() }) // unmounts secrets/ before TempDir's removal
	td := ad.NewTaskDir(&structs.Task{Name: cfg.Name})
	if err := td.Build(fsisolation.Image, nil, ""); err != nil {
		b.Fatal(err)
	}
	cfg.AllocDir = ad.AllocDir
	testmodule.Install(b, module, td.LocalDir, "app.wasm")
	tc := TaskConfig{Module: "local/app.wasm", Args: args}
	if err := cfg.EncodeConcreteDriverConfig(&tc); err != nil {
		b.Fatal(err)
	}
	return cfg
}

// stdoutLog is the first file of the task's stdout log.
func stdoutLog(cfg *drivers.TaskConfig) string {
	return filepath.Join(cfg.TaskDir().LogDir, cfg.Name+".stdout.0")
}

// startTask times one StartTask until the first output, then waits for the
// task to end and destroys it.
func startTask(b *testing.B, d *Driver, cfg *drivers.TaskConfig) time.Duration {
	b.Helper()
	return traceStart(b, d, cfg).total
}

// startSpans is one start, timed in all and step by step.
type startSpans struct {
	// total is StartTask until the guest's first output.
	total time.Duration
	// spans are the driver's steps, the executor's, then two of the
	// benchmark's own: wire (the Start's round trip less the executor's
	// steps: the RPC and the two processes' scheduling) and guest (the
	// guest's first output after StartTask returned; 0 when it came
	// before).
	spans []*proto.Span
}

// traceStart is startTask, step by step.
func traceStart(b *testing.B, d *Driver, cfg *drivers.TaskConfig) startSpans {
	b.Helper()
	first := firstOutput(b, stdoutLog(cfg))
	start := time.Now()
	if _, _, err := d.StartTask(cfg); err != nil {
		b.Fatal(err)
	}
	returned := time.Now()
	at, ok := <-first
	if !ok {
		b.Fatal("no output")
	}
	var s startSpans
	s.total = at.Sub(start)
	if h, ok := d.tasks.Get(cfg.ID); ok {
		inExecutor := int64(0)
		for _, sp := range h.started.executor {
			inExecutor += sp.GetNanos()
		}
		s.spans = append(slices.Concat(h.started.driver, h.started.executor),
			&proto.Span{Name: "wire", Nanos: h.started.driver[spanStartRPC].GetNanos() - inExecutor},
			&proto.Span{Name: "guest", Nanos: max(0, at.Sub(returned).Nanoseconds())})
	}
	ch, err := d.WaitTask(context.Background(), cfg.ID)
	if err != nil {
		b.Fatal(err)
	}
	<-ch
	_ = d.DestroyTask(cfg.ID, true)
	return s
}

// reportSpans reports the median of each step of starts as span-<name>-ms,
// every step every time (one that did not apply, such as the shared
// executor's handoff here, is about 0), so that runs compare column by
// column.
func reportSpans(b *testing.B, starts []startSpans) {
	b.Helper()
	byName := map[string][]time.Duration{}
	for _, st := range starts {
		for _, sp := range st.spans {
			byName[sp.GetName()] = append(byName[sp.GetName()], time.Duration(sp.GetNanos()))
		}
	}
	for name, ds := range byName {
		b.ReportMetric(ms(percentile(ds, 0.5)), "span-"+name+"-ms")
	}
}

// nativeStart times fork/exec of the native build until its first byte of
// output, over n runs.
func nativeStart(b *testing.B, bin string, args []string, n int) []time.Duration {
	b.Helper()
	var ds []time.Duration
	for range n {
		cmd := exec.Command(bin, args...)
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		var one [1]byte
		if _, err := out.Read(one[:]); err != nil {
			b.Fatal(err)
		}
		ds = append(ds, time.Since(start))
		_, _ = io.Copy(io.Discard, out)
		_ = cmd.Wait()
	}
	return ds
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*p)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// waitSpare waits until the driver's spare executor is ready: the state of
// a node between task starts.
func waitSpare(b *testing.B, d *Driver) {
	b.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for d.executors.sparePid() == 0 {
		if time.Now().After(deadline) {
			b.Fatal("no spare executor")
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkTaskStart: StartTask until the guest's first output, for a small
// C module and a Go module, with the median of each step of the start
// beside it (span-<name>-ms: the driver's, the executor's, and the guest's
// part after StartTask returned; see traceStart):
//   - cold: the module was never compiled on the node;
//   - cached: the first start of a module compiled on the node before (its
//     cache entry is loaded);
//   - repeated: the module started on the node within the last ten
//     minutes, so the spare executor has prepared it;
//   - cached-burst: cached starts back to back, faster than spare
//     executors are replaced, so that some tasks start their own;
//   - shared: cached starts in the node's shared executor
//     (shared_executor = true), which has started and loaded the module
//     before: no process, no cgroup join.
//
// file-create-p50-ms is a new file made in the task's log directory after
// each start (createFile): what each of the start's three new files costs
// at least on the disk the run's directories are on.
func BenchmarkTaskStart(b *testing.B) {
	guests := []struct {
		name, module string
		args         []string
	}{
		{"c", "probe", []string{"hello"}},
		{"go", "hello-go", nil},
	}
	for _, g := range guests {
		native := nativeStart(b, testmodule.Native(b, g.module), g.args, 50)
		nativeP50 := percentile(native, 0.5)
		for _, mode := range []string{"cold", "cached", "repeated", "cached-burst", "shared"} {
			cached, burst, repeated, shared := mode != "cold", mode == "cached-burst", mode == "repeated", mode == "shared"
			b.Run(g.name+"/"+mode, func(b *testing.B) {
				root := b.TempDir()
				warm := 0
				if repeated {
					warm = 4
				}
				d := benchDriver(b, filepath.Join(root, "warm"), warm)
				if shared {
					useSharedExecutor(d, 4)
				}
				if cached {
					startTask(b, d, benchTask(b, g.module, g.args)) // fills the cache
				}
				var ds, creates []time.Duration
				var starts []startSpans
				for i := 0; b.Loop(); i++ {
					b.StopTimer()
					cfg := benchTask(b, g.module, g.args)
					if !cached {
						d.config.CacheDir = filepath.Join(root, strconv.Itoa(i))
					}
					switch {
					case repeated:
						waitPrepared(b, d)
					case !burst && !shared:
						waitSpare(b, d)
					}
					b.StartTimer()
					st := traceStart(b, d, cfg)
					ds = append(ds, st.total)
					starts = append(starts, st)
					b.StopTimer()
					creates = append(creates, createFile(b, cfg.TaskDir().LogDir))
					b.StartTimer()
				}
				p50 := percentile(ds, 0.5)
				b.ReportMetric(ms(p50), "p50-ms")
				b.ReportMetric(ms(percentile(ds, 0.9)), "p90-ms")
				b.ReportMetric(ms(nativeP50), "native-p50-ms")
				b.ReportMetric(float64(p50)/float64(nativeP50), "x-native")
				b.ReportMetric(ms(percentile(creates, 0.5)), "file-create-p50-ms")
				reportSpans(b, starts)
			})
		}
	}
}

// createFile times the making of a new file in dir, after the task has
// ended: the floor of the files a start makes on this disk (the task's
// stdout and stderr in its log directory, in the logs step, and the
// executor's log in the task directory, in the open step), measured in
// the same run.
func createFile(b *testing.B, dir string) time.Duration {
	b.Helper()
	began := time.Now()
	f, err := os.OpenFile(filepath.Join(dir, "floor.stdout.0"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	took := time.Since(began)
	if err != nil {
		b.Fatal(err)
	}
	_ = f.Close()
	return took
}

// BenchmarkIdleExecutorRSS: the memory of the executors of tasks whose
// guests sleep, against the native build of the same program asleep. Each
// iteration runs idleTasks at once and reports the median RSS of one
// executor (which counts the pages of the plugin binary it shares with the
// others) and the median PSS (which divides shared pages among the
// processes sharing them: what one more task costs the node).
func BenchmarkIdleExecutorRSS(b *testing.B) {
	const idleTasks = 4
	args := []string{"sleep", "3600"}
	native := exec.Command(testmodule.Native(b, "probe"), args...)
	out, err := native.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := native.Start(); err != nil {
		b.Fatal(err)
	}
	if _, err := bufio.NewReader(out).ReadString('\n'); err != nil {
		b.Fatal(err)
	}
	nativeRSS := memory(b, native.Process.Pid, "VmRSS:")
	_ = native.Process.Kill()
	_ = native.Wait()

	d := benchDriver(b, b.TempDir(), 0)
	startTask(b, d, benchTask(b, "probe", []string{"hello"})) // fills the cache
	var rssMB, pssMB []float64
	for b.Loop() {
		var pids []int
		var ids []string
		for range idleTasks {
			cfg := benchTask(b, "probe", args)
			first := firstOutput(b, stdoutLog(cfg))
			handle, _, err := d.StartTask(cfg)
			if err != nil {
				b.Fatal(err)
			}
			<-first
			pids = append(pids, executorPid(b, handle))
			ids = append(ids, cfg.ID)
		}
		for _, pid := range pids {
			rssMB = append(rssMB, float64(memory(b, pid, "VmRSS:"))/(1<<20))
			pssMB = append(pssMB, float64(memory(b, pid, "Pss:"))/(1<<20))
		}
		for _, id := range ids {
			if err := d.StopTask(id, 5*time.Second, "SIGTERM"); err != nil {
				b.Fatal(err)
			}
			_ = d.DestroyTask(id, true)
		}
	}
	slices.Sort(rssMB)
	slices.Sort(pssMB)
	b.ReportMetric(rssMB[len(rssMB)/2], "rss-MB")
	b.ReportMetric(pssMB[len(pssMB)/2], "pss-MB")
	b.ReportMetric(float64(nativeRSS)/(1<<20), "native-rss-MB")
}

// memory reads one of a process's memory figures in bytes: a VmRSS line of
// /proc/<pid>/status or the Pss line of /proc/<pid>/smaps_rollup.
func memory(b testing.TB, pid int, field string) uint64 {
	b.Helper()
	file := "/status"
	if field == "Pss:" {
		file = "/smaps_rollup"
	}
	content, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + file)
	if err != nil {
		b.Fatal(err)
	}
	for line := range bytes.Lines(content) {
		if v, ok := bytes.CutPrefix(line, []byte(field)); ok {
			kb, err := strconv.ParseUint(string(bytes.TrimSuffix(bytes.TrimSpace(v), []byte(" kB"))), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatalf("no %s in %s", field, file)
	return 0
}

// BenchmarkSpareMemory: what the idle spare executor holds with nothing
// prepared, and with the module of the last start prepared (warm_modules):
// the memory cost of a prepared repeated start. It reports the spare's
// RSS and PSS.
func BenchmarkSpareMemory(b *testing.B) {
	for _, c := range []struct {
		name, module string
		warm         int
	}{
		{"none", "probe", 0},
		{"c", "probe", 4},
		{"go", "hello-go", 4},
	} {
		b.Run(c.name, func(b *testing.B) {
			d := benchDriver(b, b.TempDir(), c.warm)
			startTask(b, d, benchTask(b, c.module, []string{"hello"}))
			var rssMB, pssMB []float64
			for b.Loop() {
				if c.warm > 0 {
					waitPrepared(b, d)
				} else {
					waitSpare(b, d)
				}
				pid := d.executors.sparePid()
				rssMB = append(rssMB, float64(memory(b, pid, "VmRSS:"))/(1<<20))
				pssMB = append(pssMB, float64(memory(b, pid, "Pss:"))/(1<<20))
				// The next iteration measures a new spare.
				startTask(b, d, benchTask(b, c.module, []string{"hello"}))
			}
			slices.Sort(rssMB)
			slices.Sort(pssMB)
			b.ReportMetric(rssMB[len(rssMB)/2], "rss-MB")
			b.ReportMetric(pssMB[len(pssMB)/2], "pss-MB")
		})
	}
}

// procCPU is the CPU time process pid has used.
func procCPU(t testing.TB, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond
}

// BenchmarkExecutorLaunch: what starting an executor process costs, until
// it answers over its protocol (executor.Launch, then a Version call): from
// the executor program the plugin binary embeds, and from the plugin binary
// itself (how every executor started before, and still does where the
// embedded one cannot run), against the native hello program's fork/exec
// until its first byte of output. A task pays it when no spare is ready
// (cached-burst), and it is most of how soon a new spare is ready.
func BenchmarkExecutorLaunch(b *testing.B) {
	p, err := benchPrograms()
	if err != nil {
		b.Fatal(err)
	}
	native := percentile(nativeStart(b, testmodule.Native(b, "probe"), []string{"hello"}, 50), 0.5)
	for _, prog := range []struct{ name, bin string }{{"embedded", p.embedded}, {"plugin", p.plugin}} {
		b.Run(prog.name, func(b *testing.B) {
			var ds []time.Duration
			for b.Loop() {
				start := time.Now()
				c, err := executor.Launch(executor.LaunchConfig{Binary: prog.bin, Logger: hclog.NewNullLogger()})
				if err != nil {
					b.Fatal(err)
				}
				if _, err := c.Version(context.Background(), &proto.VersionRequest{}); err != nil {
					b.Fatal(err)
				}
				ds = append(ds, time.Since(start))
				b.StopTimer()
				c.Kill()
				b.StartTimer()
			}
			p50 := percentile(ds, 0.5)
			b.ReportMetric(ms(p50), "p50-ms")
			b.ReportMetric(ms(percentile(ds, 0.9)), "p90-ms")
			b.ReportMetric(ms(native), "native-p50-ms")
			b.ReportMetric(float64(p50)/float64(native), "x-native")
		})
	}
}

// BenchmarkExecutorRoundTrip is the floor of a start's wire span (the
// Start's round trip less the executor's steps): a request the executor
// answers at once (Version), to an executor launched from the embedded
// program. Beside it, in the same run, the least any two processes pay
// for a request and its answer: a byte written to cat(1) through a pipe
// and read back through another. Each back to back, and alone: 2 ms after
// the last, as a Start comes after the driver's own steps, long enough
// for an idle processor of a VM to halt. It reports the median and 90th
// percentile of each (ms), and the ratio of the medians.
func BenchmarkExecutorRoundTrip(b *testing.B) {
	p, err := benchPrograms()
	if err != nil {
		b.Fatal(err)
	}
	c, err := executor.Launch(executor.LaunchConfig{Binary: p.embedded, Logger: hclog.NewNullLogger()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Kill)
	cat := exec.Command("cat")
	in, err := cat.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cat.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cat.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = in.Close()
		_ = cat.Wait()
	})
	rpc := func() {
		if _, err := c.Version(context.Background(), &proto.VersionRequest{}); err != nil {
			b.Fatal(err)
		}
	}
	pipe := func() {
		var one [1]byte
		if _, err := in.Write(one[:]); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(out, one[:]); err != nil {
			b.Fatal(err)
		}
	}
	const n = 100
	measure := func(call func(), gap time.Duration) []time.Duration {
		took := make([]time.Duration, n)
		for i := range took {
			time.Sleep(gap) // spacing the calls apart, not waiting for anything
			began := time.Now()
			call()
			took[i] = time.Since(began)
		}
		return took
	}
	for b.Loop() {
		for _, gap := range []struct {
			name string
			d    time.Duration
		}{{"back-to-back", 0}, {"alone", 2 * time.Millisecond}} {
			r, p := measure(rpc, gap.d), measure(pipe, gap.d)
			b.ReportMetric(ms(percentile(r, 0.5)), "rpc-"+gap.name+"-p50-ms")
			b.ReportMetric(ms(percentile(r, 0.9)), "rpc-"+gap.name+"-p90-ms")
			b.ReportMetric(ms(percentile(p, 0.5)), "pipe-"+gap.name+"-p50-ms")
			b.ReportMetric(ms(percentile(p, 0.9)), "pipe-"+gap.name+"-p90-ms")
			b.ReportMetric(float64(percentile(r, 0.5))/float64(percentile(p, 0.5)), "x-pipe-"+gap.name)
		}
	}
}

// BenchmarkSpareReady: how soon after a start the node is ready for the
// next one: from StartTask's return until the new spare executor holds the
// module prepared and has settled (the collection after its warm-up done: a
// repeated start's state), for the C and the Go module,
// with spares started from the embedded executor program and from the
// plugin binary, in one run. It includes the guest's own run on the other
// core and the driver's cleanup of the task.
func BenchmarkSpareReady(b *testing.B) {
	p, err := benchPrograms()
	if err != nil {
		b.Fatal(err)
	}
	for _, g := range []struct{ name, module string }{{"c", "probe"}, {"go", "hello-go"}} {
		for _, prog := range []struct{ name, bin string }{{"embedded", p.embedded}, {"plugin", p.plugin}} {
			b.Run(g.name+"/"+prog.name, func(b *testing.B) {
				d := benchDriverWith(b, prog.bin, b.TempDir(), 4)
				startTask(b, d, benchTask(b, g.module, []string{"hello"}))
				var ds []time.Duration
				for b.Loop() {
					b.StopTimer()
					waitPrepared(b, d)
					cfg := benchTask(b, g.module, []string{"hello"})
					if _, _, err := d.StartTask(cfg); err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					returned := time.Now()
					waitPrepared(b, d)
					ds = append(ds, time.Since(returned))
					b.StopTimer()
					ch, err := d.WaitTask(context.Background(), cfg.ID)
					if err != nil {
						b.Fatal(err)
					}
					<-ch
					_ = d.DestroyTask(cfg.ID, true)
					b.StartTimer()
				}
				b.ReportMetric(ms(percentile(ds, 0.5)), "ready-p50-ms")
				b.ReportMetric(ms(percentile(ds, 0.9)), "ready-p90-ms")
			})
		}
	}
}
