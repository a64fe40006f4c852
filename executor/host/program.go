// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/dataseg"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/memory"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/modcache"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/wasi"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// maxPages is WebAssembly's own limit for a 32-bit memory (4 GiB).
const maxPages = 65536

const wasiModule = wasi.ModuleName

// coreFeatures is the WebAssembly feature set guests get; Features reports
// it, so the attributes cannot drift from what tasks run with.
const coreFeatures = api.CoreFeaturesV2

// Interruption. wazero reaches a guest that spins without calling the
// host only through a check compiled into every loop back-edge and
// function entry (WithCloseOnContextDone), which calls into Go each time
// and makes CPU-bound code about ten times slower (wazero#2466). So:
//   - a program whose instances share their process with others (the HTTP
//     trigger's per-request instances, nomad alloc exec's) is compiled with
//     the check, so that one instance can be stopped alone;
//   - the task's own instance in command mode has its executor to itself
//     and runs without it, at the compiler's speed. A stop reaches it at
//     its next host call (the WASI host's guard); one that spins in pure
//     compute is ended by its executor's exit, once the exit status is
//     recorded (see server.stopMain).
//
// checkEverywhere is the one line to change when a wazero release makes
// the check cheap: every program is then compiled with it, and make
// bench's compute row shows what that costs.
const checkEverywhere = false

// interruptible says whether a program is compiled with the check: one
// whose instances share their process is.
func interruptible(shared bool) bool { return checkEverywhere || shared }

// runtimeConfig is the configuration programs run with and modules are
// compiled with. It must not vary per task in any way that changes
// generated code beyond what the node's cache is keyed by (module, engine,
// interruptible). The memory cap is per instance (see instance.allocate),
// not a runtime setting.
func runtimeConfig(engine string, interruptible bool) wazero.RuntimeConfig {
	cfg := wazero.NewRuntimeConfigCompiler()
	if engine == executor.EngineInterpreter {
		cfg = wazero.NewRuntimeConfigInterpreter()
	}
	return cfg.WithCloseOnContextDone(interruptible).WithCoreFeatures(coreFeatures)
}

// validateConfig is what a module that failed to compile is compiled
// again with, to tell a module at fault from a node that is
// (modcache.Cache.Validate): the interpreter, with the features guests get.
func validateConfig() wazero.RuntimeConfig {
	return runtimeConfig(executor.EngineInterpreter, false)
}

// compiled is a module compiled through the node's cache (or prepared by
// a spare), with what the executor adds to it.
type compiled struct {
	modcache.Compiled
	// interruptible: compiled with wazero's per-loop check.
	interruptible bool
	// wasi is the WASI host module in the runtime, once instantiated.
	wasi api.Module
	// image is the module's data, which every instance's memory starts
	// with, where the module was compiled without its data section; nil
	// where wazero applies the data section itself.
	image *memory.Image
}

// close releases the runtime (and with it the compiled module and the
// WASI host) and the memory image.
func (c *compiled) close(ctx context.Context) error {
	err := c.Runtime.Close(ctx)
	if c.image != nil {
		c.image.Close()
	}
	return err
}

// minImage is the least data for which a module is compiled without its
// data section and its instances map a memory image (dataseg.Split,
// memory.Image): below it, copying the data into each instance costs less
// than mapping the image and faulting its pages in. A Go module has about
// a megabyte; a small C module a few kilobytes.
const minImage = 64 << 10

// splitData is module b as the executor compiles it, and the data its
// instances' memories start with where that is not in it: a module that
// defines its memory and has at least minImage bytes of data that Split
// can take out, filling at least a quarter of the span from offset 0 to
// the end of its last segment, is compiled without its data section; any other has its
// data segments merged (dataseg.Coalesce), and wazero applies them.
// Which it is follows from b alone: the node's cache keeps one form of a
// module.
//
// The parts are what the memory image is made of (memory.NewImage), nil
// where the data section stays in the module.
func splitData(b []byte) ([]byte, []memory.Part) {
	if h, err := inspectModule(b); err == nil && h.hasMemory && !h.memoryImported {
		if module, segs, ok := dataseg.Split(b, uint64(h.minPages)*executor.PageSize); ok {
			parts := make([]memory.Part, len(segs))
			var n int
			for i, s := range segs {
				parts[i] = memory.Part{Offset: uint64(s.Offset), Data: s.Data}
				n += len(s.Data)
			}
			// Dense enough: a page of the image that holds no data is
			// still the image's memory once a guest has read it (a
			// memfd's hole is filled as it is faulted in).
			if last := segs[len(segs)-1]; n >= minImage && uint64(n)*4 >= uint64(last.Offset)+uint64(len(last.Data)) {
				return module, parts
			}
		}
	}
	b, _ = dataseg.Coalesce(b)
	return b, nil
}

// compile compiles b (whose SHA-256 is digest; module names it in
// messages) through cache for engine, with the per-loop check or not.
// Its errors are classified (executor.Error).
//
// What is compiled is b without its data section, which the instances'
// memories then map, or with its data segments merged (splitData): the
// same module to the guest, whose instances start without copying a Go
// module's megabyte of data, or applying its tens of thousands of segments
// one by one. The cache is keyed by b's digest (modcache names the form in
// its directories).
//
// Loaded into cache.Blank (a runtime made ahead, with the WASI host of
// every function), the program keeps that WASI host where it matches
// what the module imports; where it does not (a function imported with
// another of its signatures), that host is closed, and instantiateWASI
// makes the module's own in the same runtime.
func compile(ctx context.Context, cache modcache.Cache, engine string, interruptible bool, digest, module string, b []byte) (*compiled, error) {
	var parts []memory.Part
	c, err := compileSource(ctx, cache, engine, interruptible, digest, module, func() []byte {
		var src []byte
		src, parts = splitData(b)
		return src
	})
	if err != nil {
		return nil, err
	}
	if c.FromBlank {
		host := c.Runtime.Module(wasi.ModuleName)
		if host != nil && !importsMatch(c.Module, host) {
			if err := host.Close(ctx); err != nil {
				_ = c.close(ctx)
				return nil, executor.NodeErrorf("close the WASI host made ahead: %v", err)
			}
			host = nil
		}
		c.wasi = host
	}
	if parts != nil {
		c.image = memory.NewImage(parts)
	}
	return c, nil
}

// compileSource compiles what source makes (called once: a module as
// splitData makes it from the module whose SHA-256 is digest) through
// cache, which checks the module's compiled entry meanwhile: what compile
// does, but for the memory image, which only a process that instantiates
// the module needs (not the compile process).
func compileSource(ctx context.Context, cache modcache.Cache, engine string, interruptible bool, digest, module string, source func() []byte) (*compiled, error) {
	key := modcache.Key{Engine: engine, Interruptible: interruptible, Digest: digest}
	c, err := cache.Compile(ctx, runtimeConfig(engine, interruptible), key, module, source)
	if errors.Is(err, modcache.ErrNotCached) {
		err = executor.NotCompiledErrorf("module %s has no compiled code in the node's cache, and the shared executor compiles none itself: the driver compiles it within the task's memory", module)
	}
	if err != nil {
		return nil, err
	}
	return &compiled{Compiled: *c, interruptible: interruptible}, nil
}

// instantiateWASI instantiates the WASI host module in c's runtime, for
// its module's imports (which choose the variants of the socket
// extension's functions), once:
// a spare does it ahead of the task, with the rest of its preparation.
func (c *compiled) instantiateWASI(ctx context.Context) (api.Module, error) {
	if c.wasi == nil {
		m, err := wasi.Instantiate(ctx, c.Runtime, !c.interruptible, c.Module.ImportedFunctions()...)
		if err != nil {
			return nil, err
		}
		c.wasi = m.(api.Module)
	}
	return c.wasi, nil
}

// programSpec is what a program is made of.
type programSpec struct {
	// Module is the module's path in the guest's view; argv[0] is its base
	// name, and messages name it.
	Module string
	Sha256 string // expected digest, or empty
	// Pulled: the module is the driver's copy of what it pulled from a
	// registry (StartRequest.module_file), and Sha256 what it pulled: a
	// mismatch is a damaged copy on the node, not the job's pin.
	Pulled     bool
	Engine     string // resolved: compiler or interpreter
	Entrypoint string
	// Interruptible: compiled with wazero's per-loop check, for instances
	// that share their process (see interruptible).
	Interruptible bool
	// View is the guest's view of the host, the task's: the program uses
	// it and does not close it.
	View view
	Env  map[string]string
	// Network is the task's way out, which every instance of its programs
	// gets (sock_open, sock_connect, sock_getaddrinfo); nil: none (an
	// instance's sockets are then its listeners alone).
	Network *taskNetwork
	// MemoryLimitPages caps each instance's linear memory; 0 means the most
	// a 32-bit memory can have. MemoryLimitSource says where it comes from.
	MemoryLimitPages  uint32
	MemoryLimitSource string
}

// program is a module made ready to run, for as long as the task lives:
// its runtime, the compiled module, the WASI host module, the guest's
// filesystem view and environment, the memory cap and the stop context.
// Each run of it is an instance (see start): the task's own, one per
// nomad alloc exec, later one per HTTP request. Nothing is decoded or
// compiled per instance.
type program struct {
	logger hclog.Logger
	spec   programSpec
	digest string
	limit  uint32 // effective memory cap in pages
	// minBytes is the module's initial linear memory.
	minBytes uint64
	// hasStart: the module has a start function, guest code that runs
	// while an instance is instantiated.
	hasStart bool

	runtime wazero.Runtime
	module  wazero.CompiledModule
	// config is every instance's module configuration: only what wazero
	// itself reads. What a guest sees of the host (arguments,
	// environment, streams, files, clocks, sockets) is the WASI host's
	// (package wasi), which does not read it.
	config wazero.ModuleConfig

	// ctx ends when the program is stopped or closed; every instance's
	// context derives from it.
	ctx    context.Context
	cancel context.CancelFunc

	stopMu     sync.Mutex
	stopSignal int32 // the signal of the program's stop, 0 until then

	cacheHit bool
	loadTook time.Duration
	repaired string
	// comp is what the program was made from; keep, when set, takes it
	// back once the program is closed (the shared executor's keptSet),
	// and closeOnce makes close run once.
	comp      *compiled
	keep      func(*compiled) bool
	closeOnce sync.Once
	// prepared: the module was compiled ahead of the task, by the spare,
	// or kept by the shared executor from an earlier task of it.
	prepared bool

	// environ is the program's environment as the guest gets it, sorted
	// by name (made once).
	environ func() environ
	// envNames is the set of its names (made once).
	envNames func() map[string]bool

	// stuck: an instance's start function is still running after its
	// instantiation timed out; its code and memory must stay mapped until
	// the process ends (see close).
	stuck atomic.Bool
}

// loadProgram checks the module b (spec.Module, read by readModule, whose
// SHA-256 is digest), compiles it through the node's cache unless it comes
// already compiled (warm: prepared by a spare executor), and prepares its
// WASI host and filesystem view. Its errors are classified
// (executor.Error).
func loadProgram(ctx context.Context, logger hclog.Logger, cache modcache.Cache, spec programSpec, b []byte, digest string, warm *compiled) (_ *program, err error) {
	var p *program
	defer func() {
		// Once p exists, p.close releases the runtime.
		if err != nil && p == nil && warm != nil {
			_ = warm.close(ctx)
		}
	}()
	if want := strings.ToLower(spec.Sha256); want != "" && want != digest {
		if spec.Pulled {
			return nil, executor.NodeErrorf("module %s: the node's copy of what was pulled has SHA-256 %s, not the %s pulled: it was altered on the node after the pull; the driver removes it, and the next start pulls the module again", spec.Module, digest, want)
		}
		return nil, executor.JobErrorf("module %s has SHA-256 %s, but the task's sha256 is %s: the file is not the one the job pins; fix the artifact source or update sha256", spec.Module, digest, want)
	}
	if err := checkEnv(spec.Env); err != nil {
		return nil, executor.JobErrorf("%v", err)
	}
	header, err := inspectModule(b)
	if err != nil {
		return nil, executor.JobErrorf("module %s: %v", spec.Module, err)
	}
	limit := spec.MemoryLimitPages
	if limit == 0 || limit > maxPages {
		limit = maxPages
	}
	if header.hasMemory && header.minPages > limit {
		return nil, executor.JobErrorf("module %s needs at least %s of linear memory (%d pages), more than this task's cap of %s (%d pages, from %s): raise the task's memory, or build the module with a smaller initial memory",
			spec.Module, formatPages(header.minPages), header.minPages, formatPages(limit), limit, spec.MemoryLimitSource)
	}

	comp := warm
	if comp == nil {
		if comp, err = compile(ctx, cache, spec.Engine, spec.Interruptible, digest, spec.Module, b); err != nil {
			return nil, err
		}
	}
	p = &program{logger: logger, spec: spec, digest: digest, limit: limit, minBytes: uint64(header.minPages) * executor.PageSize, hasStart: header.hasStart, runtime: comp.Runtime, module: comp.Module,
		cacheHit: comp.Hit, loadTook: comp.Took, repaired: comp.Repaired, prepared: warm != nil, comp: comp}
	p.environ = sync.OnceValue(func() environ { return envOf(spec.Env) })
	p.envNames = sync.OnceValue(func() map[string]bool {
		names := make(map[string]bool, len(spec.Env))
		for k := range spec.Env {
			names[k] = true
		}
		return names
	})
	p.ctx, p.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			p.close()
		}
	}()
	wasiHost, err := comp.instantiateWASI(ctx)
	if err != nil {
		return nil, executor.NodeErrorf("instantiate WASI: %v", err)
	}
	if err := checkImports(p.module, wasiHost); err != nil {
		return nil, executor.JobErrorf("module %s %v", spec.Module, err)
	}
	def, ok := p.module.ExportedFunctions()[spec.Entrypoint]
	if !ok {
		return nil, executor.JobErrorf("module %s does not export the entrypoint function %q; it exports %s. Set entrypoint to one of those, or build a WASI command (one that exports _start)",
			spec.Module, spec.Entrypoint, exportedFunctions(p.module))
	}
	if n := len(def.ParamTypes()); n != 0 {
		return nil, executor.JobErrorf("module %s: entrypoint %q takes %d parameters, but it is called with none; export a function without parameters", spec.Module, spec.Entrypoint, n)
	}
	p.config = wazero.NewModuleConfig().
		// Instances of one program run side by side: none has a name.
		WithName("").
		// The entrypoint runs after instantiation (see start), not during it.
		WithStartFunctions().
		// wazero builds a system context for every instance from these,
		// though none of its functions is called: left unset, it makes a
		// deterministic random source, a math/rand generator seeded per
		// instance (10 µs, a third of a small HTTP handler's instance).
		WithRandSource(rand.Reader).
		WithSysWalltime().
		WithSysNanotime()
	return p, nil
}

// firstListenerFD is the guest's file descriptor of the first granted
// listener: its table holds stdio, then the mounts, then the listeners.
func (p *program) firstListenerFD() int { return 3 + len(p.spec.View) }

// isBindError says whether err is a failure to bind a listener.
func isBindError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "listen"
}

func describeListeners(ls []*proto.Listener) string {
	var parts []string
	for _, l := range ls {
		parts = append(parts, fmt.Sprintf("%s on %s", l.Label, executor.ListenerAddress(l)))
	}
	return strings.Join(parts, ", ")
}

// stop asks every instance of the program to stop, recording signal as
// the cause; instances started afterwards are stopped at once.
func (p *program) stop(signal int32) {
	p.stopMu.Lock()
	if p.stopSignal == 0 {
		p.stopSignal = signal
	}
	p.stopMu.Unlock()
	p.cancel()
}

func (p *program) stoppedBy() int32 {
	p.stopMu.Lock()
	defer p.stopMu.Unlock()
	return p.stopSignal
}

// close releases the runtime (and with it every instance); not for a
// stuck program, whose guest still runs in it: the process's end releases
// that. The view is the task's, closed once every program is.
func (p *program) close() {
	p.closeOnce.Do(func() {
		p.cancel()
		if p.stuck.Load() {
			return
		}
		// The shared executor keeps the compiled module for the next task
		// of it (keptSet); nothing of this program's instances is in it.
		if p.keep != nil && p.keep(p.comp) {
			return
		}
		if p.comp != nil {
			_ = p.comp.close(context.Background())
		}
	})
}

// checkModuleSize refuses a module file larger than maxBytes (when
// positive) before it is read.
func checkModuleSize(f *os.File, module string, maxBytes int64) error {
	st, err := f.Stat()
	if err != nil {
		return executor.NodeErrorf("read module %s: %v", module, err)
	}
	if maxBytes > 0 && st.Size() > maxBytes {
		return executor.JobErrorf("module %s is %d bytes, more than this node's max_module_bytes (%d): the node's operator sets that bound in the plugin config", module, st.Size(), maxBytes)
	}
	return nil
}

// moduleDigest is the lowercase hex SHA-256 of module b.
func moduleDigest(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// checkImports lists every import the node does not provide.
// maxListedImports bounds the missing imports an error names.
const maxListedImports = 20

func checkImports(mod wazero.CompiledModule, wasiHost api.Module) error {
	provided := wasiHost.ExportedFunctionDefinitions()
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
	listed := strings.Join(missing, ", ")
	if len(missing) > maxListedImports {
		// A module may import thousands: the error (and the task event)
		// names the first ones.
		listed = fmt.Sprintf("%s and %d more", strings.Join(missing[:maxListedImports], ", "), len(missing)-maxListedImports)
	}
	msg := fmt.Sprintf("imports what this node does not provide: %s. The driver provides WASI preview 1 (%s) and nothing else: build the module for wasm32-wasip1 without host-specific imports",
		listed, wasiModule)
	if legacy {
		msg += " (wasi_unstable is the pre-release WASI snapshot 0; a current toolchain targets wasi_snapshot_preview1)"
	}
	return errors.New(msg)
}

// importsMatch says whether every WASI function mod imports that host
// exports has the signature mod imports it with (a function the host
// lacks is checkImports' to report).
func importsMatch(mod wazero.CompiledModule, host api.Module) bool {
	provided := host.ExportedFunctionDefinitions()
	for _, f := range mod.ImportedFunctions() {
		module, name, _ := f.Import()
		if module != wasiModule {
			continue
		}
		if p, ok := provided[name]; ok && (!slices.Equal(p.ParamTypes(), f.ParamTypes()) || !slices.Equal(p.ResultTypes(), f.ResultTypes())) {
			return false
		}
	}
	return true
}

func exportedFunctions(mod wazero.CompiledModule) string {
	names := slices.Sorted(maps.Keys(mod.ExportedFunctions()))
	if len(names) == 0 {
		return "no functions"
	}
	return strings.Join(names, ", ")
}

// readAll reads f whole, in one allocation of its size when it has one.
func readAll(f *os.File) ([]byte, error) {
	st, err := f.Stat()
	if err != nil || st.Size() <= 0 {
		return io.ReadAll(f)
	}
	b := make([]byte, st.Size())
	n, err := io.ReadFull(f, b)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return b[:n], nil // shrank while read
	}
	if err != nil {
		return nil, err
	}
	// It may also have grown: read the rest.
	rest, err := io.ReadAll(f)
	return append(b, rest...), err
}
