// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package testmodule builds the test guests in executor/testdata from their
// sources, once per content, for the tests of every package. It is for
// tests only.
package testmodule

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// A module's recipe: its sources and how to build them.
type recipe struct {
	sources []string
	build   func(srcDir, out string) *exec.Cmd
}

func clang(src string, flags ...string) func(string, string) *exec.Cmd {
	return func(srcDir, out string) *exec.Cmd {
		args := append([]string{"--target=wasm32-wasi", "-O2", "-Wl,--strip-all"}, flags...)
		args = append(args, filepath.Join(srcDir, src), "-o", out)
		return exec.Command("clang-14", args...)
	}
}

var recipes = map[string]recipe{
	// probe: the multi-purpose C guest (see probe.c).
	"probe": {[]string{"probe.c"}, clang("probe.c")},
	// bigmem: probe declaring 128 MiB of initial linear memory.
	"bigmem": {[]string{"probe.c"}, clang("probe.c", "-Wl,--initial-memory=134217728")},
	// imports: needs env.host_magic and env.host_other.
	"imports": {[]string{"imports.c"}, clang("imports.c")},
	// reactor: no _start, exports run.
	"reactor": {[]string{"reactor.c"}, clang("reactor.c", "-mexec-model=reactor")},
	// hello-go: a Go wasip1 guest.
	"hello-go": {[]string{"hello-go/main.go"}, goWasip1("hello-go")},
	// wagi: the C handler of the HTTP trigger, PATH_INFO selecting its
	// behaviour (see wagi.c).
	"wagi": {[]string{"wagi.c"}, clang("wagi.c")},
	// wagi-bigmem: wagi declaring 40 MiB of initial linear memory.
	"wagi-bigmem": {[]string{"wagi.c"}, clang("wagi.c", "-Wl,--initial-memory=41943040")},
	// wagi-go: the Go wasip1 handler of the HTTP trigger.
	"wagi-go": {[]string{"wagi-go/main.go"}, goWasip1("wagi-go")},
	// listen: the C HTTP server of the listener example, on the granted
	// listener WASM_LISTENER_HTTP.
	"listen": {[]string{"../../example-jobs/src/serve.c"}, clang("../../example-jobs/src/serve.c")},
	// connect: an outbound TCP client through WasmEdge's socket
	// extension (see connect.c).
	"connect": {[]string{"connect.c"}, clang("connect.c")},
	// connect-go: the same in Go, with github.com/stealthrocket/net's
	// wasip1.Dial.
	"connect-go": {[]string{"connect-go/main.go", "connect-go/go.mod", "connect-go/go.sum"}, goWasip1("connect-go")},
	// files: the file-heavy guest of the WASI host's benchmark.
	"files": {[]string{"files.c"}, clang("files.c")},
	// visits: the outbound example's HTTP handler, which calls a counter
	// at UPSTREAM on every request.
	"visits": {[]string{"../../example-jobs/src/visits.c"}, clang("../../example-jobs/src/visits.c")},
	// image: 96 KiB of data, which its instances map (see image.c).
	"image": {[]string{"image.c"}, clang("image.c")},
	// compute: the CPU-bound guest of the compute benchmark.
	"compute": {[]string{"compute.c"}, clang("compute.c")},
	// listen-go: a Go wasip1 HTTP server on WASM_LISTENER_HTTP.
	"listen-go": {[]string{"listen-go/main.go"}, goWasip1("listen-go")},
}

// goWasip1 builds the Go guest in the named directory of testdata for
// GOOS=wasip1.
func goWasip1(dir string) func(string, string) *exec.Cmd {
	return func(srcDir, out string) *exec.Cmd {
		cmd := exec.Command("go", "build", "-o", out, ".")
		cmd.Dir = filepath.Join(srcDir, dir)
		cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
		return cmd
	}
}

// gccStatic builds a C test guest as a native static binary.
func gccStatic(src string) func(string, string) *exec.Cmd {
	return func(srcDir, out string) *exec.Cmd {
		return exec.Command("gcc", "-O2", "-static", filepath.Join(srcDir, src), "-o", out)
	}
}

// goNative builds the Go guest in the named directory of testdata for the
// host, statically (CGO_ENABLED=0).
func goNative(dir string) func(string, string) *exec.Cmd {
	return func(srcDir, out string) *exec.Cmd {
		cmd := exec.Command("go", "build", "-o", out, ".")
		cmd.Dir = filepath.Join(srcDir, dir)
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		return cmd
	}
}

// natives are the native builds equivalent to the test modules, the
// baselines of the benchmarks: static binaries, as a WebAssembly module
// is self-contained.
var natives = map[string]recipe{
	"probe":    {[]string{"probe.c"}, gccStatic("probe.c")},
	"compute":  {[]string{"compute.c"}, gccStatic("compute.c")},
	"hello-go": {[]string{"hello-go/main.go"}, goNative("hello-go")},
	// wagi and wagi-go natively: the process-per-request baselines.
	"wagi":    {[]string{"wagi.c"}, gccStatic("wagi.c")},
	"wagi-go": {[]string{"wagi-go/main.go"}, goNative("wagi-go")},
}

var (
	mu    sync.Mutex
	built = map[string]string{}
)

// PrebuiltEnv names a directory of modules built beforehand, <name>.wasm,
// for a machine without the toolchains: the cgroup v2 virtual machine of
// e2e/cgroup2.sh, which Export fills.
const PrebuiltEnv = "WASM_TESTMODULE_DIR"

// Path returns the path of the named module, building it if this content
// was not built before (the result is kept in the system's temp dir,
// keyed by the sources and the recipe, and shared between test processes).
// A missing toolchain fails the test: it is never a reason to skip.
func Path(t testing.TB, name string) string {
	t.Helper()
	r, ok := recipes[name]
	if !ok {
		t.Fatalf("no test module %q", name)
	}
	if dir := os.Getenv(PrebuiltEnv); dir != "" {
		p := filepath.Join(dir, name+".wasm")
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("test module %s was not built beforehand into %s=%s: %v", name, PrebuiltEnv, dir, err)
		}
		return p
	}
	return build(t, name, ".wasm", r)
}

// Export builds every module into dir as <name>.wasm, for PrebuiltEnv.
func Export(t testing.TB, dir string) {
	t.Helper()
	for name := range recipes {
		b, err := os.ReadFile(Path(t, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".wasm"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Native returns the path of the native static binary equivalent to the
// named module, building it like Path does.
func Native(t testing.TB, name string) string {
	t.Helper()
	r, ok := natives[name]
	if !ok {
		t.Fatalf("no native build of %q", name)
	}
	return build(t, name, ".native", r)
}

func build(t testing.TB, name, ext string, r recipe) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	key := name + ext
	if p, ok := built[key]; ok {
		return p
	}
	src := sourceDir()
	h := sha256.New()
	fmt.Fprintln(h, key, runtime.Version())
	for _, s := range r.sources {
		b, err := os.ReadFile(filepath.Join(src, s))
		if err != nil {
			t.Fatalf("test module %s: %v", name, err)
		}
		h.Write(b)
	}
	dir := filepath.Join(os.TempDir(), "nomad-driver-wasm-testmodules")
	out := filepath.Join(dir, name+"-"+hex.EncodeToString(h.Sum(nil))[:16]+ext)
	if _, err := os.Stat(out); err == nil {
		built[key] = out
		return out
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", out, os.Getpid())
	cmd := r.build(src, tmp)
	if output, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build %s with %v: %v\n%s\nThe C test modules need clang-14, lld-14, wasi-libc and libclang-rt-14-dev-wasm32, their native builds gcc and libc6-dev (run: make deps)", key, cmd.Args, err, output)
	}
	if err := os.Rename(tmp, out); err != nil {
		t.Fatal(err)
	}
	built[key] = out
	return out
}

// Install copies the named module into dir (a task's local directory, say)
// under the given file name and returns the copy's path.
func Install(t testing.TB, name, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(Path(t, name))
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(dir, file)
	if err := os.WriteFile(dst, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func sourceDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata")
}
