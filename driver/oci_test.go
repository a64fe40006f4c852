// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver/oci"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver/oci/ocitest"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

func moduleBytes(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(testmodule.Path(t, name))
	must.NoError(t, err)
	return b
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestOCIModule: a module pulled from a registry by tag runs, from a Wasm
// artifact or from a one-layer image; what ran is in the event and the
// task's attributes; a tag that moves is followed; a digest reference
// once pulled starts with the registry down.
func TestOCIModule(t *testing.T) {
	t.Parallel()
	reg := ocitest.NewRegistry(t, "", "")
	h := newHarnessConfig(t, Config{Engine: EngineAuto, InsecureRegistries: []string{reg.Host}})
	events := h.events(t)
	probe, hello := moduleBytes(t, "probe"), moduleBytes(t, "hello-go")
	manifest := reg.Push(t, "wasm/probe", "v1", ocitest.WasmArtifact(t, probe))

	run := func(module string, tc TaskConfig) (*task, *drivers.TaskHandle) {
		t.Helper()
		tc.Module = module
		tk := h.newTask(t, "", goModuleMemoryMB, tc)
		handle, _, err := h.StartTask(tk.cfg)
		must.NoError(t, err)
		h.cleanupTask(t, tk)
		must.Eq(t, 0, h.wait(t, tk.cfg.ID).ExitCode)
		return tk, handle
	}

	tk, _ := run("oci://"+reg.Host+"/wasm/probe:v1", TaskConfig{Args: []string{"hello"}})
	tk.waitLog(t, "stdout", "hello from wasm")
	ev := waitEvent(t, events, tk.cfg.ID, "pulled from its registry")
	must.Eq(t, manifest, ev.Annotations["manifest"])
	must.Eq(t, sha(probe), ev.Annotations["module_sha256"])
	status, err := h.InspectTask(tk.cfg.ID)
	must.NoError(t, err)
	must.Eq(t, sha(probe), status.DriverAttributes["module_sha256"])
	must.Eq(t, manifest, status.DriverAttributes["module_manifest"])

	// A one-layer image whose tar holds one .wasm file (and other files).
	reg.Push(t, "wasm/hello-image", "v1", ocitest.TarImage(t, map[string][]byte{"app/hello.wasm": hello, "README": []byte("hi")}))
	tk, _ = run("oci://"+reg.Host+"/wasm/hello-image:v1", TaskConfig{})
	tk.waitLog(t, "stdout", "hello from go wasm")

	// Any manifest with one application/wasm layer (what oras push makes).
	orasLike, err := mutate.AppendLayers(empty.Image, static.NewLayer(probe, ocitest.WasmLayerMediaType))
	must.NoError(t, err)
	reg.Push(t, "wasm/oras", "v1", orasLike)
	tk, _ = run("oci://"+reg.Host+"/wasm/oras:v1", TaskConfig{Args: []string{"hello"}})
	tk.waitLog(t, "stdout", "hello from wasm")
	// Again: the tag is resolved, and nothing pulled.
	tk, _ = run("oci://"+reg.Host+"/wasm/oras:v1", TaskConfig{Args: []string{"hello"}})
	waitEvent(t, events, tk.cfg.ID, "whose module was on the node already")

	// The tag moves: the next start runs what it names now.
	moved := reg.Push(t, "wasm/probe", "v1", ocitest.WasmArtifact(t, hello))
	must.NotEq(t, manifest, moved)
	tk, _ = run("oci://"+reg.Host+"/wasm/probe:v1", TaskConfig{})
	tk.waitLog(t, "stdout", "hello from go wasm")

	// By digest, pulled once; then the registry goes away, and the same
	// digest still starts, from the node.
	byDigest := "oci://" + reg.Host + "/wasm/probe@" + manifest
	run(byDigest, TaskConfig{Args: []string{"hello"}})
	reg.Server.Close()
	tk, _ = run(byDigest, TaskConfig{Args: []string{"hello"}, Sha256: sha(probe)})
	tk.waitLog(t, "stdout", "hello from wasm")
	waitEvent(t, events, tk.cfg.ID, "no registry was asked")
}

// TestOCIModuleRefused: each way an OCI module can be wrong is refused
// before anything runs, with an error of its class that says what to do.
func TestOCIModuleRefused(t *testing.T) {
	t.Parallel()
	open := ocitest.NewRegistry(t, "", "")
	locked := ocitest.NewRegistry(t, "alice", "s3cret")
	down := ocitest.NewRegistry(t, "", "")
	down.Server.Close()
	probe, hello := moduleBytes(t, "probe"), moduleBytes(t, "hello-go")
	open.Push(t, "wasm/probe", "v1", ocitest.WasmArtifact(t, probe))
	open.Push(t, "wasm/two", "v1", ocitest.TarImage(t, map[string][]byte{"a.wasm": probe, "b.wasm": hello}))
	locked.Push(t, "wasm/probe", "v1", ocitest.WasmArtifact(t, probe))

	insecure := []string{open.Host, locked.Host, down.Host}
	h := newHarnessConfig(t, Config{Engine: EngineAuto, InsecureRegistries: insecure, MaxModuleBytes: 1 << 30})
	// start returns the class the start's event gives its error, and the error
	// (the class does not cross the plugin's gRPC).
	start := func(h *harness, module string, tc TaskConfig) (string, error) {
		events := h.events(t)
		tc.Module = module
		tk := h.newTask(t, "", goModuleMemoryMB, tc)
		err := h.startErr(t, tk)
		must.Error(t, err)
		ev := waitEvent(t, events, tk.cfg.ID, strings.TrimPrefix(module, oci.Scheme))
		return ev.Annotations["error_class"], err
	}
	for _, tc := range []struct {
		what, module string
		config       TaskConfig
		class        executor.Class
		err          string
	}{
		{"no such tag", "oci://" + open.Host + "/wasm/probe:v9", TaskConfig{}, executor.ClassJob, "was not found"},
		{"a digest that is not there", "oci://" + open.Host + "/wasm/probe@sha256:" + strings.Repeat("0", 64), TaskConfig{}, executor.ClassJob, "was not found"},
		{"two modules in the layer", "oci://" + open.Host + "/wasm/two:v1", TaskConfig{}, executor.ClassJob, "holds 2 .wasm files (a.wasm, b.wasm)"},
		{"a sha256 pin the module does not match", "oci://" + open.Host + "/wasm/probe:v1", TaskConfig{Sha256: sha(hello)}, executor.ClassJob, "the reference and the pin disagree"},
		{"no credentials", "oci://" + locked.Host + "/wasm/probe:v1", TaskConfig{}, executor.ClassJob, "refused the credentials"},
		{"wrong credentials", "oci://" + locked.Host + "/wasm/probe:v1", TaskConfig{Auth: RegistryAuth{Username: "alice", Password: "wrong"}}, executor.ClassJob, "refused the credentials"},
		{"the registry is down", "oci://" + down.Host + "/wasm/probe:v1", TaskConfig{}, executor.ClassNode, "cannot be reached"},
	} {
		class, err := start(h, tc.module, tc.config)
		must.ErrorContains(t, err, tc.err, must.Sprint(tc.what))
		must.Eq(t, tc.class.String(), class, must.Sprint(tc.what))
		must.StrNotContains(t, err.Error(), "s3cret", must.Sprint("a password in an error"))
		must.StrNotContains(t, err.Error(), "wrong", must.Sprint("a password in an error"))
	}

	// A registry not listed in insecure_registries is not reached over
	// plain HTTP: the operator must list it.
	strict := newHarnessConfig(t, Config{Engine: EngineAuto})
	class, err := start(strict, "oci://"+open.Host+"/wasm/probe:v1", TaskConfig{})
	must.ErrorContains(t, err, "insecure_registries")
	must.Eq(t, executor.ClassOperator.String(), class)

	// A module beyond max_module_bytes is refused before it is pulled.
	small := newHarnessConfig(t, Config{Engine: EngineAuto, InsecureRegistries: insecure, MaxModuleBytes: 1024})
	class, err = start(small, "oci://"+open.Host+"/wasm/probe:v1", TaskConfig{})
	must.ErrorContains(t, err, "more than this node's max_module_bytes (1024)")
	must.Eq(t, executor.ClassJob.String(), class)
}

// TestOCIModuleCredentials: the task's auth block, or the plugin config's
// registry_auth for the registry, opens a registry that asks for them.
func TestOCIModuleCredentials(t *testing.T) {
	t.Parallel()
	locked := ocitest.NewRegistry(t, "alice", "s3cret")
	locked.Push(t, "wasm/probe", "v1", ocitest.WasmArtifact(t, moduleBytes(t, "probe")))
	module := "oci://" + locked.Host + "/wasm/probe:v1"

	h := newHarnessConfig(t, Config{Engine: EngineAuto, InsecureRegistries: []string{locked.Host}})
	tk := h.newTask(t, "", 64, TaskConfig{Module: module, Args: []string{"hello"}, Auth: RegistryAuth{Username: "alice", Password: "s3cret"}})
	must.Eq(t, 0, h.run(t, tk).ExitCode)

	h = newHarnessConfig(t, Config{Engine: EngineAuto, InsecureRegistries: []string{locked.Host},
		RegistryAuth: []RegistryAuth{{Registry: locked.Host, Username: "alice", Password: "s3cret"}}})
	tk = h.newTask(t, "", 64, TaskConfig{Module: module, Args: []string{"hello"}})
	must.Eq(t, 0, h.run(t, tk).ExitCode)
}

func TestOCIConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ module, err string }{
		{"oci://wasm/probe:v1", "names its registry"},
		{"oci://ghcr.io/wasm/probe", "names no tag or digest"},
		{"oci://ghcr.io/wasm/Probe:v1", "is not an OCI reference"},
	} {
		c := TaskConfig{Module: tc.module}
		must.ErrorContains(t, c.Validate(), tc.err, must.Sprint(tc.module))
	}
	c := TaskConfig{Module: "local/app.wasm", Auth: RegistryAuth{Username: "u"}}
	must.ErrorContains(t, c.Validate(), "auth is for a module from an OCI registry")
	must.StrNotContains(t, RegistryAuth{Username: "u", Password: "p4ss"}.String(), "p4ss")
	for _, pc := range []struct {
		c   Config
		err string
	}{
		{Config{InsecureRegistries: []string{"http://r:5000"}}, "insecure_registries"},
		{Config{RegistryAuth: []RegistryAuth{{Registry: "r"}, {Registry: "r"}}}, "two blocks"},
		{Config{MaxModuleBytes: -1}, "max_module_bytes = -1"},
	} {
		must.ErrorContains(t, pc.c.Validate(), pc.err)
	}
}

// TestOCIModuleDamagedCopy: a pulled module altered on the node afterwards
// is refused as the node's fault (not the job's pin), its copy removed, and
// the next start pulls it again.
func TestOCIModuleDamagedCopy(t *testing.T) {
	t.Parallel()
	reg := ocitest.NewRegistry(t, "", "")
	h := newHarnessConfig(t, Config{Engine: EngineAuto, InsecureRegistries: []string{reg.Host}})
	events := h.events(t)
	probe := moduleBytes(t, "probe")
	manifest := reg.Push(t, "wasm/probe", "v1", ocitest.WasmArtifact(t, probe))
	byDigest := "oci://" + reg.Host + "/wasm/probe@" + manifest
	start := func() (*task, error) {
		t.Helper()
		tk := h.newTask(t, "", 64, TaskConfig{Module: byDigest, Args: []string{"hello"}})
		_, _, err := h.StartTask(tk.cfg)
		if err == nil {
			h.cleanupTask(t, tk)
			must.Zero(t, h.wait(t, tk.cfg.ID).ExitCode)
		}
		return tk, err
	}
	_, err := start()
	must.NoError(t, err)

	copyPath := filepath.Join(h.cacheDir, "oci", "modules", sha(probe)+".wasm")
	must.FileExists(t, copyPath)
	must.NoError(t, os.WriteFile(copyPath, moduleBytes(t, "hello-go"), 0o644))
	tk, err := start()
	must.ErrorContains(t, err, "it was altered on the node after the pull")
	must.Eq(t, executor.ClassNode, executor.ClassOf(err))
	waitEvent(t, events, tk.cfg.ID, "was damaged and has been removed")
	must.FileNotExists(t, copyPath)

	tk, err = start()
	must.NoError(t, err)
	waitEvent(t, events, tk.cfg.ID, "pulled from its registry")
	tk.waitLog(t, "stdout", "hello from wasm")
}
