// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package fingerprint probes what the node can offer WebAssembly tasks and
// turns it into driver attributes and health. It starts no tasks and keeps
// no state.
package fingerprint

import (
	"context"
	"fmt"
	"os"
	"runtime"

	"github.com/hashicorp/nomad/plugins/drivers"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"golang.org/x/sys/cpu"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
)

// Attribute names. Jobs constrain on them as ${attr.driver.wasm...}.
const (
	AttrRuntime        = "driver.wasm.runtime"
	AttrRuntimeVersion = "driver.wasm.runtime.version"
	AttrEngine         = "driver.wasm.engine"
	AttrWASI           = "driver.wasm.wasi"
	AttrVersion        = "driver.wasm.version"
	// AttrFeaturePrefix prefixes one boolean attribute per Wasm feature.
	AttrFeaturePrefix = "driver.wasm.feature."
)

// Features lists the WebAssembly features reported as attributes, and
// whether tasks on this driver get them. The driver runs guests with the
// WebAssembly 2.0 feature set; wazero's experimental proposals are off.
var Features = []struct {
	Name    string
	Enabled bool
}{
	{"bulk_memory", true},
	{"multi_value", true},
	{"mutable_global", true},
	{"nontrapping_float_to_int", true},
	{"reference_types", true},
	{"sign_extension", true},
	{"simd", true},
	{"threads", false},
	{"tail_call", false},
	{"exception_handling", false},
	{"memory64", false},
}

// CompilerSupported reports whether wazero's optimising compiler runs on
// this platform: the conditions wazero itself checks, as far as they can be
// seen from outside it.
func CompilerSupported() bool {
	switch runtime.GOOS {
	case "linux", "darwin", "freebsd", "netbsd", "windows":
	default:
		return false
	}
	switch runtime.GOARCH {
	case "arm64":
		return true
	case "amd64":
		return cpu.X86.HasSSE41
	}
	return false
}

// ResolveEngine turns the plugin's engine setting into the engine tasks
// run with.
func ResolveEngine(setting string) (string, error) {
	switch setting {
	case "", "auto":
		if CompilerSupported() {
			return executor.EngineCompiler, nil
		}
		return executor.EngineInterpreter, nil
	case executor.EngineCompiler:
		if !CompilerSupported() {
			return "", fmt.Errorf("engine is compiler, but wazero's compiler does not support %s/%s: set engine to auto or interpreter", runtime.GOOS, runtime.GOARCH)
		}
		return executor.EngineCompiler, nil
	case executor.EngineInterpreter:
		return executor.EngineInterpreter, nil
	}
	return "", fmt.Errorf("engine %q is not one of auto, compiler, interpreter", setting)
}

// emptyModule is the smallest valid module: the magic and version 1.
var emptyModule = []byte("\x00asm\x01\x00\x00\x00")

// Probe fingerprints the node for a driver configured with the given engine
// setting and cache directory.
func Probe(ctx context.Context, engineSetting, cacheDir, pluginVersion string) *drivers.Fingerprint {
	attrs := map[string]*pstructs.Attribute{
		AttrRuntime:        pstructs.NewStringAttribute("wazero"),
		AttrRuntimeVersion: pstructs.NewStringAttribute(executor.WazeroVersion()),
		AttrWASI:           pstructs.NewStringAttribute("preview1"),
		AttrVersion:        pstructs.NewStringAttribute(pluginVersion),
	}
	for _, f := range Features {
		attrs[AttrFeaturePrefix+f.Name] = pstructs.NewBoolAttribute(f.Enabled)
	}
	unhealthy := func(format string, args ...any) *drivers.Fingerprint {
		return &drivers.Fingerprint{Attributes: attrs, Health: drivers.HealthStateUnhealthy, HealthDescription: fmt.Sprintf(format, args...)}
	}

	engine, err := ResolveEngine(engineSetting)
	if err != nil {
		return unhealthy("%v", err)
	}
	attrs[AttrEngine] = pstructs.NewStringAttribute(engine)
	if err := probeEngine(ctx, engine); err != nil {
		return unhealthy("the %s engine cannot compile a module on this node: %v", engine, err)
	}
	if err := probeCacheDir(cacheDir); err != nil {
		return unhealthy("cache_dir %s is not usable: %v; set cache_dir in the plugin config to a writable directory", cacheDir, err)
	}
	return &drivers.Fingerprint{Attributes: attrs, Health: drivers.HealthStateHealthy, HealthDescription: drivers.DriverHealthy}
}

// probeEngine compiles and instantiates an empty module, which exercises the
// engine's code paths (including executable memory for the compiler).
func probeEngine(ctx context.Context, engine string) error {
	cfg := wazero.NewRuntimeConfigInterpreter()
	if engine == executor.EngineCompiler {
		cfg = wazero.NewRuntimeConfigCompiler()
	}
	rt := wazero.NewRuntimeWithConfig(ctx, cfg.WithCoreFeatures(api.CoreFeaturesV2))
	defer rt.Close(ctx)
	_, err := rt.Instantiate(ctx, emptyModule)
	return err
}

// probeCacheDir checks that the cache directory exists or can be created,
// and is writable.
func probeCacheDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return err
	}
	name := f.Name()
	_ = f.Close()
	return os.Remove(name)
}
