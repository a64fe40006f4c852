// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package fingerprint

import (
	"errors"
	"testing"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

func answer() *proto.VersionResponse {
	return &proto.VersionResponse{
		Version: "1.2.3", Runtime: "wazero", RuntimeVersion: "v9.9.9", Wasi: "preview1", Engine: "compiler",
		Features: map[string]bool{"simd": true, "threads": false},
	}
}

func str(t *testing.T, fp *drivers.Fingerprint, name string) string {
	t.Helper()
	a, ok := fp.Attributes[name]
	must.True(t, ok, must.Sprintf("attribute %s missing", name))
	s, ok := a.GetString()
	must.True(t, ok)
	return s
}

// TestFromExecutor: every attribute is what the executor reported.
func TestFromExecutor(t *testing.T) {
	t.Parallel()
	fp := FromExecutor(answer(), nil, "/cache")
	must.Eq(t, drivers.HealthStateHealthy, fp.Health, must.Sprint(fp.HealthDescription))
	must.Eq(t, "wazero", str(t, fp, AttrRuntime))
	must.Eq(t, "v9.9.9", str(t, fp, AttrRuntimeVersion))
	must.Eq(t, "preview1", str(t, fp, AttrWASI))
	must.Eq(t, "1.2.3", str(t, fp, AttrVersion))
	must.Eq(t, "compiler", str(t, fp, AttrEngine))
	simd, ok := fp.Attributes[AttrFeaturePrefix+"simd"].GetBool()
	must.True(t, ok)
	must.True(t, simd)
	threads, ok := fp.Attributes[AttrFeaturePrefix+"threads"].GetBool()
	must.True(t, ok)
	must.False(t, threads)
	must.MapLen(t, 7, fp.Attributes)
}

func TestFromExecutorEngineError(t *testing.T) {
	t.Parallel()
	v := answer()
	v.Engine, v.EngineError = "", `engine "jit" is not one of auto, compiler, interpreter`
	fp := FromExecutor(v, nil, "/cache")
	must.Eq(t, drivers.HealthStateUnhealthy, fp.Health)
	must.Eq(t, v.EngineError, fp.HealthDescription)
	must.MapNotContainsKey(t, fp.Attributes, AttrEngine)
	// The rest is still reported, so operators can see what the node has.
	must.Eq(t, "v9.9.9", str(t, fp, AttrRuntimeVersion))
}

func TestFromExecutorCacheError(t *testing.T) {
	t.Parallel()
	v := answer()
	v.CacheError = "mkdir /cache: not a directory"
	fp := FromExecutor(v, nil, "/cache")
	must.Eq(t, drivers.HealthStateUnhealthy, fp.Health)
	must.StrContains(t, fp.HealthDescription, "cache_dir /cache is not usable: mkdir /cache: not a directory")
	must.StrContains(t, fp.HealthDescription, "set cache_dir in the plugin config to a writable directory")
	must.Eq(t, "compiler", str(t, fp, AttrEngine))
}

func TestFromExecutorWithoutExecutor(t *testing.T) {
	t.Parallel()
	fp := FromExecutor(nil, errors.New("fork/exec /x: no such file or directory"), "/cache")
	must.Eq(t, drivers.HealthStateUndetected, fp.Health)
	must.StrContains(t, fp.HealthDescription, "no wasm executor could be started on this node: fork/exec /x")
	must.MapEmpty(t, fp.Attributes)
}
