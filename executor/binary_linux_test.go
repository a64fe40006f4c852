// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// setProgram makes path the embedded program's for the test.
func setProgram(t *testing.T, path string) {
	t.Helper()
	program.once.Do(findPrograms) // this build embeds nothing: the plugin binary is found
	program.mu.Lock()
	saved := program.path
	program.path, program.failed, program.warned = path, false, false
	program.mu.Unlock()
	t.Cleanup(func() {
		program.mu.Lock()
		program.path, program.failed, program.warned = saved, false, false
		program.mu.Unlock()
	})
}

func failed() bool {
	program.mu.Lock()
	defer program.mu.Unlock()
	return program.failed
}

// TestRunnable: a program put in a memfd runs from the path runnable
// gives, which names the memfd through this process's descriptor, and its
// content can no longer change.
func TestRunnable(t *testing.T) {
	b, err := os.ReadFile("/bin/true")
	must.NoError(t, err)
	saved := memfd
	t.Cleanup(func() { memfd = saved })
	path, err := runnable(bytes.NewReader(b))
	must.NoError(t, err)
	f := memfd
	t.Cleanup(func() { _ = f.Close() })

	must.Eq(t, fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), f.Fd()), path)
	// With the child's descriptors rearranged as a start with files does.
	cmd := exec.Command(path)
	cmd.ExtraFiles = []*os.File{os.Stdin, os.Stdin, os.Stdin, os.Stdin}
	must.NoError(t, cmd.Run())
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
	must.Eq(t, b, got)
}

// TestFallBack: only a program that cannot be executed sends a start to
// the plugin binary; a cancelled start, or an executor that ran and
// failed, does not.
func TestFallBack(t *testing.T) {
	execErr := exec.Command("/nonexistent/wasm-executor").Start()
	must.Error(t, execErr)
	must.True(t, fallBack(context.Background(), fmt.Errorf("connect to executor: %w", execErr)))
	must.False(t, fallBack(context.Background(), nil))
	must.False(t, fallBack(context.Background(), errors.New("plugin exited before we could connect")))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	must.False(t, fallBack(ctx, execErr))
}

// TestLaunchFallsBack: an embedded program that cannot be executed sends
// the start, and every later one, to the plugin binary (here this test
// binary, which serves as an executor: main_test.go), with one warning.
// (That an executor which ran and failed sends nothing there is
// TestFallBack's: a process that ends before go-plugin's handshake races
// in go-plugin itself under -race.)
func TestLaunchFallsBack(t *testing.T) {
	var logs bytes.Buffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Warn})

	setProgram(t, "/nonexistent/wasm-executor")
	c := launchServing(t, logger)
	must.True(t, failed())
	must.Eq(t, 1, strings.Count(logs.String(), "cannot start executors from the executor program the plugin binary embeds"))
	self, err := os.Executable()
	must.NoError(t, err)
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", c.Pid))
	must.NoError(t, err)
	must.Eq(t, self, exe)
	bin, embedded, err := executorBinary(logger)
	must.NoError(t, err)
	must.False(t, embedded)
	must.Eq(t, self, bin)
	embeddedFailed(logger, errors.New("again"))
	must.Eq(t, 1, strings.Count(logs.String(), "cannot start executors"))
}

// TestEmbeddedProgram: the executor program the plugin binary embeds
// (executor/cmd/wasm-executor), built as the build builds it, serves the
// protocol when started as Launch starts it from a memfd, names itself
// wasm-executor, and refuses to run without the subcommand.
func TestEmbeddedProgram(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "wasm-executor")
	build := exec.Command("go", "build", "-ldflags", "-s -w", "-o", bin, "./cmd/wasm-executor")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := build.CombinedOutput()
	must.NoError(t, err, must.Sprintf("%s", out))

	out, err = exec.Command(bin).CombinedOutput()
	var exit *exec.ExitError
	must.True(t, errors.As(err, &exit))
	must.Eq(t, 2, exit.ExitCode())
	must.StrContains(t, string(out), "started by nomad-driver-wasm, not by hand")

	f, err := os.Open(bin)
	must.NoError(t, err)
	defer f.Close()
	saved := memfd
	t.Cleanup(func() { memfd = saved })
	path, err := runnable(f)
	must.NoError(t, err)
	mf := memfd
	t.Cleanup(func() { _ = mf.Close() })
	setProgram(t, path)

	c := launchServing(t, hclog.NewNullLogger())
	exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", c.Pid))
	must.NoError(t, err)
	must.StrHasPrefix(t, "/memfd:nomad-driver-wasm-executor", exe)
	comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", c.Pid))
	must.NoError(t, err)
	must.Eq(t, "wasm-executor\n", string(comm))
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", c.Pid))
	must.NoError(t, err)
	self, err := os.Executable()
	must.NoError(t, err)
	must.StrHasPrefix(t, self+"\x00"+Subcommand+"\x00", string(cmdline))

	// go-plugin logs an executor's stderr under the base name of what it
	// ran: the plugin binary's name, as it was before, not the memfd's
	// descriptor number.
	base := hclog.New(&hclog.LoggerOptions{Name: "executor", Output: io.Discard})
	must.Eq(t, "executor."+filepath.Base(self), pluginLogger(base, path).Named(filepath.Base(path)).Name())
	must.Eq(t, "executor.stdio", pluginLogger(base, path).Named("stdio").Name())
	must.Eq(t, base, pluginLogger(base, "/usr/bin/env"))
}

// launchServing launches an executor as a driver does, which must answer
// over the protocol; it is killed when the test ends.
func launchServing(t *testing.T, logger hclog.Logger) *Client {
	t.Helper()
	c, err := Launch(LaunchConfig{Logger: logger})
	must.NoError(t, err)
	t.Cleanup(c.Kill)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = c.Version(ctx, &proto.VersionRequest{})
	must.NoError(t, err)
	return c
}
