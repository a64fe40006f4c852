// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package wasi

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoenig/test/must"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/internal/confinedfs"
)

// testInstance stands in for the executor's instance: arguments, an
// environment, a descriptor table, a stop (the cancel of the context its
// calls are made with), and the counts of the host calls the guard told
// it of, kept as the executor keeps them.
type testInstance struct {
	ctx    context.Context
	cancel context.CancelFunc
	args   []string
	env    []string
	table  *Table

	calls HostCallCount
	// held, write-locked by a test, holds a guest coming back from a host
	// call, as the executor's collection does.
	held sync.RWMutex
}

// newTestInstance is a testInstance with a table of empty standard
// streams; its stop context ends with the test, which then closes its
// table (whatever table it has by then).
func newTestInstance(t *testing.T) *testInstance {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	in := &testInstance{ctx: ctx, cancel: cancel, table: NewTable(Stdio{})}
	t.Cleanup(func() {
		cancel()
		if !in.table.closed {
			in.table.Close()
		}
	})
	return in
}

func (in *testInstance) stop() { in.cancel() }

func (in *testInstance) Args() []string    { return in.args }
func (in *testInstance) Environ() []string { return in.env }
func (in *testInstance) Table() *Table     { return in.table }

func (in *testInstance) CallHost()  { in.calls.Call() }
func (in *testInstance) EnterHost() { in.calls.Enter() }
func (in *testInstance) AbortHost() { in.calls.Abort() }

func (in *testInstance) LeaveHost() {
	in.calls.Leave()
	in.held.RLock()
	in.held.RUnlock() //nolint:staticcheck // SA2001: the wait for the holder is the point
}

var _ Instance = (*testInstance)(nil)

// exitCode is the exit code err ends a guest with, or -1.
func exitCode(err error) int {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		return int(exit.ExitCode())
	}
	return -1
}

// waitUntil waits up to 10 seconds for cond, and fails the test with msg
// if it does not come.
func waitUntil(t *testing.T, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal(msg)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// signature is a WASI preview 1 function's type as the specification
// (witx) gives it: a letter per value, "i" an i32, "I" an i64.
type signature struct{ params, results string }

// specSignatures are all the functions of wasi_snapshot_preview1, written
// from the specification, not from the host: a host function whose type
// differs fails the guest's instantiation (newHost) and
// TestInstantiateExportsPreview1.
var specSignatures = map[string]signature{
	"args_get":                {"ii", "i"},
	"args_sizes_get":          {"ii", "i"},
	"environ_get":             {"ii", "i"},
	"environ_sizes_get":       {"ii", "i"},
	"clock_res_get":           {"ii", "i"},
	"clock_time_get":          {"iIi", "i"},
	"fd_advise":               {"iIIi", "i"},
	"fd_allocate":             {"iII", "i"},
	"fd_close":                {"i", "i"},
	"fd_datasync":             {"i", "i"},
	"fd_fdstat_get":           {"ii", "i"},
	"fd_fdstat_set_flags":     {"ii", "i"},
	"fd_fdstat_set_rights":    {"iII", "i"},
	"fd_filestat_get":         {"ii", "i"},
	"fd_filestat_set_size":    {"iI", "i"},
	"fd_filestat_set_times":   {"iIIi", "i"},
	"fd_pread":                {"iiiIi", "i"},
	"fd_prestat_get":          {"ii", "i"},
	"fd_prestat_dir_name":     {"iii", "i"},
	"fd_pwrite":               {"iiiIi", "i"},
	"fd_read":                 {"iiii", "i"},
	"fd_readdir":              {"iiiIi", "i"},
	"fd_renumber":             {"ii", "i"},
	"fd_seek":                 {"iIii", "i"},
	"fd_sync":                 {"i", "i"},
	"fd_tell":                 {"ii", "i"},
	"fd_write":                {"iiii", "i"},
	"path_create_directory":   {"iii", "i"},
	"path_filestat_get":       {"iiiii", "i"},
	"path_filestat_set_times": {"iiiiIIi", "i"},
	"path_link":               {"iiiiiii", "i"},
	"path_open":               {"iiiiiIIii", "i"},
	"path_readlink":           {"iiiiii", "i"},
	"path_remove_directory":   {"iii", "i"},
	"path_rename":             {"iiiiii", "i"},
	"path_symlink":            {"iiiii", "i"},
	"path_unlink_file":        {"iii", "i"},
	"poll_oneoff":             {"iiii", "i"},
	"proc_exit":               {"i", ""},
	"proc_raise":              {"i", "i"},
	"sched_yield":             {"", "i"},
	"random_get":              {"ii", "i"},
	"sock_accept":             {"iii", "i"},
	"sock_recv":               {"iiiiii", "i"},
	"sock_send":               {"iiiii", "i"},
	"sock_shutdown":           {"ii", "i"},
}

// called are the host functions the tests called through a guest
// (host.call), by name and by name and number of parameters (the variant
// called, "sock_accept/2"): TestMain checks, after a whole run, that
// every one was, each variant of the host's too.
var called sync.Map

// calledKey is called's key of a function's variant of n parameters.
func calledKey(name string, n int) string { return fmt.Sprintf("%s/%d", name, n) }

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	whole := flag.Lookup("test.run").Value.String() == "" && flag.Lookup("test.skip").Value.String() == ""
	if whole {
		var missing []string
		for name := range specSignatures {
			if _, ok := called.Load(name); !ok {
				missing = append(missing, name)
			}
		}
		if len(missing) > 0 {
			sort.Strings(missing)
			fmt.Fprintf(os.Stderr, "FAIL: host functions no test called: %v\n", missing)
			code = 1
		}
		missing = nil
		for _, f := range slices.Concat(functions, variants) {
			if _, ok := called.Load(calledKey(f.name, len(f.params))); !ok {
				missing = append(missing, calledKey(f.name, len(f.params)))
			}
		}
		if len(missing) > 0 {
			sort.Strings(missing)
			fmt.Fprintf(os.Stderr, "FAIL: host functions (name/parameters) no test called: %v\n", missing)
			code = 1
		}
	}
	os.Exit(code)
}

// passThroughGuest assembles a guest that imports every function of
// specSignatures from the host module, with its specification's type, and
// exports, under the same name and with the same type, a function that
// calls it with its own arguments and returns its results; and one page
// of memory, exported as "memory". A test calls a host function as a
// guest does, through wazero, by calling the guest's export.
var passThroughGuest = sync.OnceValue(func() []byte { return assembleGuest(specSignatures) })

// assembleGuest assembles a pass-through guest (see passThroughGuest)
// of the functions sigs.
func assembleGuest(sigs map[string]signature) []byte {
	names := make([]string, 0, len(sigs))
	for name := range sigs {
		names = append(names, name)
	}
	sort.Strings(names)
	valtypes := func(s string) []byte {
		b := []byte{byte(len(s))}
		for _, c := range s {
			if c == 'I' {
				b = append(b, 0x7e) // i64
			} else {
				b = append(b, 0x7f) // i32
			}
		}
		return b
	}
	name := func(s string) []byte { return append(uleb(uint32(len(s))), s...) }
	var types, imports, funcs, exports, code [][]byte
	for i, n := range names {
		s := sigs[n]
		types = append(types, slices.Concat([]byte{0x60}, valtypes(s.params), valtypes(s.results)))
		imports = append(imports, slices.Concat(name(ModuleName), name(n), []byte{0x00}, uleb(uint32(i))))
		funcs = append(funcs, uleb(uint32(i)))
		exports = append(exports, slices.Concat(name(n), []byte{0x00}, uleb(uint32(len(names)+i))))
		body := []byte{0x00} // no locals
		for p := range len(s.params) {
			body = append(append(body, 0x20), uleb(uint32(p))...) // local.get p
		}
		body = append(append(body, 0x10), uleb(uint32(i))...) // call i
		body = append(body, 0x0b)                             // end
		code = append(code, slices.Concat(uleb(uint32(len(body))), body))
	}
	exports = append(exports, slices.Concat(name("memory"), []byte{0x02, 0x00}))
	vec := func(items [][]byte) []byte { return slices.Concat(uleb(uint32(len(items))), slices.Concat(items...)) }
	section := func(id byte, body []byte) []byte { return slices.Concat([]byte{id}, uleb(uint32(len(body))), body) }
	return slices.Concat([]byte("\x00asm\x01\x00\x00\x00"),
		section(1, vec(types)),
		section(2, vec(imports)),
		section(3, vec(funcs)),
		section(5, vec([][]byte{{0x00, 0x01}})), // one memory of one page
		section(7, vec(exports)),
		section(10, vec(code)),
	)
}

func uleb(n uint32) []byte {
	var b []byte
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}

// pageSize is the guest's memory: one page.
const pageSize = 65536

// host is a test's WASI host: this package's module instantiated in a
// wazero runtime, a guest calling it (passThroughGuest) and the instance
// the calls serve.
type host struct {
	t   *testing.T
	in  *testInstance
	r   wazero.Runtime
	mod api.Module
	mem api.Memory
	// next is the first byte of the guest's memory not yet handed out by
	// alloc.
	next uint32
}

// hostOptions are how a test's host differs from the default: wazero's
// interpreter, without the guard.
type hostOptions struct {
	config func() wazero.RuntimeConfig
	guard  bool
	// imports are functions the guest imports besides (or, by the same
	// name, instead of) preview 1's, with their types: which choose the
	// host's variants (Instantiate).
	imports map[string]signature
}

// newHost instantiates the host and a guest calling it, for an instance
// with empty standard streams and nothing else in its table.
func newHost(t *testing.T) *host { return newHostWith(t, hostOptions{}) }

func newHostWith(t *testing.T, o hostOptions) *host {
	t.Helper()
	ctx := context.Background()
	config := wazero.NewRuntimeConfigInterpreter
	if o.config != nil {
		config = o.config
	}
	r := wazero.NewRuntimeWithConfig(ctx, config())
	t.Cleanup(func() { _ = r.Close(ctx) })
	guest := passThroughGuest()
	if o.imports != nil {
		sigs := maps.Clone(specSignatures)
		maps.Copy(sigs, o.imports)
		guest = assembleGuest(sigs)
	}
	compiled, err := r.CompileModule(ctx, guest)
	must.NoError(t, err)
	_, err = Instantiate(ctx, r, o.guard, compiled.ImportedFunctions()...)
	must.NoError(t, err)
	mod, err := r.InstantiateModule(ctx, compiled, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	must.NoError(t, err, must.Sprint("a guest importing every function with its specification's type"))
	return &host{t: t, in: newTestInstance(t), r: r, mod: mod, mem: mod.Memory(), next: 16}
}

// ctx is the context of the instance's calls.
func (h *host) ctx() context.Context { return WithInstance(h.in.ctx, h.in) }

// callErr calls host function name as the guest does, with args (each an
// integer of any type, or a bool), in ctx.
func (h *host) callErr(ctx context.Context, name string, args ...any) ([]uint64, error) {
	h.t.Helper()
	called.Store(name, true)
	f := h.mod.ExportedFunction(name)
	if f == nil {
		h.t.Fatalf("the guest has no %s", name)
	}
	called.Store(calledKey(name, len(f.Definition().ParamTypes())), true)
	params := make([]uint64, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case int:
			params[i] = uint64(v)
		case int64:
			params[i] = uint64(v)
		case uint16:
			params[i] = uint64(v)
		case uint32:
			params[i] = uint64(v)
		case uint64:
			params[i] = v
		case bool:
			if v {
				params[i] = 1
			}
		default:
			h.t.Fatalf("%s: argument %d: %T", name, i, a)
		}
	}
	return f.Call(ctx, params...)
}

// call calls host function name, which must return, and returns its
// errno.
func (h *host) call(name string, args ...any) errno {
	h.t.Helper()
	res, err := h.callErr(h.ctx(), name, args...)
	must.NoError(h.t, err, must.Sprintf("%s%v", name, args))
	return errno(res[0])
}

// expect calls host function name and fails the test unless it returns
// want.
func (h *host) expect(want errno, name string, args ...any) {
	h.t.Helper()
	if got := h.call(name, args...); got != want {
		h.t.Fatalf("%s%v: %s, want %s", name, args, errnoName(got), errnoName(want))
	}
}

// outcome is how a call made on a goroutine of its own ended.
type outcome struct {
	errno   errno
	err     error // the guest ended: a *sys.ExitError
	elapsed time.Duration
}

// start calls host function name on a goroutine of its own, in ctx. The
// test's end stops the instance, which ends any wait of the call, and
// waits for the call to end; a call not ended 10 seconds after that fails
// the test.
func (h *host) start(ctx context.Context, name string, args ...any) <-chan outcome {
	h.t.Helper()
	done := make(chan outcome, 1)
	finished := make(chan struct{})
	h.t.Cleanup(func() {
		h.in.stop()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
			h.t.Errorf("%s did not end after the stop", name)
		}
	})
	began := time.Now()
	go func() {
		defer close(finished)
		var o outcome
		res, err := h.callErr(ctx, name, args...)
		o.elapsed = time.Since(began)
		if err != nil {
			o.err = err
		} else {
			o.errno = errno(res[0])
		}
		done <- o
	}()
	return done
}

// await is the outcome of a call started, which must end within 10
// seconds.
func await(t *testing.T, done <-chan outcome, what string) outcome {
	t.Helper()
	select {
	case o := <-done:
		return o
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not return", what)
		return outcome{}
	}
}

// alloc hands out n bytes of the guest's memory, 8-aligned.
func (h *host) alloc(n uint32) uint32 {
	h.t.Helper()
	p := h.next
	h.next = (h.next + n + 7) &^ 7
	if h.next > pageSize {
		h.t.Fatal("the test used up the guest's memory")
	}
	return p
}

// str puts s into the guest's memory: its address and length.
func (h *host) str(s string) (uint32, uint32) {
	h.t.Helper()
	p := h.alloc(uint32(len(s)))
	must.True(h.t, h.mem.WriteString(p, s))
	return p, uint32(len(s))
}

// bytes is a copy of n bytes of the guest's memory at p.
func (h *host) bytes(p, n uint32) []byte {
	h.t.Helper()
	b, ok := h.mem.Read(p, n)
	must.True(h.t, ok)
	return slices.Clone(b)
}

func (h *host) u32(p uint32) uint32 {
	h.t.Helper()
	v, ok := h.mem.ReadUint32Le(p)
	must.True(h.t, ok)
	return v
}

func (h *host) u64(p uint32) uint64 {
	h.t.Helper()
	v, ok := h.mem.ReadUint64Le(p)
	must.True(h.t, ok)
	return v
}

// iovecs puts buffers of the given sizes into the guest's memory, and an
// iovec array of them: its address, its length, and the buffers'
// addresses.
func (h *host) iovecs(sizes ...uint32) (uint32, uint32, []uint32) {
	h.t.Helper()
	vecs := h.alloc(uint32(len(sizes)) * iovecSize)
	bufs := make([]uint32, len(sizes))
	for i, n := range sizes {
		bufs[i] = h.alloc(n)
		must.True(h.t, h.mem.WriteUint32Le(vecs+uint32(i)*iovecSize, bufs[i]))
		must.True(h.t, h.mem.WriteUint32Le(vecs+uint32(i)*iovecSize+4, n))
	}
	return vecs, uint32(len(sizes)), bufs
}

// ciovecs puts the data into the guest's memory, as an iovec array of a
// buffer per piece.
func (h *host) ciovecs(pieces ...string) (uint32, uint32) {
	h.t.Helper()
	sizes := make([]uint32, len(pieces))
	for i, p := range pieces {
		sizes[i] = uint32(len(p))
	}
	vecs, n, bufs := h.iovecs(sizes...)
	for i, p := range pieces {
		must.True(h.t, h.mem.WriteString(bufs[i], p))
	}
	return vecs, n
}

// write writes data to fd (fd_write): the count written, and the errno.
func (h *host) write(fd uint32, pieces ...string) (uint32, errno) {
	h.t.Helper()
	vecs, n := h.ciovecs(pieces...)
	out := h.alloc(4)
	e := h.call("fd_write", fd, vecs, n, out)
	return h.u32(out), e
}

// read reads up to n bytes from fd (fd_read).
func (h *host) read(fd, n uint32) (string, errno) {
	h.t.Helper()
	vecs, cnt, bufs := h.iovecs(n)
	out := h.alloc(4)
	e := h.call("fd_read", fd, vecs, cnt, out)
	if e != errnoSuccess {
		return "", e
	}
	return string(h.bytes(bufs[0], h.u32(out))), e
}

// open is path_open(dirfd, dirflags, path, oflags, base, inheriting,
// fdflags): the new descriptor, and the errno.
func (h *host) open(dirfd uint32, dirflags uint32, path string, oflags uint16, base, inheriting uint64, fdflags uint16) (uint32, errno) {
	h.t.Helper()
	p, n := h.str(path)
	out := h.alloc(4)
	must.True(h.t, h.mem.WriteUint32Le(out, 0xffffffff))
	e := h.call("path_open", dirfd, dirflags, p, n, oflags, base, inheriting, fdflags, out)
	return h.u32(out), e
}

// mustOpen is open, which must succeed.
func (h *host) mustOpen(dirfd uint32, dirflags uint32, path string, oflags uint16, base, inheriting uint64, fdflags uint16) uint32 {
	h.t.Helper()
	fd, e := h.open(dirfd, dirflags, path, oflags, base, inheriting, fdflags)
	if e != errnoSuccess {
		h.t.Fatalf("path_open(%d, %q): %s", dirfd, path, errnoName(e))
	}
	return fd
}

// pathCall calls a path function name(fd, path, path_len, rest...).
func (h *host) pathCall(name string, fd uint32, path string, rest ...any) errno {
	h.t.Helper()
	p, n := h.str(path)
	return h.call(name, append([]any{fd, p, n}, rest...)...)
}

// expectPath calls path function name(fd, path, path_len, rest...), which
// must return want.
func (h *host) expectPath(want errno, name string, fd uint32, path string, rest ...any) {
	h.t.Helper()
	if got := h.pathCall(name, fd, path, rest...); got != want {
		h.t.Fatalf("%s(%d, %q): %s, want %s", name, fd, path, errnoName(got), errnoName(want))
	}
}

// fdstat is a WASI fdstat.
type fdstat struct {
	filetype         uint8
	flags            uint16
	base, inheriting uint64
}

func (h *host) fdstat(fd uint32) (fdstat, errno) {
	h.t.Helper()
	out := h.alloc(fdstatSize)
	e := h.call("fd_fdstat_get", fd, out)
	b := h.bytes(out, fdstatSize)
	return fdstat{filetype: b[0], flags: le.Uint16(b[2:]), base: le.Uint64(b[8:]), inheriting: le.Uint64(b[16:])}, e
}

func (h *host) mustFdstat(fd uint32) fdstat {
	h.t.Helper()
	st, e := h.fdstat(fd)
	if e != errnoSuccess {
		h.t.Fatalf("fd_fdstat_get(%d): %s", fd, errnoName(e))
	}
	return st
}

// filestat is a WASI filestat.
type filestat struct {
	dev, ino         uint64
	filetype         uint8
	nlink, size      uint64
	atim, mtim, ctim int64
}

func (h *host) readFilestat(p uint32) filestat {
	h.t.Helper()
	b := h.bytes(p, filestatSize)
	return filestat{dev: le.Uint64(b[0:]), ino: le.Uint64(b[8:]), filetype: b[16], nlink: le.Uint64(b[24:]),
		size: le.Uint64(b[32:]), atim: int64(le.Uint64(b[40:])), mtim: int64(le.Uint64(b[48:])), ctim: int64(le.Uint64(b[56:]))}
}

// fdFilestat is fd_filestat_get(fd).
func (h *host) fdFilestat(fd uint32) (filestat, errno) {
	h.t.Helper()
	out := h.alloc(filestatSize)
	e := h.call("fd_filestat_get", fd, out)
	return h.readFilestat(out), e
}

// pathFilestat is path_filestat_get(fd, flags, path).
func (h *host) pathFilestat(fd uint32, flags uint32, path string) (filestat, errno) {
	h.t.Helper()
	p, n := h.str(path)
	out := h.alloc(filestatSize)
	e := h.call("path_filestat_get", fd, flags, p, n, out)
	return h.readFilestat(out), e
}

// A test's mount: the preopened directory dir of the guest, next to a
// directory outside it (outside, holding secret) that nothing the guest
// does may reach, and hostile symlinks in the mount pointing there.
type mount struct {
	fd      uint32 // the preopen's descriptor
	fs      *confinedfs.FS
	dir     string // the mounted host directory
	outside string // a host directory next to it
}

// The entries of a test's mount (see preopen).
const (
	secretContent = "the host's secret"
	fileContent   = "hello, world"
)

// preopen mounts a new host directory and preopens it as guestPath. It
// holds:
//
//	file              a regular file (fileContent)
//	sub/              a directory, with inner (a regular file)
//	empty/            an empty directory
//	link_file         -> file
//	link_sub          -> sub
//	link_out_rel      -> ../outside/secret (leaves the mount)
//	link_out_abs      -> <the host's path of outside/secret>
//	link_out_dir      -> ../outside (a directory outside the mount)
//	link_out_new      -> ../outside/new (nothing there yet)
//	sub/link_up       -> ../file (leaves sub, not the mount)
func (h *host) preopen(guestPath string) mount {
	h.t.Helper()
	base := h.t.TempDir()
	m := mount{dir: filepath.Join(base, "mount"), outside: filepath.Join(base, "outside")}
	for _, d := range []string{m.dir, m.outside, filepath.Join(m.dir, "sub"), filepath.Join(m.dir, "empty")} {
		must.NoError(h.t, os.Mkdir(d, 0o755))
	}
	must.NoError(h.t, os.WriteFile(filepath.Join(m.outside, "secret"), []byte(secretContent), 0o644))
	must.NoError(h.t, os.WriteFile(filepath.Join(m.dir, "file"), []byte(fileContent), 0o644))
	must.NoError(h.t, os.WriteFile(filepath.Join(m.dir, "sub", "inner"), []byte("inner"), 0o644))
	for link, target := range map[string]string{
		"link_file":    "file",
		"link_sub":     "sub",
		"link_out_rel": "../outside/secret",
		"link_out_abs": filepath.Join(m.outside, "secret"),
		"link_out_dir": "../outside",
		"link_out_new": "../outside/new",
		"sub/link_up":  "../file",
	} {
		must.NoError(h.t, os.Symlink(target, filepath.Join(m.dir, link)))
	}
	fs, err := confinedfs.New(m.dir, false)
	must.NoError(h.t, err)
	h.t.Cleanup(func() { _ = fs.Close() })
	m.fs = fs
	m.fd = h.in.table.Preopen(guestPath, fs)
	return m
}

// host is the host path of the mount's p.
func (m mount) host(p string) string { return filepath.Join(m.dir, p) }

// outsideUntouched fails the test if the directory outside the mount
// holds anything but its secret, unchanged.
func (m mount) outsideUntouched(t *testing.T) {
	t.Helper()
	entries, err := os.ReadDir(m.outside)
	must.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	must.Eq(t, []string{"secret"}, names, must.Sprint("the directory outside the mount changed"))
	b, err := os.ReadFile(filepath.Join(m.outside, "secret"))
	must.NoError(t, err)
	must.Eq(t, secretContent, string(b), must.Sprint("the file outside the mount changed"))
}

// hostStat is the host's stat of p, not followed.
func hostStat(t *testing.T, p string) sys.Stat_t {
	t.Helper()
	fi, err := os.Lstat(p)
	must.NoError(t, err)
	return sys.NewStat_t(fi)
}

// exists says whether the mount's p exists (as itself, not followed).
func (m mount) exists(p string) bool {
	_, err := os.Lstat(m.host(p))
	return err == nil
}

// rightsAll asks for every right (path_open keeps what it may give).
const rightsAll = ^uint64(0)

// errnoNames name the errno values in failures.
var errnoNames = map[errno]string{
	errnoSuccess: "SUCCESS", errno2big: "2BIG", errnoAcces: "ACCES", errnoAddrinuse: "ADDRINUSE",
	errnoAgain: "AGAIN", errnoBadf: "BADF", errnoConnaborted: "CONNABORTED", errnoConnrefused: "CONNREFUSED",
	errnoConnreset: "CONNRESET", errnoExist: "EXIST", errnoFault: "FAULT", errnoFbig: "FBIG", errnoIntr: "INTR",
	errnoInval: "INVAL", errnoIO: "IO", errnoIsdir: "ISDIR", errnoLoop: "LOOP", errnoMfile: "MFILE",
	errnoMlink: "MLINK", errnoNametoolong: "NAMETOOLONG", errnoNoent: "NOENT", errnoNomem: "NOMEM",
	errnoNospc: "NOSPC", errnoNosys: "NOSYS", errnoNotconn: "NOTCONN", errnoNotdir: "NOTDIR",
	errnoNotempty: "NOTEMPTY", errnoNotsock: "NOTSOCK", errnoNotsup: "NOTSUP", errnoNotty: "NOTTY",
	errnoOverflow: "OVERFLOW", errnoPerm: "PERM", errnoPipe: "PIPE", errnoRange: "RANGE", errnoRofs: "ROFS",
	errnoSpipe: "SPIPE", errnoXdev: "XDEV", errnoNotcapable: "NOTCAPABLE",
}

func errnoName(e errno) string {
	if n, ok := errnoNames[e]; ok {
		return "E" + n
	}
	return fmt.Sprintf("errno %d", e)
}

// oneOf fails the test unless got is one of want.
func oneOf(t *testing.T, got errno, what string, want ...errno) {
	t.Helper()
	if !slices.Contains(want, got) {
		names := make([]string, len(want))
		for i, w := range want {
			names[i] = errnoName(w)
		}
		t.Fatalf("%s: %s, want one of %s", what, errnoName(got), strings.Join(names, ", "))
	}
}
