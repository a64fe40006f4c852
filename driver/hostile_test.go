// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver/cgroups"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
)

// wasmModule assembles a module of n empty functions, the first exported
// as _start, importing imports functions of type () -> () from "env".
func wasmModule(n, imports int) []byte {
	uleb := func(v int) []byte {
		var b []byte
		for {
			c := byte(v & 0x7f)
			v >>= 7
			if v != 0 {
				b = append(b, c|0x80)
				continue
			}
			return append(b, c)
		}
	}
	section := func(id byte, body []byte) []byte {
		return append(append([]byte{id}, uleb(len(body))...), body...)
	}
	name := func(s string) []byte { return append(uleb(len(s)), s...) }
	out := []byte("\x00asm\x01\x00\x00\x00")
	out = append(out, section(1, []byte{1, 0x60, 0, 0})...) // one type: () -> ()
	if imports > 0 {
		body := uleb(imports)
		for i := range imports {
			body = append(body, name("env")...)
			body = append(body, name(fmt.Sprintf("f%d", i))...)
			body = append(body, 0, 0) // a function of type 0
		}
		out = append(out, section(2, body)...)
	}
	funcs := uleb(n)
	code := uleb(n)
	for range n {
		funcs = append(funcs, 0)
		code = append(code, 2, 0, 0x0b) // size 2: no locals, end
	}
	out = append(out, section(3, funcs)...)
	export := append(uleb(1), name("_start")...)
	export = append(export, 0)
	export = append(export, uleb(imports)...) // the first function after the imports
	out = append(out, section(7, export)...)
	return append(out, section(10, code)...)
}

// recursingModule calls itself without end:
//
//	(module (func $f (export "_start") (call $f)))
var recursingModule = []byte("\x00asm\x01\x00\x00\x00" +
	"\x01\x04\x01\x60\x00\x00" + // type () -> ()
	"\x03\x02\x01\x00" + // one function of it
	"\x07\x0a\x01\x06_start\x00\x00" + // exported as _start
	"\x0a\x06\x01\x04\x00\x10\x00\x0b") // call 0

// TestHostileModules: a module with thousands of functions runs; one that
// recurses without end traps; one with thousands of imports the node does
// not provide is refused with an error of bounded size that still names
// what is missing; none harms the node or takes long.
func TestHostileModules(t *testing.T) {
	t.Parallel()
	h := newHarness(t, "")
	install := func(module []byte) *task {
		tk := h.newTask(t, "", 64, TaskConfig{Module: "local/app.wasm"})
		must.NoError(t, os.WriteFile(filepath.Join(tk.cfg.TaskDir().LocalDir, "app.wasm"), module, 0o644))
		return tk
	}

	began := time.Now()
	res := h.run(t, install(wasmModule(20000, 0)))
	must.Eq(t, 0, res.ExitCode)
	t.Logf("20,000 functions: compiled and ran in %v", time.Since(began))

	// Unbounded recursion traps on wazero's stack bound, where the
	// executor does not run in the task's memory cgroup (there the kernel
	// ends it first: TestCgroupOOMKill), and in the shared one, which runs
	// on for the next task.
	if _, err := cgroups.Version(); err != nil || os.Geteuid() != 0 {
		res = h.run(t, install(recursingModule))
		must.Eq(t, executor.TrapExitCode, res.ExitCode)
		must.ErrorContains(t, res.Err, "stack overflow")
	}
	shared := newSharedHarness(t, "")
	tk := shared.newTask(t, "", 64, TaskConfig{Module: "local/app.wasm"})
	must.NoError(t, os.WriteFile(filepath.Join(tk.cfg.TaskDir().LocalDir, "app.wasm"), recursingModule, 0o644))
	res = shared.run(t, tk)
	must.ErrorContains(t, res.Err, "stack overflow")
	next := shared.newTask(t, "probe", 64, TaskConfig{Args: []string{"hello"}})
	must.Eq(t, 0, shared.run(t, next).ExitCode)

	err := h.startErr(t, install(wasmModule(1, 5000)))
	must.ErrorContains(t, err, "imports what this node does not provide: env.f0, env.f1")
	must.ErrorContains(t, err, "and 4980 more")
	must.Less(t, 4096, len(err.Error()), must.Sprint("the error lists every missing import"))
}
