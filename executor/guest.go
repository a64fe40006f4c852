// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/experimental/sysfs"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
	"github.com/tetratelabs/wazero/sys"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/internal/confinedfs"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// TrapExitCode is the exit code of a guest that trapped (hit unreachable,
// divided by zero, accessed memory out of bounds, ...). It matches what a
// native program that calls abort() reports on Unix: 128 + SIGABRT.
const TrapExitCode = 134

// maxPages is WebAssembly's own limit for a 32-bit memory (4 GiB).
const maxPages = 65536

const wasiModule = wasi_snapshot_preview1.ModuleName

// guest is one running module instance, from Start to exit.
type guest struct {
	logger hclog.Logger

	runtime wazero.Runtime
	module  api.Module
	mounts  []*confinedfs.FS
	stdout  io.WriteCloser
	stderr  io.WriteCloser

	// memBytes is the size of the guest's linear memory, kept by the memory
	// allocator so that stats never read wazero's memory concurrently.
	memBytes atomic.Uint64

	cancel     context.CancelFunc
	stopOnce   sync.Once
	stopSignal atomic.Int32
	// stopping is closed when a stop is requested; it wakes a sleeping guest
	// so that cancellation takes effect at its next instruction boundary.
	stopping chan struct{}

	done   chan struct{}
	status *proto.ExitStatus
}

// startError is a start failure caused by the task's module or config,
// as opposed to a failure of the node. Its message is written for the
// person who wrote the job.
type startError struct {
	msg string
	// notFound: the module path names nothing in the task's view (it does
	// not exist there, or it leads outside it), as opposed to naming a file
	// that cannot run.
	notFound bool
}

func (e *startError) Error() string { return e.msg }

func userErrorf(format string, args ...any) error {
	return &startError{msg: fmt.Sprintf(format, args...)}
}

// notFoundErrorf is userErrorf for a module path that names nothing in the
// task's view.
func notFoundErrorf(format string, args ...any) error {
	return &startError{msg: fmt.Sprintf(format, args...), notFound: true}
}

// stdio is a guest's standard streams. The guest owns stdout and stderr
// from the moment it is started, and closes them when it exits.
type stdio struct {
	stdin          io.Reader // nil: empty
	stdout, stderr io.WriteCloser
}

// startGuest loads, validates and instantiates the module that req names and
// starts running its entrypoint in the background. When req has a
// StateDir, the exit status is recorded there.
func startGuest(logger hclog.Logger, cache ModuleCache, req *proto.StartRequest, streams stdio) (_ *guest, _ *proto.StartResponse, err error) {
	g := &guest{logger: logger, stdout: streams.stdout, stderr: streams.stderr, stopping: make(chan struct{}), done: make(chan struct{})}
	defer func() {
		if err != nil {
			g.release(context.Background())
		}
	}()
	mounts := make([]Mount, len(req.Mounts))
	for i, m := range req.Mounts {
		mounts[i] = Mount{GuestPath: m.GuestPath, HostPath: m.HostPath, ReadOnly: m.ReadOnly}
	}
	b, err := readModule(mounts, req.Module)
	if err != nil {
		return nil, nil, err
	}
	sum := sha256.Sum256(b)
	digest := hex.EncodeToString(sum[:])
	if want := strings.ToLower(req.Sha256); want != "" && want != digest {
		return nil, nil, userErrorf("module %s has SHA-256 %s, but the task's sha256 is %s: the file is not the one the job pins; fix the artifact source or update sha256", req.Module, digest, want)
	}

	header, err := inspectModule(b)
	if err != nil {
		return nil, nil, userErrorf("module %s: %v", req.Module, err)
	}
	limit := req.MemoryLimitPages
	if limit == 0 || limit > maxPages {
		limit = maxPages
	}
	if header.hasMemory && header.minPages > limit {
		return nil, nil, userErrorf("module %s needs at least %s of linear memory (%d pages), more than this task's cap of %s (%d pages, from %s): raise the task's memory, or build the module with a smaller initial memory",
			req.Module, formatPages(header.minPages), header.minPages, formatPages(limit), limit, req.MemoryLimitSource)
	}

	ctx := context.Background()
	cfg := runtimeConfig(req.Engine).WithMemoryLimitPages(limit)
	comp, err := cache.compile(ctx, cfg, req.Engine, digest, b)
	var cacheErr cacheError
	switch {
	case errors.As(err, &cacheErr):
		return nil, nil, userErrorf("the node's compiled-module cache cannot be used: %v: the plugin's cache_dir must be a directory the Nomad client can write", err)
	case err != nil:
		return nil, nil, userErrorf("module %s is malformed or uses WebAssembly features this node does not support: %v", req.Module, err)
	}
	g.runtime = comp.runtime
	if err := g.instantiate(ctx, comp.module, req, streams.stdin); err != nil {
		return nil, nil, err
	}
	return g, &proto.StartResponse{CacheHit: comp.cacheHit, LoadNanos: comp.took.Nanoseconds(), ModuleSha256: digest, MemoryLimitPages: limit}, nil
}

// runtimeConfig is the configuration every guest runs with. It is also the
// configuration modules are compiled with, so it must not vary per task in
// any way that changes generated code.
func runtimeConfig(engine string) wazero.RuntimeConfig {
	cfg := wazero.NewRuntimeConfigCompiler()
	if engine == EngineInterpreter {
		cfg = wazero.NewRuntimeConfigInterpreter()
	}
	// Cancelling the guest's context must stop even a guest that spins in a
	// loop without calling the host, or a stop would have to kill the
	// executor.
	return cfg.WithCloseOnContextDone(true).WithCoreFeatures(api.CoreFeaturesV2)
}

// readModule reads the module at guestPath through the mount that holds it,
// so that a symlink cannot lead outside the task's view.
func readModule(mounts []Mount, guestPath string) ([]byte, error) {
	m, rel, err := ResolveGuestPath(mounts, guestPath)
	if err != nil {
		return nil, notFoundErrorf("module: %v", err)
	}
	root, err := os.OpenRoot(m.HostPath)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", m.GuestPath, err)
	}
	defer root.Close()
	f, err := root.Open(rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, notFoundErrorf("module %s does not exist in the task's view: check the module path and the artifact block that should download it (for an artifact, destination defaults to local/)", guestPath)
	case err != nil && strings.Contains(err.Error(), "escapes from parent"):
		return nil, notFoundErrorf("module %s resolves outside the task's view through a symlink; the module must be a file inside %s", guestPath, m.GuestPath)
	case err != nil:
		return nil, userErrorf("module %s cannot be opened: %v", guestPath, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return nil, userErrorf("module %s is a directory, not a .wasm file", guestPath)
	}
	return io.ReadAll(f)
}

// instantiate checks the module's imports and entrypoint, wires WASI and
// starts the entrypoint.
func (g *guest) instantiate(ctx context.Context, mod wazero.CompiledModule, req *proto.StartRequest, stdin io.Reader) error {
	wasi, err := wasi_snapshot_preview1.Instantiate(ctx, g.runtime)
	if err != nil {
		return fmt.Errorf("instantiate WASI: %w", err)
	}
	if err := checkImports(mod, wasi.(api.Module)); err != nil {
		return userErrorf("module %s %v", req.Module, err)
	}
	entry := req.Entrypoint
	def, ok := mod.ExportedFunctions()[entry]
	if !ok {
		return userErrorf("module %s does not export the entrypoint function %q; it exports %s. Set entrypoint to one of those, or build a WASI command (one that exports _start)",
			req.Module, entry, exportedFunctions(mod))
	}
	if n := len(def.ParamTypes()); n != 0 {
		return userErrorf("module %s: entrypoint %q takes %d parameters, but it is called with none; export a function without parameters", req.Module, entry, n)
	}

	fsConfig := wazero.NewFSConfig()
	for _, m := range req.Mounts {
		fsys, err := confinedfs.New(m.HostPath, m.ReadOnly)
		if err != nil {
			return fmt.Errorf("mount %s: %w", m.GuestPath, err)
		}
		g.mounts = append(g.mounts, fsys)
		fsConfig = fsConfig.(sysfs.FSConfig).WithSysFSMount(fsys, m.GuestPath)
	}
	config := wazero.NewModuleConfig().
		WithArgs(append([]string{path.Base(req.Module)}, req.Args...)...).
		WithStdout(g.stdout).
		WithStderr(g.stderr).
		WithFSConfig(fsConfig).
		WithSysWalltime().
		WithSysNanotime().
		WithNanosleep(g.sleep).
		WithRandSource(rand.Reader).
		// The entrypoint runs in the background after Start returns, not
		// during instantiation.
		WithStartFunctions()
	if stdin != nil {
		config = config.WithStdin(stdin)
	}
	for _, k := range slices.Sorted(maps.Keys(req.Env)) {
		config = config.WithEnv(k, req.Env[k])
	}

	runCtx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	runCtx = experimental.WithMemoryAllocator(runCtx, experimental.MemoryAllocatorFunc(g.allocate))
	if g.module, err = g.runtime.InstantiateModule(runCtx, mod, config); err != nil {
		cancel()
		return userErrorf("module %s failed to instantiate: %v", req.Module, err)
	}
	fn := g.module.ExportedFunction(entry)
	var init api.Function
	if entry != "_start" {
		// A reactor is initialised before any other export is called.
		init = g.module.ExportedFunction("_initialize")
	}
	go g.run(runCtx, init, fn, req.StateDir)
	return nil
}

// checkImports lists every import the node does not provide.
func checkImports(mod wazero.CompiledModule, wasi api.Module) error {
	provided := wasi.ExportedFunctionDefinitions()
	var missing []string
	legacy := false
	for _, f := range mod.ImportedFunctions() {
		module, name, _ := f.Import()
		if module == wasiModule {
			if _, ok := provided[name]; ok {
				continue
			}
		}
		legacy = legacy || module == "wasi_unstable"
		missing = append(missing, module+"."+name)
	}
	for _, m := range mod.ImportedMemories() {
		module, name, _ := m.Import()
		missing = append(missing, module+"."+name+" (memory)")
	}
	if len(missing) == 0 {
		return nil
	}
	sort.Strings(missing)
	missing = slices.Compact(missing)
	msg := fmt.Sprintf("imports what this node does not provide: %s. The driver provides WASI preview 1 (%s) and nothing else: build the module for wasm32-wasip1 without host-specific imports",
		strings.Join(missing, ", "), wasiModule)
	if legacy {
		msg += " (wasi_unstable is the pre-release WASI snapshot 0; a current toolchain targets wasi_snapshot_preview1)"
	}
	return errors.New(msg)
}

func exportedFunctions(mod wazero.CompiledModule) string {
	names := slices.Sorted(maps.Keys(mod.ExportedFunctions()))
	if len(names) == 0 {
		return "no functions"
	}
	return strings.Join(names, ", ")
}

// taskStdio opens the task's log FIFOs. Writes go straight to the FIFOs so
// that output streams while the guest runs.
func taskStdio(req *proto.StartRequest) (stdio, error) {
	stdout, err := openLog(req.StdoutPath)
	if err != nil {
		return stdio{}, fmt.Errorf("open stdout: %w", err)
	}
	stderr, err := openLog(req.StderrPath)
	if err != nil {
		_ = stdout.Close()
		return stdio{}, fmt.Errorf("open stderr: %w", err)
	}
	return stdio{stdout: stdout, stderr: stderr}, nil
}

func openLog(p string) (io.WriteCloser, error) {
	if p == "" {
		return nopCloser{io.Discard}, nil
	}
	return os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// sleep is the guest's nanosleep: real time, cut short by a stop request.
// A cut-short sleep does not return to the guest: wazero notices a
// cancelled context only at function calls and loop iterations, and the
// guest could otherwise run on to a normal exit. It ends the guest as
// proc_exit does, with the exit code wazero uses for a cancelled context.
func (g *guest) sleep(ns int64) {
	t := time.NewTimer(time.Duration(ns))
	defer t.Stop()
	select {
	case <-t.C:
	case <-g.stopping:
		panic(sys.NewExitError(sys.ExitCodeContextCanceled))
	}
}

// allocate backs the guest's linear memory. wazero enforces the page limit
// before asking for more; this only records the size for stats.
func (g *guest) allocate(capacity, limit uint64) experimental.LinearMemory {
	m := &linearMemory{max: limit, size: &g.memBytes}
	m.buf = make([]byte, 0, capacity)
	return m
}

type linearMemory struct {
	buf  []byte
	max  uint64
	size *atomic.Uint64
}

func (m *linearMemory) Reallocate(size uint64) []byte {
	if size > m.max {
		return nil
	}
	if size <= uint64(cap(m.buf)) {
		m.buf = m.buf[:size]
	} else {
		// Grow geometrically, as append would, but never past the cap.
		grown := make([]byte, size, min(max(size, 2*uint64(cap(m.buf))), m.max))
		copy(grown, m.buf)
		m.buf = grown
	}
	m.size.Store(size)
	return m.buf
}

func (m *linearMemory) Free() {
	m.buf = nil
	m.size.Store(0)
}

// run calls the entrypoint, records how the guest ended and releases it.
func (g *guest) run(ctx context.Context, init, fn api.Function, stateDir string) {
	var err error
	if init != nil {
		_, err = init.Call(ctx)
	}
	if err == nil {
		_, err = fn.Call(ctx)
	}
	status := g.exitStatus(err)
	if status.Error != "" {
		fmt.Fprintf(g.stderr, "%s\n", status.Error)
	}
	g.logger.Info("guest exited", "exit_code", status.ExitCode, "signal", status.Signal, "error", status.Error)
	g.release(context.Background())
	if err := writeExitStatus(stateDir, status); err != nil {
		g.logger.Error("cannot record exit status", "error", err)
	}
	g.status = status
	close(g.done)
}

// exitStatus maps how the entrypoint returned to a process-like exit status.
func (g *guest) exitStatus(err error) *proto.ExitStatus {
	s := &proto.ExitStatus{ExitedAtUnixNano: time.Now().UnixNano()}
	var exit *sys.ExitError
	stopSig := g.stopSignal.Load()
	switch {
	case err == nil:
	case errors.As(err, &exit) && (exit.ExitCode() == sys.ExitCodeContextCanceled || exit.ExitCode() == sys.ExitCodeDeadlineExceeded) && stopSig != 0:
		s.Signal = stopSig
		s.ExitCode = 128 + stopSig
	case errors.As(err, &exit):
		s.ExitCode = int32(exit.ExitCode())
	default:
		// Anything else the call returns is a trap: the first line names it,
		// the rest is wazero's stack trace.
		s.ExitCode = TrapExitCode
		s.Error = "wasm trap: " + strings.TrimPrefix(err.Error(), "wasm error: ")
	}
	return s
}

// stop asks the guest to stop: its context is cancelled, which wazero
// observes at the next function call or loop iteration, and a sleep in
// progress is cut short.
func (g *guest) stop(signal int32) {
	g.stopOnce.Do(func() {
		g.stopSignal.Store(signal)
		close(g.stopping)
		g.cancel()
	})
}

// release closes the runtime, the mounts and the guest's streams. It is
// called once: by run, or by startGuest when the guest cannot start.
func (g *guest) release(ctx context.Context) {
	if g.cancel != nil {
		g.cancel()
	}
	if g.runtime != nil {
		_ = g.runtime.Close(ctx)
	}
	for _, m := range g.mounts {
		_ = m.Close()
	}
	for _, w := range []io.WriteCloser{g.stdout, g.stderr} {
		if w != nil {
			_ = w.Close()
		}
	}
}
