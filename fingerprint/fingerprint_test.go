// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package fingerprint

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
)

func TestProbeHealthyAttributes(t *testing.T) {
	t.Parallel()
	fp := Probe(context.Background(), "auto", t.TempDir(), "1.2.3")
	must.Eq(t, drivers.HealthStateHealthy, fp.Health, must.Sprint(fp.HealthDescription))
	str := func(name string) string {
		a, ok := fp.Attributes[name]
		must.True(t, ok, must.Sprintf("attribute %s missing", name))
		s, ok := a.GetString()
		must.True(t, ok)
		return s
	}
	must.Eq(t, "wazero", str(AttrRuntime))
	must.Eq(t, "v1.12.0", str(AttrRuntimeVersion))
	must.Eq(t, "preview1", str(AttrWASI))
	must.Eq(t, "1.2.3", str(AttrVersion))
	want := executor.EngineInterpreter
	if CompilerSupported() {
		want = executor.EngineCompiler
	}
	must.Eq(t, want, str(AttrEngine))
	for _, f := range Features {
		b, ok := fp.Attributes[AttrFeaturePrefix+f.Name].GetBool()
		must.True(t, ok)
		must.Eq(t, f.Enabled, b, must.Sprint(f.Name))
	}
}

func TestProbeInterpreter(t *testing.T) {
	t.Parallel()
	fp := Probe(context.Background(), "interpreter", t.TempDir(), "1.2.3")
	must.Eq(t, drivers.HealthStateHealthy, fp.Health)
	engine, _ := fp.Attributes[AttrEngine].GetString()
	must.Eq(t, executor.EngineInterpreter, engine)
}

func TestProbeUnusableCacheDir(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	must.NoError(t, os.WriteFile(file, nil, 0o644))
	dir := filepath.Join(file, "cache")
	fp := Probe(context.Background(), "auto", dir, "1.2.3")
	must.Eq(t, drivers.HealthStateUnhealthy, fp.Health)
	must.StrContains(t, fp.HealthDescription, "cache_dir "+dir+" is not usable")
	must.StrContains(t, fp.HealthDescription, "set cache_dir in the plugin config to a writable directory")
	// The attributes are still reported, so operators can see what the node has.
	must.MapContainsKey(t, fp.Attributes, AttrRuntimeVersion)
}

func TestResolveEngine(t *testing.T) {
	t.Parallel()
	_, err := ResolveEngine("jit")
	must.ErrorContains(t, err, `engine "jit" is not one of auto, compiler, interpreter`)
	e, err := ResolveEngine("interpreter")
	must.NoError(t, err)
	must.Eq(t, executor.EngineInterpreter, e)
	if CompilerSupported() {
		e, err = ResolveEngine("compiler")
		must.NoError(t, err)
		must.Eq(t, executor.EngineCompiler, e)
	} else {
		_, err = ResolveEngine("compiler")
		must.ErrorContains(t, err, runtime.GOARCH)
	}
}
