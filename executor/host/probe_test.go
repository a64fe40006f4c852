// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/shoenig/test/must"
	"github.com/tetratelabs/wazero/api"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// TestFeatureSet: the features reported are read from the runtime's
// configuration, so another configuration reports other features.
func TestFeatureSet(t *testing.T) {
	t.Parallel()
	v2 := featureSet(coreFeatures)
	must.MapLen(t, len(features), v2)
	for _, f := range []string{"bulk_memory", "multi_value", "mutable_global", "nontrapping_float_to_int", "reference_types", "sign_extension", "simd"} {
		must.True(t, v2[f], must.Sprint(f))
	}
	for _, f := range []string{"threads", "tail_call", "exception_handling", "memory64"} {
		must.False(t, v2[f], must.Sprint(f))
	}
	v1 := featureSet(api.CoreFeaturesV1)
	must.True(t, v1["mutable_global"])
	must.False(t, v1["simd"])
	must.False(t, v1["bulk_memory"])
}

func TestVersionProbe(t *testing.T) {
	t.Parallel()
	resp := version(context.Background(), &proto.VersionRequest{Engine: "auto", CacheDir: t.TempDir()}, false)
	must.Eq(t, "", resp.EngineError)
	must.Eq(t, "", resp.CacheError)
	want := executor.EngineInterpreter
	if compilerSupported() {
		want = executor.EngineCompiler
	}
	must.Eq(t, want, resp.Engine)
	must.Eq(t, int32(os.Getpid()), resp.Pid)
	must.Eq(t, "wazero", resp.Runtime)

	resp = version(context.Background(), &proto.VersionRequest{Engine: "interpreter"}, false)
	must.Eq(t, executor.EngineInterpreter, resp.Engine)

	resp = version(context.Background(), &proto.VersionRequest{Engine: "jit"}, false)
	must.Eq(t, "", resp.Engine)
	must.StrContains(t, resp.EngineError, `engine "jit" is not one of auto, compiler, interpreter`)

	file := filepath.Join(t.TempDir(), "file")
	must.NoError(t, os.WriteFile(file, nil, 0o644))
	resp = version(context.Background(), &proto.VersionRequest{CacheDir: filepath.Join(file, "cache")}, false)
	must.StrContains(t, resp.CacheError, "not a directory")

	// An executor that runs as a task's user only reads the cache: a
	// directory it may read will do; one that does not exist will not.
	ro := t.TempDir()
	must.NoError(t, os.Chmod(ro, 0o555))
	resp = version(context.Background(), &proto.VersionRequest{CacheDir: ro}, true)
	must.Eq(t, "", resp.CacheError)
	resp = version(context.Background(), &proto.VersionRequest{CacheDir: filepath.Join(ro, "missing")}, true)
	must.StrContains(t, resp.CacheError, "no such file or directory")
}

func TestResolveEngine(t *testing.T) {
	t.Parallel()
	e, err := resolveEngine("interpreter")
	must.NoError(t, err)
	must.Eq(t, executor.EngineInterpreter, e)
	if compilerSupported() {
		e, err = resolveEngine("compiler")
		must.NoError(t, err)
		must.Eq(t, executor.EngineCompiler, e)
	} else {
		_, err = resolveEngine("compiler")
		must.ErrorContains(t, err, runtime.GOARCH)
	}
}
