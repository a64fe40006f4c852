// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/shoenig/test/must"
)

// The job class (a module or config only the job's author can fix) is
// tested case by case in TestBadInput.

// TestUnusableCacheDir: a cache_dir that cannot be used fails the start
// with a message about the cache, not about the module; the operator must
// fix it, so it is not retried.
func TestUnusableCacheDir(t *testing.T) {
	t.Parallel()
	notDir := filepath.Join(t.TempDir(), "file")
	must.NoError(t, os.WriteFile(notDir, nil, 0o644))
	h := newHarnessConfig(t, Config{CacheDir: notDir, Engine: EngineCompiler})
	events := h.events(t)
	tk := h.newTask(t, "probe", 64, TaskConfig{})
	_, _, err := h.StartTask(tk.cfg)
	must.ErrorContains(t, err, "the node's compiled-module cache cannot be used")
	must.ErrorContains(t, err, "cache_dir must be a directory the Nomad client can write")
	must.StrNotContains(t, err.Error(), "malformed")
	must.False(t, structs.IsRecoverable(err))
	ev := waitEvent(t, events, tk.cfg.ID, "The node's wasm driver is misconfigured (its operator must fix it): ")
	must.Eq(t, "operator", ev.Annotations["error_class"])
}

// TestNoExecutorIsANodeFailure: when no executor can be launched the node
// is at fault, and the restart policy may retry.
func TestNoExecutorIsANodeFailure(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing-plugin-binary")
	h := newHarnessWith(t, Config{}, func(d *Driver) { d.executors.binary = missing })
	events := h.events(t)
	tk := h.newTask(t, "probe", 64, TaskConfig{})
	_, _, err := h.StartTask(tk.cfg)
	must.ErrorContains(t, err, "failed to launch executor")
	must.True(t, structs.IsRecoverable(err), must.Sprint(err))
	ev := waitEvent(t, events, tk.cfg.ID, "Node failure (the restart policy applies): failed to launch executor")
	must.Eq(t, "node", ev.Annotations["error_class"])
}

// TestDamagedCacheEntryIsReplaced: a compiled entry that was truncated,
// overwritten, replaced by another module's valid entry, or whose recorded
// digest is gone, is a fault of the node and is never run: the task runs,
// the entry is compiled again, and an event and the executor log say so.
// The next start hits the repaired entry.
func TestDamagedCacheEntryIsReplaced(t *testing.T) {
	t.Parallel()
	damage := map[string]func(t *testing.T, h *harness, path string){
		"overwritten": func(t *testing.T, _ *harness, path string) {
			f, err := os.OpenFile(path, os.O_WRONLY, 0)
			must.NoError(t, err)
			st, err := f.Stat()
			must.NoError(t, err)
			_, err = f.WriteAt(make([]byte, 64), st.Size()/2)
			must.NoError(t, err)
			must.NoError(t, f.Close())
		},
		"truncated": func(t *testing.T, _ *harness, path string) {
			st, err := os.Stat(path)
			must.NoError(t, err)
			must.NoError(t, os.Truncate(path, st.Size()/3))
		},
		"garbage": func(t *testing.T, _ *harness, path string) {
			must.NoError(t, os.WriteFile(path, []byte("not a compiled module"), 0o644))
		},
		// wazero's CRC32 does not catch these two; the recorded digest
		// does. Without it, another module's entry loads and runs.
		"another module's entry": func(t *testing.T, h *harness, entry string) {
			other := h.newTask(t, "wagi", 64, TaskConfig{})
			must.Zero(t, h.run(t, other).ExitCode)
			var swap string
			for _, e := range cacheEntries(t, h.cacheDir) {
				if e != entry {
					swap = e
				}
			}
			must.NotEq(t, "", swap)
			b, err := os.ReadFile(swap)
			must.NoError(t, err)
			must.NoError(t, os.WriteFile(entry, b, 0o644))
		},
		"record removed": func(t *testing.T, h *harness, _ string) {
			var records []string
			must.NoError(t, filepath.WalkDir(h.cacheDir, func(p string, _ fs.DirEntry, err error) error {
				if err == nil && filepath.Ext(p) == ".sha256" {
					records = append(records, p)
				}
				return err
			}))
			must.Len(t, 1, records)
			must.NoError(t, os.Remove(records[0]))
		},
	}
	for name, spoil := range damage {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarnessConfig(t, Config{Engine: EngineCompiler})
			events := h.events(t)
			first := h.newTask(t, "probe", 64, TaskConfig{})
			must.Zero(t, h.run(t, first).ExitCode)
			entries := cacheEntries(t, h.cacheDir)
			must.Len(t, 1, entries)
			spoil(t, h, entries[0])

			tk := h.newTask(t, "probe", 64, TaskConfig{})
			must.Zero(t, h.run(t, tk).ExitCode)
			tk.waitLog(t, "stdout", "hello from wasm\n")
			ev := waitEvent(t, events, tk.cfg.ID, "was damaged and has been replaced")
			must.Eq(t, "node", ev.Annotations["error_class"])
			log, err := os.ReadFile(filepath.Join(tk.cfg.TaskDir().Dir, executorLogFile))
			must.NoError(t, err)
			must.StrContains(t, string(log), "compiled entry is damaged; removing it and compiling the module again")

			again := h.newTask(t, "probe", 64, TaskConfig{})
			must.Zero(t, h.run(t, again).ExitCode)
			ev = waitEvent(t, events, again.cfg.ID, "loaded from the compiled-module cache")
			must.Eq(t, "true", ev.Annotations["cache_hit"])
		})
	}
}

// cacheEntries lists the compiled entries (regular files other than locks
// and digest records, below wazero-<version>/) in the cache directory dir.
func cacheEntries(t *testing.T, dir string) []string {
	t.Helper()
	versions, err := filepath.Glob(filepath.Join(dir, "wazero-*"))
	must.NoError(t, err)
	var files []string
	for _, v := range versions {
		must.NoError(t, filepath.WalkDir(v, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() && filepath.Ext(p) != ".lock" && filepath.Ext(p) != ".sha256" {
				files = append(files, p)
			}
			return err
		}))
	}
	return files
}

// TestSpinningStartFunctionFailsTheStart: a module whose start function
// (its start section, which runs during instantiation, before _start)
// never returns cannot be stopped: compiled without the per-loop check,
// it never reaches a host call. Its Start fails as a job error after the
// executor's bound (10 s), instead of never answering, and the driver
// ends the executor, where it still spins.
//
//	(module
//	  (func $spin (loop (br 0)))
//	  (start $spin)
//	  (func (export "_start")))
func TestSpinningStartFunctionFailsTheStart(t *testing.T) {
	t.Parallel()
	module := []byte("\x00asm\x01\x00\x00\x00" +
		"\x01\x04\x01\x60\x00\x00" + // type () -> ()
		"\x03\x03\x02\x00\x00" + // two functions of it
		"\x07\x0a\x01\x06_start\x00\x01" + // export _start = func 1
		"\x08\x01\x00" + // start = func 0
		"\x0a\x0c\x02\x07\x00\x03\x40\x0c\x00\x0b\x0b\x02\x00\x0b") // loop { br 0 }; nothing
	h := newHarness(t, "")
	events := h.events(t)
	tk := h.newTask(t, "", 64, TaskConfig{Module: "local/spin.wasm"})
	must.NoError(t, os.WriteFile(filepath.Join(tk.cfg.TaskDir().LocalDir, "spin.wasm"), module, 0o644))
	err := h.startErr(t, tk)
	must.ErrorContains(t, err, "its start function (the WebAssembly start section, which runs before _start) did not return within 10s")
	ev := waitEvent(t, events, tk.cfg.ID, "Rejected by the wasm driver")
	must.Eq(t, "job", ev.Annotations["error_class"])
}
