// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/shoenig/test/must"
)

// TestRunnable: a program put in a memfd runs from the path runnable
// gives, which names the memfd, and its content can no longer change.
func TestRunnable(t *testing.T) {
	b, err := os.ReadFile("/bin/true")
	must.NoError(t, err)
	saved := memfd
	t.Cleanup(func() { memfd = saved })
	path, err := runnable(b)
	must.NoError(t, err)
	f := memfd
	t.Cleanup(func() { _ = f.Close() })

	must.StrHasPrefix(t, "/proc/self/fd/", path)
	must.NoError(t, exec.Command(path).Run())
	link, err := os.Readlink(path)
	must.NoError(t, err)
	must.StrHasPrefix(t, "/memfd:nomad-driver-wasm-executor", link)

	// Sealed: no write, no resize, by anyone, through any descriptor.
	_, err = f.WriteAt([]byte("x"), 0)
	must.Error(t, err)
	must.Error(t, f.Truncate(1))
	w, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err == nil {
		_, err = w.Write([]byte("x"))
		_ = w.Close()
	}
	must.Error(t, err)
	got, err := os.ReadFile(path)
	must.NoError(t, err)
	must.Eq(t, len(b), len(got))

	// A descriptor above those an executor's start hands over.
	must.True(t, f.Fd() >= 64, must.Sprintf("memfd is descriptor %d", f.Fd()))
}

// TestExecutorBinaryFallsBack: once starting from the embedded program
// failed, executors start from the plugin binary.
func TestExecutorBinaryFallsBack(t *testing.T) {
	program.once.Do(func() {}) // this build embeds nothing
	program.mu.Lock()
	saved := program.path
	program.path, program.failed = "/proc/self/fd/999", false
	program.mu.Unlock()
	t.Cleanup(func() {
		program.mu.Lock()
		program.path, program.failed = saved, false
		program.mu.Unlock()
	})

	bin, embedded, err := executorBinary()
	must.NoError(t, err)
	must.True(t, embedded)
	must.Eq(t, "/proc/self/fd/999", bin)

	embeddedFailed(nil, os.ErrPermission)
	self, err := os.Executable()
	must.NoError(t, err)
	bin, embedded, err = executorBinary()
	must.NoError(t, err)
	must.False(t, embedded)
	must.Eq(t, self, bin)

	// Its argv[0] is the plugin binary's path, not /proc/self/fd/N.
	cmd := command(t.Context(), "/proc/self/fd/999", Subcommand)
	must.Eq(t, self, cmd.Args[0])
	must.True(t, strings.HasSuffix(command(t.Context(), "/usr/bin/env").Args[0], "env"))
}

// TestEmbeddedProgramSubcommand: the executor program accepts what Launch
// passes it (it spells the subcommand out, not importing this package).
func TestEmbeddedProgramSubcommand(t *testing.T) {
	src, err := os.ReadFile("cmd/wasm-executor/main.go")
	must.NoError(t, err)
	must.StrContains(t, string(src), `os.Args[1] != "`+Subcommand+`"`)
}
