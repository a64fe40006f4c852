// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"fmt"
	"os"
	"runtime"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/cpu"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/modcache"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// features names the WebAssembly features reported to the driver (as
// attributes driver.wasm.feature.<name>) by the bit that turns each on in
// wazero. Whether a guest gets one is read from coreFeatures, the set the
// runtime is configured with. memory64 has no bit: wazero does not
// implement it.
var features = []struct {
	name string
	bit  api.CoreFeatures
}{
	{"bulk_memory", api.CoreFeatureBulkMemoryOperations},
	{"multi_value", api.CoreFeatureMultiValue},
	{"mutable_global", api.CoreFeatureMutableGlobal},
	{"nontrapping_float_to_int", api.CoreFeatureNonTrappingFloatToIntConversion},
	{"reference_types", api.CoreFeatureReferenceTypes},
	{"sign_extension", api.CoreFeatureSignExtensionOps},
	{"simd", api.CoreFeatureSIMD},
	{"threads", experimental.CoreFeaturesThreads},
	{"tail_call", experimental.CoreFeaturesTailCall},
	{"exception_handling", experimental.CoreFeaturesExceptionHandling},
	{"memory64", 0},
}

// featureSet says which features guests get from a runtime configured with
// enabled.
func featureSet(enabled api.CoreFeatures) map[string]bool {
	m := make(map[string]bool, len(features))
	for _, f := range features {
		m[f.name] = f.bit != 0 && enabled.IsEnabled(f.bit)
	}
	return m
}

// compilerSupported reports whether wazero's optimising compiler runs on
// this platform: the conditions wazero itself checks, as far as they can be
// seen from outside it. The probe then confirms it by compiling a module.
func compilerSupported() bool {
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

// resolveEngine turns an engine setting into the engine guests run with.
func resolveEngine(setting string) (string, error) {
	switch setting {
	case "", executor.EngineAuto:
		if compilerSupported() {
			return executor.EngineCompiler, nil
		}
		return executor.EngineInterpreter, nil
	case executor.EngineCompiler:
		if !compilerSupported() {
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

// version answers the Version call: who this executor is and, when req
// names an engine and a cache directory, what tasks get on this node.
//
// readOnly: the executor runs as a task's user and only reads the cache
// (see modcache.Cache.ReadOnly), so the cache need only be readable by it.
func version(ctx context.Context, req *proto.VersionRequest, readOnly bool) *proto.VersionResponse {
	resp := &proto.VersionResponse{
		Version:        executor.Version,
		Protocol:       executor.ProtocolVersion,
		Pid:            int32(os.Getpid()),
		Runtime:        "wazero",
		RuntimeVersion: modcache.WazeroVersion(),
		Wasi:           "preview1",
		Features:       featureSet(coreFeatures),
	}
	if req.Engine != "" {
		engine, err := resolveEngine(req.Engine)
		if err == nil {
			err = probeEngine(ctx, engine)
			if err != nil {
				err = fmt.Errorf("the %s engine cannot compile a module on this node: %w", engine, err)
			}
		}
		if err != nil {
			resp.EngineError = err.Error()
		} else {
			resp.Engine = engine
		}
	}
	if req.CacheDir != "" {
		if err := (modcache.Cache{Dir: req.CacheDir, ReadOnly: readOnly}).Check(); err != nil {
			resp.CacheError = err.Error()
		}
	}
	return resp
}

// probeEngine compiles and instantiates an empty module with the
// configuration guests run with, which exercises the engine's code paths
// (including executable memory for the compiler).
func probeEngine(ctx context.Context, engine string) error {
	rt := wazero.NewRuntimeWithConfig(ctx, runtimeConfig(engine, interruptible(true)))
	defer rt.Close(ctx)
	_, err := rt.Instantiate(ctx, emptyModule)
	return err
}
