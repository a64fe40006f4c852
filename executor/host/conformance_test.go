// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build conformance

package host

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/hashicorp/go-hclog"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/modcache"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// The WebAssembly WASI test suite (github.com/WebAssembly/wasi-testsuite),
// its preview 1 binaries, run through the executor as a task's guest is
// run: the node's cache compiles the module (loadProgram), the test's root
// is the guest's view through the confined filesystem (openTaskFiles), and
// the task's own instance runs it (program.start). make conformance runs
// it; make test does not compile it (build tag conformance).
//
// What fails today is listed, with why, in conformanceExpectations: the
// test fails on a failure not listed there, and on a listed one that
// passes (its line is stale). The goal is an empty list.

const (
	// conformanceSuiteEnv names the suite's directory (the one holding
	// tests/); relative, it is taken from the repository's root.
	conformanceSuiteEnv = "WASI_TESTSUITE"
	// conformanceDefaultSuite is the suite's directory when
	// conformanceSuiteEnv is unset, from the repository's root.
	conformanceDefaultSuite = "../shared/wasi-testsuite"
	// conformanceEngineEnv names the one engine to run the suite with
	// (compiler or interpreter); unset, both, one subtest each.
	conformanceEngineEnv = "WASI_ENGINE"
	// conformanceExpectations lists the known failures: engine, test and
	// reason, tab-separated, one a line.
	conformanceExpectations = "testdata/conformance/expected-failures.txt"
	// conformanceTimeout bounds one test's run: past it the instance is
	// stopped (at its next host call), and one that still has not ended a
	// grace period later is a failure, left running.
	conformanceTimeout = 2 * time.Minute
	conformanceGrace   = 10 * time.Second
	// conformanceRepoRoot is the repository's root from this package's
	// directory, where go test runs the test.
	conformanceRepoRoot = "../.."
)

// conformanceSpec is a test's specification, NAME.json beside NAME.wasm
// (the suite's doc/specification.md); a missing field, or a missing file,
// takes the default. Stdout and stderr are checked only when given, as the
// specification says (the suite's tests give none for stderr); a field it
// does not know is an error, so that the runner learns it.
type conformanceSpec struct {
	Args     []string          `json:"args"`
	Env      map[string]string `json:"env"`
	Root     string            `json:"root"` // a directory beside the test, mounted as the guest's /
	ExitCode int               `json:"exit_code"`
	Stdout   *string           `json:"stdout"`
	Stderr   *string           `json:"stderr"`
}

// conformanceCase is one test of the suite.
type conformanceCase struct {
	name string // its language and name: c/lseek
	wasm string // its binary's path
	spec conformanceSpec
}

// conformanceResult is how one test ran with one engine.
type conformanceResult struct {
	test   string
	passed bool
	// reason says, for a failure, why in one line: what the guest said
	// last on its stderr (a Rust panic's message), or the mismatch when it
	// said nothing.
	reason string
	// took is the test's whole time: its root copied, its module read
	// and compiled, its instance run; ran is its instance's run alone.
	took, ran time.Duration
	// expected is its line of conformanceExpectations (line 0: none).
	expected conformanceExpectation
}

// conformanceExpectation is one line of conformanceExpectations.
type conformanceExpectation struct {
	line   int
	reason string
}

// TestConformance runs every preview 1 test of the suite with each engine
// (WASI_ENGINE, else both) and prints a table of the results, the count
// passed and the median time per test (its load, compile included, and
// run).
func TestConformance(t *testing.T) {
	suite := conformanceSuite(t)
	cases, err := conformanceCases(suite)
	if err != nil {
		t.Fatalf("WASI test suite %s: %v (%s names the suite's directory, the one that holds tests/; make conformance sets it from its variable WASI_TESTSUITE, default %s)",
			suite, err, conformanceSuiteEnv, conformanceDefaultSuite)
	}
	engines := []string{executor.EngineCompiler, executor.EngineInterpreter}
	if e := os.Getenv(conformanceEngineEnv); e != "" {
		if !slices.Contains(engines, e) {
			t.Fatalf("%s=%q: it names an engine, %s or %s (unset: both)", conformanceEngineEnv, e, executor.EngineCompiler, executor.EngineInterpreter)
		}
		engines = []string{e}
	}
	expected, err := readConformanceExpectations(conformanceExpectations, cases)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("WASI test suite: %s, %d preview 1 tests", suite, len(cases))

	var summary []string
	for _, engine := range engines {
		t.Run(engine, func(t *testing.T) {
			// One test after another, so that the durations are each
			// test's own.
			cache := modcache.Cache{Dir: t.TempDir(), Logger: hclog.NewNullLogger(), Validate: validateConfig()}
			var results []conformanceResult
			for _, c := range cases {
				r := runConformanceCase(t, cache, engine, c)
				r.expected = expected[[2]string{engine, c.name}]
				results = append(results, r)
			}
			summary = append(summary, conformanceTable(t, engine, results))
			for _, r := range results {
				switch {
				case r.passed && r.expected.line != 0:
					t.Errorf("%s passes with the %s engine now: remove its line %d (%q) from %s", r.test, engine, r.expected.line, r.expected.reason, conformanceExpectations)
				case !r.passed && r.expected.line == 0:
					t.Errorf("%s fails with the %s engine: %s. Fix it, or list it as a known failure in %s: %s<TAB>%s<TAB>reason", r.test, engine, r.reason, conformanceExpectations, engine, r.test)
				}
			}
		})
	}
	t.Logf("WASI test suite, %d tests:\n%s", len(cases), strings.Join(summary, "\n"))
}

// conformanceSuite is the suite's directory: WASI_TESTSUITE, else the
// default beside the repository, a relative one taken from the
// repository's root.
func conformanceSuite(t *testing.T) string {
	t.Helper()
	dir := os.Getenv(conformanceSuiteEnv)
	if dir == "" {
		dir = conformanceDefaultSuite
	}
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(conformanceRepoRoot, dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// conformanceCases finds the suite's preview 1 tests and reads their
// specifications, sorted by name.
func conformanceCases(suite string) ([]conformanceCase, error) {
	if _, err := os.Stat(filepath.Join(suite, "tests")); err != nil {
		return nil, fmt.Errorf("no tests/ directory: %w", err)
	}
	files, err := filepath.Glob(filepath.Join(suite, "tests", "*", "testsuite", "wasm32-wasip1", "*.wasm"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, errors.New("no preview 1 tests (tests/*/testsuite/wasm32-wasip1/*.wasm)")
	}
	var cases []conformanceCase
	for _, wasm := range files {
		lang := filepath.Base(filepath.Dir(filepath.Dir(filepath.Dir(wasm))))
		name := strings.TrimSuffix(filepath.Base(wasm), ".wasm")
		c := conformanceCase{name: lang + "/" + name, wasm: wasm}
		b, err := os.ReadFile(strings.TrimSuffix(wasm, ".wasm") + ".json")
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return nil, err
		default:
			dec := json.NewDecoder(bytes.NewReader(b))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&c.spec); err != nil {
				return nil, fmt.Errorf("the specification of %s: %w", c.name, err)
			}
		}
		cases = append(cases, c)
	}
	slices.SortFunc(cases, func(a, b conformanceCase) int { return strings.Compare(a.name, b.name) })
	return cases, nil
}

// readConformanceExpectations reads the known failures, keyed by engine
// and test. A line that is not one, or names an engine or a test that does
// not exist, is an error: the list must stay exact.
func readConformanceExpectations(path string, cases []conformanceCase) (map[[2]string]conformanceExpectation, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("the conformance test's known failures: %w", err)
	}
	defer f.Close()
	tests := map[string]bool{}
	for _, c := range cases {
		tests[c.name] = true
	}
	out := map[[2]string]conformanceExpectation{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		text := sc.Text()
		if strings.TrimSpace(text) == "" || strings.HasPrefix(text, "#") {
			continue
		}
		fields := strings.SplitN(text, "\t", 3)
		if len(fields) != 3 || fields[2] == "" {
			return nil, fmt.Errorf("%s:%d: want engine<TAB>test<TAB>reason, got %q", path, n, text)
		}
		engine, test, reason := fields[0], fields[1], fields[2]
		if engine != executor.EngineCompiler && engine != executor.EngineInterpreter {
			return nil, fmt.Errorf("%s:%d: engine %q is neither %s nor %s", path, n, engine, executor.EngineCompiler, executor.EngineInterpreter)
		}
		if !tests[test] {
			return nil, fmt.Errorf("%s:%d: the suite has no test %q (tests are named language/name, as c/lseek): remove the line", path, n, test)
		}
		key := [2]string{engine, test}
		if prev, ok := out[key]; ok {
			return nil, fmt.Errorf("%s:%d: %s with %s is listed already, on line %d", path, n, test, engine, prev.line)
		}
		out[key] = conformanceExpectation{line: n, reason: reason}
	}
	return out, sc.Err()
}

// conformanceStream is a guest's stdout or stderr, kept whole. It is read
// once the instance has ended, after its last write.
type conformanceStream struct{ bytes.Buffer }

func (*conformanceStream) Close() error { return nil }

// runConformanceCase runs one test with engine as a task's guest: its
// root, copied, mounted as the guest's /, its module compiled through
// cache, its arguments and its environment (and nothing else) given to the
// task's own instance, which runs it to its end.
func runConformanceCase(t *testing.T, cache modcache.Cache, engine string, c conformanceCase) conformanceResult {
	t.Helper()
	r := conformanceResult{test: c.name}
	began := time.Now()
	fail := func(format string, args ...any) conformanceResult {
		r.reason = fmt.Sprintf(format, args...)
		r.took = time.Since(began)
		return r
	}

	req := &proto.StartRequest{ModuleFile: c.wasm}
	if c.spec.Root != "" {
		// The test may write into its root: a fresh copy each run.
		root := filepath.Join(t.TempDir(), "root")
		if err := copyConformanceRoot(filepath.Join(filepath.Dir(c.wasm), c.spec.Root), root); err != nil {
			return fail("copy its root %s: %v", c.spec.Root, err)
		}
		req.Mounts = []*proto.Mount{{GuestPath: "/", HostPath: root}}
	}
	files, err := openTaskFiles(req)
	if err != nil {
		return fail("open the task's files: %v", err)
	}
	stuck := false // the guest still runs in its view and runtime
	defer func() {
		if !stuck {
			files.close()
		}
	}()
	module := "/" + filepath.Base(c.wasm)
	if err := checkModuleSize(files.module, module, 0); err != nil {
		return fail("%v", err)
	}
	b, err := readAll(files.module)
	if err != nil {
		return fail("read the module: %v", err)
	}
	spec := programSpec{Module: module, Engine: engine, Entrypoint: "_start", View: files.view, Env: c.spec.Env}
	p, err := loadProgram(context.Background(), hclog.NewNullLogger(), cache, spec, b, moduleDigest(b), nil)
	if err != nil {
		return fail("load: %v", err)
	}
	stdout, stderr := &conformanceStream{}, &conformanceStream{}
	started := time.Now()
	in, err := p.start(runOptions{argv0: filepath.Base(c.wasm), args: c.spec.Args, streams: stdio{stdout: stdout, stderr: stderr}, timeout: conformanceTimeout, quiet: true})
	if err != nil {
		p.close()
		return fail("start: %v", err)
	}
	select {
	case <-in.ended:
		r.ran = time.Since(started)
	case <-time.After(conformanceTimeout + conformanceGrace):
		// Spinning without a host call: it cannot be ended but by the
		// process's end, and its runtime and view stay open under it.
		stuck = true
		return fail("did not end within %v", conformanceTimeout+conformanceGrace)
	}
	p.close()
	r.took = time.Since(began)

	status := in.status
	var mismatch string
	switch {
	case int(status.ExitCode) != c.spec.ExitCode:
		mismatch = fmt.Sprintf("exit code %d, want %d", status.ExitCode, c.spec.ExitCode)
	case c.spec.Stdout != nil && stdout.String() != *c.spec.Stdout:
		mismatch = fmt.Sprintf("stdout %q, want %q", conformanceClip(stdout.String(), 80), *c.spec.Stdout)
	case c.spec.Stderr != nil && stderr.String() != *c.spec.Stderr:
		mismatch = fmt.Sprintf("stderr %q, want %q", conformanceClip(stderr.String(), 80), *c.spec.Stderr)
	default:
		r.passed = true
		return r
	}
	// A trap's whole message, stack trace included, follows the guest's
	// own output on its stderr (instance.run).
	said := stderr.String()
	how := mismatch
	if status.Error != "" {
		how = status.Error
		if i := strings.LastIndex(said, status.Error); i >= 0 {
			said = said[:i]
		}
	}
	if msg := conformanceGuestMessage(said); msg != "" {
		return fail("%s (%s)", msg, how)
	}
	return fail("%s", how)
}

// conformanceGuestMessage is what a failed test said last on its stderr,
// in one line: a Rust panic's message (without its hint of how to get a
// backtrace), else the last line that says something.
func conformanceGuestMessage(stderr string) string {
	if _, rest, ok := strings.Cut(stderr, "panicked at "); ok {
		_, msg, _ := strings.Cut(rest, "\n") // after the panic's place
		msg, _, _ = strings.Cut(msg, "\nnote: run with `RUST_BACKTRACE")
		return conformanceClip(strings.Join(strings.Fields(msg), " "), 200)
	}
	lines := strings.Split(stderr, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if line := strings.TrimSpace(lines[i]); line != "" {
			return conformanceClip(line, 200)
		}
	}
	return ""
}

// conformanceClip cuts s to at most n bytes, at a character's start,
// saying so.
func conformanceClip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// copyConformanceRoot copies the directory src to dst, symlinks as
// symlinks, with the modes a checkout of the suite gives them (the
// suite's copy may be read-only; the tests write into their root).
func copyConformanceRoot(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(target, to)
		case d.IsDir():
			return os.Mkdir(to, 0o755)
		case d.Type().IsRegular():
			info, err := d.Info()
			if err != nil {
				return err
			}
			return copyConformanceFile(path, to, 0o644|info.Mode().Perm()&0o111)
		}
		return fmt.Errorf("%s is neither a file, a directory nor a symlink", path)
	})
}

func copyConformanceFile(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// conformanceTable logs the results of one engine as a table (TIME is a
// test's whole time, RUN its instance's), then the count passed and the
// median times per test, and returns that last line.
func conformanceTable(t *testing.T, engine string, results []conformanceResult) string {
	t.Helper()
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 8, 2, ' ', 0)
	fmt.Fprintln(w, "TEST\tENGINE\tRESULT\tTIME\tRUN\tREASON")
	passed, expected := 0, 0
	var took, ran []time.Duration
	for _, r := range results {
		result := "PASS"
		switch {
		case r.passed && r.expected.line != 0:
			result = "PASS (listed as failing)"
		case r.passed:
		case r.expected.line != 0:
			result = "EXPECTED-FAIL"
		default:
			result = "FAIL"
		}
		if r.passed {
			passed++
		} else if r.expected.line != 0 {
			expected++
		}
		took, ran = append(took, r.took), append(ran, r.ran)
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.test, engine, result, formatConformanceTime(r.took), formatConformanceTime(r.ran), r.reason)
	}
	_ = w.Flush()
	summary := fmt.Sprintf("%s: %d of %d passed, %d known failures, %d unexpected; median per test %s, load and compile included (a fresh cache), %s of it running",
		engine, passed, len(results), expected, len(results)-passed-expected, formatConformanceTime(conformanceMedian(took)), formatConformanceTime(conformanceMedian(ran)))
	t.Logf("results with the %s engine:\n%s%s", engine, b.String(), summary)
	return summary
}

// conformanceMedian is the median of ds (0 for none).
func conformanceMedian(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func formatConformanceTime(d time.Duration) string {
	if d < time.Millisecond {
		return d.Round(time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}
