// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build linux

package driver

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

// requireRoot skips a test that needs the driver to run as root, except in
// CI, where that fails.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI must run the tests of tasks' users as root: uid %d", os.Geteuid())
	}
	t.Skipf("tasks run as another user only when the driver runs as root: uid %d", os.Geteuid())
}

// procIDs is the real, effective, saved and filesystem uid and gid of pid.
func procIDs(t *testing.T, pid int) (uids, gids string) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	must.NoError(t, err)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "Uid:"); ok {
			uids = strings.Join(strings.Fields(v), " ")
		}
		if v, ok := strings.CutPrefix(line, "Gid:"); ok {
			gids = strings.Join(strings.Fields(v), " ")
		}
	}
	return uids, gids
}

// runsAs checks that the executor of handle's task is u: real, effective,
// saved and filesystem uid, and supplementary groups (which a spare took
// ahead for the default user, and a start sets for any other).
func runsAs(t *testing.T, handle *drivers.TaskHandle, u *proto.RunAs) {
	t.Helper()
	pid := executorPid(t, handle)
	uids, _ := procIDs(t, pid)
	must.Eq(t, fmt.Sprintf("%d %d %d %d", u.Uid, u.Uid, u.Uid, u.Uid), uids)
	_, _, groups, err := processUser(pid)
	must.NoError(t, err)
	must.Eq(t, slices.Sorted(slices.Values(u.Groups)), groups)
}

// execProbe runs the probe module at local/tool.wasm in tk with nomad alloc
// exec, and returns its exit code and stdout.
func execProbe(t *testing.T, h *harness, tk *task, args ...string) (int, string) {
	t.Helper()
	var stdout, stderr closingBuffer
	res, err := h.driver.ExecTaskStreaming(context.Background(), tk.cfg.ID, &drivers.ExecOptions{
		Command: append([]string{"/local/tool.wasm"}, args...), Stdout: &stdout, Stderr: &stderr})
	must.NoError(t, err)
	return res.ExitCode, stdout.String()
}

func owner(t *testing.T, p string) uint32 {
	t.Helper()
	fi, err := os.Lstat(p)
	must.NoError(t, err)
	return fi.Sys().(*syscall.Stat_t).Uid
}

// A task runs as the plugin's default_user (nobody) when it names none: its
// executor drops every id, after it has written the compiled-module cache
// and before the guest runs, so the guest's files are bounded by the
// user's permissions as well as by its mounts, and the cache is written by
// root only.
func TestTaskRunsAsDefaultUser(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	nobody, err := lookupUser("nobody")
	must.NoError(t, err)
	cache := t.TempDir()
	// Nomad's cache_dir is 0755; a temp dir is 0700.
	must.NoError(t, os.Chmod(cache, 0o755))
	h := newHarness(t, cache)
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"ticker"}})
	local := tk.cfg.TaskDir().LocalDir
	testmodule.Install(t, "probe", local, "tool.wasm")
	must.NoError(t, os.WriteFile(filepath.Join(local, "root-only.txt"), []byte("root's"), 0o600))
	must.NoError(t, os.WriteFile(filepath.Join(local, "shared.txt"), []byte("everyone's"), 0o644))
	handle := h.start(t, tk)
	tk.waitLog(t, "stdout", "tick 1")

	runsAs(t, handle, nobody)
	_, gids := procIDs(t, executorPid(t, handle))
	must.Eq(t, fmt.Sprintf("%d %d %d %d", nobody.Gid, nobody.Gid, nobody.Gid, nobody.Gid), gids)

	// Bounded twice: a file in the guest's own mount that its user may not
	// read stays closed; one it may read opens; what it writes is its
	// user's.
	code, out := execProbe(t, h, tk, "cat", "/local/root-only.txt")
	must.Eq(t, 1, code)
	must.StrContains(t, out, "open /local/root-only.txt: Permission denied")
	code, out = execProbe(t, h, tk, "cat", "/local/shared.txt")
	must.Zero(t, code)
	must.Eq(t, "everyone's", out)
	code, _ = execProbe(t, h, tk, "write", "/local/made.txt", "mine")
	must.Zero(t, code)
	must.Eq(t, nobody.Uid, owner(t, filepath.Join(local, "made.txt")))

	// Only root wrote the cache, and what it wrote, anyone may read. (The
	// exec'd module's interruptible code was compiled in memory: the
	// executor could no longer write.)
	entries := 0
	must.NoError(t, filepath.WalkDir(cache, func(p string, d fs.DirEntry, err error) error {
		must.NoError(t, err)
		must.Eq(t, 0, owner(t, p), must.Sprintf("%s is not root's", p))
		if strings.Contains(p, "/interruptible/") {
			t.Errorf("%s: an executor running as the task's user wrote to the cache", p)
		}
		if d.Type().IsRegular() && strings.Contains(p, "/uninterruptible/") {
			entries++
			fi, err := d.Info()
			must.NoError(t, err)
			if fi.Mode().Perm() != 0o644 && !strings.HasSuffix(p, ".lock") {
				t.Errorf("%s has mode %v, want 0644", p, fi.Mode().Perm())
			}
		}
		return nil
	}))
	must.Positive(t, entries)

	// Logs are written on, by the user, across rotation's new files.
	tk.waitLog(t, "stdout", "tick 3")
}

// A spare runs as root with the supplementary groups of the default user
// (nobody), so that a task of that user need not set them when it starts;
// a task of another user gets its own (TestTaskUser), and nobody's task
// the same (TestTaskRunsAsDefaultUser).
func TestSpareTakesTheDefaultUsersGroups(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	nobody, err := lookupUser("nobody")
	must.NoError(t, err)
	h := newHarness(t, "")
	uid, _, groups, err := processUser(waitReady(t, h.driver))
	must.NoError(t, err)
	must.Zero(t, uid)
	must.Eq(t, slices.Sorted(slices.Values(nobody.Groups)), groups)
}

// A task that names its user runs as it; root only where the operator
// allows it, and a user the node does not have is the job's error.
func TestTaskUser(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	daemon, err := lookupUser("daemon")
	must.NoError(t, err)

	h := newHarness(t, "")
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"ticker"}})
	tk.cfg.User = "daemon"
	runsAs(t, h.start(t, tk), daemon)
	tk.waitLog(t, "stdout", "tick 0")

	tk = h.newTask(t, "probe", 64, TaskConfig{Args: []string{"hello"}})
	tk.cfg.User = "root"
	err = h.startErr(t, tk)
	must.ErrorContains(t, err, `user = "root" is root, and this node's wasm driver does not run tasks as root (its plugin config has allow_root = false)`)

	tk = h.newTask(t, "probe", 64, TaskConfig{Args: []string{"hello"}})
	tk.cfg.User = "no-such-user-here"
	err = h.startErr(t, tk)
	must.ErrorContains(t, err, `user = "no-such-user-here": no user "no-such-user-here" on this node`)

	// allow_root: the operator's choice; the task then reads what root may.
	h = newHarnessConfig(t, Config{AllowRoot: true})
	tk = h.newTask(t, "probe", 64, TaskConfig{Args: []string{"cat", "/local/root-only.txt"}})
	must.NoError(t, os.WriteFile(filepath.Join(tk.cfg.TaskDir().LocalDir, "root-only.txt"), []byte("root's"), 0o600))
	tk.cfg.User = "root"
	must.Zero(t, h.run(t, tk).ExitCode)
	must.Eq(t, "root's", tk.waitLog(t, "stdout", "root's"))
	// With root's own groups, not those the spare took for the default
	// user.
	root, err := lookupUser("root")
	must.NoError(t, err)
	tk = h.newTask(t, "probe", 64, TaskConfig{Args: []string{"ticker"}})
	tk.cfg.User = "root"
	runsAs(t, h.start(t, tk), root)
}

// The plugin config's default_user must exist, and be root only with
// allow_root.
func TestDefaultUserConfig(t *testing.T) {
	requireRoot(t)
	c := Config{DefaultUser: "root"}
	must.ErrorContains(t, c.Validate(), `default_user = "root" is root, and allow_root is false`)
	c = Config{DefaultUser: "root", AllowRoot: true}
	must.NoError(t, c.Validate())
	c = Config{DefaultUser: "no-such-user-here"}
	must.ErrorContains(t, c.Validate(), `default_user: no user "no-such-user-here" on this node`)
	c = Config{}
	must.NoError(t, c.Validate())
	must.Eq(t, "nobody", c.DefaultUser)
}

// The shared executor becomes default_user when it starts and runs tasks
// of that user only.
func TestSharedExecutorRunsAsDefaultUser(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	nobody, err := lookupUser("nobody")
	must.NoError(t, err)
	h := newHarnessConfig(t, Config{SharedExecutor: true})
	tk := h.newTask(t, "probe", 64, TaskConfig{Args: []string{"ticker"}})
	runsAs(t, h.start(t, tk), nobody)
	tk.waitLog(t, "stdout", "tick 0")

	tk = h.newTask(t, "probe", 64, TaskConfig{Args: []string{"hello"}})
	tk.cfg.User = "daemon"
	err = h.startErr(t, tk)
	must.ErrorContains(t, err, "the node's shared executor runs every task as user nobody (its default_user), and this task's user is daemon")

	// Sockets in the allocation's network namespace would need root.
	tk = h.newTask(t, "probe", 64, TaskConfig{Args: []string{"hello"}, Listeners: []string{"http"}})
	tk.cfg.Resources.Ports = &structs.AllocatedPorts{{Label: "http", Value: 8080, To: 8080}}
	tk.cfg.NetworkIsolation = &drivers.NetworkIsolationSpec{Mode: drivers.NetIsolationModeGroup, Path: "/var/run/netns/none"}
	err = h.startErr(t, tk)
	must.ErrorContains(t, err, "this node's shared executor runs as user nobody, which cannot enter it")
}

// TestSharedExecutorFollowsDefaultUser: after the operator changes
// default_user and the client restarts, the shared executor still running
// as the old user keeps its tasks, which the new driver recovers into it,
// but takes no new one: new tasks go to a new shared executor of the new
// user, whether the driver found the old one through a recovered task or
// through its record in the cache directory.
func TestSharedExecutorFollowsDefaultUser(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	nobody, err := lookupUser("nobody")
	must.NoError(t, err)
	daemon, err := lookupUser("daemon")
	must.NoError(t, err)
	h := newHarnessConfig(t, Config{SharedExecutor: true})
	old, oldHandle := h.startProbe(t, "tick 1\n", "ticker")
	runsAs(t, oldHandle, nobody)
	oldPid := executorPid(t, oldHandle)
	// The driver goes away (the client restarts) ...
	h.driver.shared.current.Claimed()

	// ... and comes back with another default_user. It recovers the task
	// first: the executor it reattaches to for it is not for new tasks.
	h2 := newHarnessConfig(t, Config{SharedExecutor: true, CacheDir: h.cacheDir, DefaultUser: "daemon"})
	must.NoError(t, h2.RecoverTask(oldHandle))
	n := lastTick(t, old)
	old.waitLog(t, "stdout", fmt.Sprintf("tick %d\n", n+1))
	_, newHandle := h2.startProbe(t, "tick 1\n", "ticker")
	newPid := executorPid(t, newHandle)
	must.NotEq(t, oldPid, newPid, must.Sprint("a new task went to the shared executor of the old default_user"))
	runsAs(t, newHandle, daemon)
	runsAs(t, oldHandle, nobody)

	// A driver that starts a task before recovering any finds the old
	// executor through the record of it, and does not take it either.
	h3 := newHarnessConfig(t, Config{SharedExecutor: true, CacheDir: t.TempDir(), DefaultUser: "daemon"})
	must.NoError(t, os.MkdirAll(sharedDir(h3.cacheDir), 0o700))
	rec, err := os.ReadFile(filepath.Join(sharedDir(h.cacheDir), sharedStateFile))
	must.NoError(t, err)
	must.StrContains(t, string(rec), fmt.Sprintf(`"Pid":%d`, newPid), must.Sprint("the record names the new executor"))
	must.NoError(t, os.WriteFile(filepath.Join(sharedDir(h3.cacheDir), sharedStateFile), recordOf(t, oldHandle), 0o600))
	_, h3Handle := h3.startProbe(t, "tick 1\n", "ticker")
	must.NotEq(t, oldPid, executorPid(t, h3Handle), must.Sprint("a new task went to the recorded shared executor of the old default_user"))
	runsAs(t, h3Handle, daemon)
}

// recordOf is the cache directory's record of the shared executor that
// handle's task runs in.
func recordOf(t *testing.T, handle *drivers.TaskHandle) []byte {
	t.Helper()
	b, err := json.Marshal(sharedState(t, handle).ReattachConfig)
	must.NoError(t, err)
	return b
}

// startOpener is a module whose start function (its start section, guest
// code that runs while the module is instantiated) opens
// /local/root-only.txt, and whose _start exits with the WASI errno that
// open returned (0: it opened).
//
//	(module
//	  (import "wasi_snapshot_preview1" "path_open"
//	    (func $open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
//	  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
//	  (memory (export "memory") 1)
//	  (global $err (mut i32) (i32.const 9))
//	  (data (i32.const 16) "root-only.txt")
//	  (func $init ;; fd 3 is /local
//	    (global.set $err (call $open (i32.const 3) (i32.const 0) (i32.const 16) (i32.const 13)
//	      (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 64))))
//	  (start $init)
//	  (func (export "_start") (call $exit (global.get $err))))
var startOpener = []byte("\x00asm\x01\x00\x00\x00" +
	"\x01\x15\x03" + // types
	"\x60\x09\x7f\x7f\x7f\x7f\x7f\x7e\x7e\x7f\x7f\x01\x7f" + // path_open's
	"\x60\x01\x7f\x00" + // proc_exit's
	"\x60\x00\x00" + // () -> ()
	"\x02\x47\x02" + // imports
	"\x16wasi_snapshot_preview1\x09path_open\x00\x00" +
	"\x16wasi_snapshot_preview1\x09proc_exit\x00\x01" +
	"\x03\x03\x02\x02\x02" + // $init and _start
	"\x05\x03\x01\x00\x01" + // one page
	"\x06\x06\x01\x7f\x01\x41\x09\x0b" + // $err
	"\x07\x13\x02\x06memory\x02\x00\x06_start\x00\x03" +
	"\x08\x01\x02" + // start $init
	"\x0a\x22\x02" + // code
	"\x19\x00\x41\x03\x41\x00\x41\x10\x41\x0d\x41\x00\x42\x02\x42\x00\x41\x00\x41\xc0\x00\x10\x00\x24\x00\x0b" +
	"\x06\x00\x23\x00\x10\x01\x0b" +
	"\x0b\x13\x01\x00\x41\x10\x0b\x0droot-only.txt") // data

// A module's start function is guest code too: the executor becomes the
// task's user before it instantiates such a module, so the start function
// cannot read what the user may not (WASI errno 2, EACCES), where as root
// it could.
func TestStartFunctionRunsAsTheUser(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	run := func(h *harness, user string) int {
		t.Helper()
		tk := h.newTask(t, "", 64, TaskConfig{Module: "local/start.wasm"})
		tk.cfg.User = user
		local := tk.cfg.TaskDir().LocalDir
		must.NoError(t, os.WriteFile(filepath.Join(local, "start.wasm"), startOpener, 0o644))
		must.NoError(t, os.WriteFile(filepath.Join(local, "root-only.txt"), []byte("root's"), 0o600))
		return h.run(t, tk).ExitCode
	}
	must.Eq(t, 2, run(newHarness(t, ""), ""))
	must.Eq(t, 0, run(newHarnessConfig(t, Config{AllowRoot: true}), "root"))
}
