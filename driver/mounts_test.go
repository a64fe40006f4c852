// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/nomad/helper/pluginutils/hclspecutils"
	"github.com/hashicorp/nomad/helper/pluginutils/hclutils"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

// hostDirs is a node's directories for the mount tests: allowed (the
// plugin's allowed_host_paths) with data/, a module and a symlink that
// leads out of it; and outside, which is not allowed.
type hostDirs struct {
	allowed, outside string
}

func newHostDirs(t *testing.T) hostDirs {
	t.Helper()
	root := t.TempDir()
	// Reachable by the tasks' user (nobody), as an operator's host
	// directories for tasks are; a temp dir is 0700.
	must.NoError(t, os.Chmod(root, 0o755))
	d := hostDirs{allowed: filepath.Join(root, "allowed"), outside: filepath.Join(root, "outside")}
	for _, dir := range []string{filepath.Join(d.allowed, "data"), filepath.Join(d.allowed, "modules"), d.outside} {
		must.NoError(t, os.MkdirAll(dir, 0o755))
	}
	must.NoError(t, os.WriteFile(filepath.Join(d.allowed, "data", "greeting.txt"), []byte("hello from the host\n"), 0o644))
	must.NoError(t, os.WriteFile(filepath.Join(d.outside, "secret.txt"), []byte("not for guests\n"), 0o644))
	// A symlink in the allowed tree that leads out of it, and one in a
	// mounted directory that leads out of the mount.
	must.NoError(t, os.Symlink(d.outside, filepath.Join(d.allowed, "escape")))
	must.NoError(t, os.Symlink(d.outside, filepath.Join(d.allowed, "data", "out")))
	testmodule.Install(t, "probe", filepath.Join(d.allowed, "modules"), "probe.wasm")
	return d
}

// TestHostMounts: a mount block gives the guest a host directory inside
// allowed_host_paths, read-only unless it says otherwise; a symlink in it
// does not lead the guest out; a module preinstalled on the node runs from
// an allowed path; Nomad's volume mounts appear where the job says.
func TestHostMounts(t *testing.T) {
	t.Parallel()
	d := newHostDirs(t)
	h := newHarnessConfig(t, Config{Engine: EngineAuto, AllowedHostPaths: []string{d.allowed}})
	data := filepath.Join(d.allowed, "data")

	run := func(tc TaskConfig, volumes ...*drivers.MountConfig) (*task, *drivers.ExitResult) {
		t.Helper()
		tk := h.newTask(t, "probe", 64, tc)
		tk.cfg.Mounts = volumes
		return tk, h.run(t, tk)
	}

	// Read-only by default.
	tk, res := run(TaskConfig{Args: []string{"cat", "/data/greeting.txt"}, Mounts: []HostMount{{HostPath: data, GuestPath: "/data", ReadOnly: true}}})
	must.Eq(t, 0, res.ExitCode)
	tk.waitLog(t, "stdout", "hello from the host\n")
	tk, res = run(TaskConfig{Args: []string{"write", "/data/planted.txt", "x"}, Mounts: []HostMount{{HostPath: data, GuestPath: "/data", ReadOnly: true}}})
	must.Eq(t, 1, res.ExitCode)
	tk.waitLog(t, "stdout", "Read-only file system")
	must.FileNotExists(t, filepath.Join(data, "planted.txt"))

	// Writable when it says so (and the directory is writable by the
	// task's user: the guest's view is bounded by both).
	must.NoError(t, os.Chmod(data, 0o777))
	_, res = run(TaskConfig{Args: []string{"write", "/data/written.txt", "x"}, Mounts: []HostMount{{HostPath: data, GuestPath: "/data", ReadOnly: false}}})
	must.Eq(t, 0, res.ExitCode)
	must.FileExists(t, filepath.Join(data, "written.txt"))

	// A symlink inside the mount that leads out of it is not followed.
	tk, res = run(TaskConfig{Args: []string{"cat", "/data/out/secret.txt"}, Mounts: []HostMount{{HostPath: data, GuestPath: "/data", ReadOnly: true}}})
	must.Eq(t, 1, res.ExitCode)
	must.StrNotContains(t, tk.waitLog(t, "stdout", "open /data/out/secret.txt"), "not for guests")

	// A module preinstalled on the node, from an allowed path.
	tk, res = run(TaskConfig{Module: filepath.Join(d.allowed, "modules", "probe.wasm"), Args: []string{"hello"}})
	must.Eq(t, 0, res.ExitCode)
	tk.waitLog(t, "stdout", "hello from wasm\n")

	// A Nomad volume mount (a host volume the operator configured).
	vol := t.TempDir()
	must.NoError(t, os.WriteFile(filepath.Join(vol, "v.txt"), []byte("from a volume\n"), 0o644))
	tk, res = run(TaskConfig{Args: []string{"cat", "/vol/v.txt"}}, &drivers.MountConfig{TaskPath: "/vol", HostPath: vol, Readonly: true})
	must.Eq(t, 0, res.ExitCode)
	tk.waitLog(t, "stdout", "from a volume\n")
}

// TestHostMountsRefused: host paths outside allowed_host_paths, by name or
// through a symlink, and guest paths that clash are refused before
// anything runs, as job errors that say what to change.
func TestHostMountsRefused(t *testing.T) {
	t.Parallel()
	d := newHostDirs(t)
	h := newHarnessConfig(t, Config{Engine: EngineAuto, AllowedHostPaths: []string{d.allowed}})
	none := newHarnessConfig(t, Config{Engine: EngineAuto})
	for _, tc := range []struct {
		what string
		h    *harness
		tc   TaskConfig
		err  string
	}{
		{"outside the allowed paths", h, TaskConfig{Mounts: []HostMount{{HostPath: d.outside, GuestPath: "/data"}}}, "not inside the plugin config's allowed_host_paths"},
		{"through a symlink that leads out", h, TaskConfig{Mounts: []HostMount{{HostPath: filepath.Join(d.allowed, "escape"), GuestPath: "/data"}}}, "resolves to " + d.outside},
		{"by .. out of the allowed path", h, TaskConfig{Mounts: []HostMount{{HostPath: d.allowed + "/../outside", GuestPath: "/data"}}}, "not inside the plugin config's allowed_host_paths"},
		{"a file, not a directory", h, TaskConfig{Mounts: []HostMount{{HostPath: filepath.Join(d.allowed, "data", "greeting.txt"), GuestPath: "/data"}}}, "is not a directory"},
		{"no allowed paths at all", none, TaskConfig{Mounts: []HostMount{{HostPath: d.allowed, GuestPath: "/data"}}}, "allowed_host_paths is empty"},
		{"a module outside the allowed paths", h, TaskConfig{Module: filepath.Join(d.outside, "secret.txt")}, "neither in the task's view nor an allowed host path"},
		{"two mounts, one inside the other", h, TaskConfig{Mounts: []HostMount{{HostPath: d.allowed, GuestPath: "/data"}, {HostPath: d.allowed, GuestPath: "/data/inner"}}}, "overlaps /data"},
	} {
		tk := tc.h.newTask(t, "probe", 64, tc.tc)
		must.ErrorContains(t, tc.h.startErr(t, tk), tc.err, must.Sprint(tc.what))
	}
	for _, tc := range []struct{ guest, err string }{
		{"/local/data", "overlaps /local"},
		{"/", "other than /"},
		{"data", "absolute"},
		{"/data/../etc", "clean"},
	} {
		c := TaskConfig{Module: "local/app.wasm", Mounts: []HostMount{{HostPath: d.allowed, GuestPath: tc.guest}}}
		must.ErrorContains(t, c.Validate(), tc.err, must.Sprint(tc.guest))
	}
	c := Config{AllowedHostPaths: []string{"opt/wasm"}}
	must.ErrorContains(t, c.Validate(), "not an absolute path")
}

// TestMountReadOnlyByDefault: a mount block that says nothing of readonly
// is read-only, as the job's author reads it through the schema.
func TestMountReadOnlyByDefault(t *testing.T) {
	t.Parallel()
	dec, diags := hclspecutils.Convert(taskConfigSpec)
	must.False(t, diags.HasErrors())
	val, diags, errs := hclutils.ParseHclInterface(map[string]any{
		"module": "local/app.wasm",
		"mount":  []map[string]any{{"host_path": "/opt/wasm/data", "guest_path": "/data"}},
	}, dec, nil)
	must.False(t, diags.HasErrors())
	must.SliceEmpty(t, errs)
	var cfg drivers.TaskConfig
	must.NoError(t, cfg.EncodeDriverConfig(val))
	var tc TaskConfig
	must.NoError(t, cfg.DecodeDriverConfig(&tc))
	must.Eq(t, []HostMount{{HostPath: "/opt/wasm/data", GuestPath: "/data", ReadOnly: true}}, tc.Mounts)
}
