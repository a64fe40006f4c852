// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package fingerprint turns what an executor reports about itself (its
// runtime and version, the engine, the WASI level, the WebAssembly features
// guests get, whether the cache is usable) into driver attributes and
// health. It asks no runtime itself: the attributes describe what a task
// really gets because they come from the executor that would run it. It
// must not link wazero.
package fingerprint

import (
	"fmt"

	"github.com/hashicorp/nomad/plugins/drivers"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
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

// FromExecutor fingerprints the node from an executor's answer to a
// Version call that named the plugin's engine setting and cache
// directory, or from the error of getting one. Without an executor the
// driver is undetected: it cannot run anything here.
func FromExecutor(v *proto.VersionResponse, err error, cacheDir string) *drivers.Fingerprint {
	if err != nil {
		return &drivers.Fingerprint{
			Health:            drivers.HealthStateUndetected,
			HealthDescription: fmt.Sprintf("no wasm executor could be started on this node: %v", err),
		}
	}
	attrs := map[string]*pstructs.Attribute{
		AttrRuntime:        pstructs.NewStringAttribute(v.Runtime),
		AttrRuntimeVersion: pstructs.NewStringAttribute(v.RuntimeVersion),
		AttrWASI:           pstructs.NewStringAttribute(v.Wasi),
		AttrVersion:        pstructs.NewStringAttribute(v.Version),
	}
	for name, enabled := range v.Features {
		attrs[AttrFeaturePrefix+name] = pstructs.NewBoolAttribute(enabled)
	}
	unhealthy := func(format string, args ...any) *drivers.Fingerprint {
		return &drivers.Fingerprint{Attributes: attrs, Health: drivers.HealthStateUnhealthy, HealthDescription: fmt.Sprintf(format, args...)}
	}
	if v.EngineError != "" {
		return unhealthy("%s", v.EngineError)
	}
	attrs[AttrEngine] = pstructs.NewStringAttribute(v.Engine)
	if v.CacheError != "" {
		return unhealthy("cache_dir %s is not usable: %s; set cache_dir in the plugin config to a writable directory", cacheDir, v.CacheError)
	}
	return &drivers.Fingerprint{Attributes: attrs, Health: drivers.HealthStateHealthy, HealthDescription: drivers.DriverHealthy}
}
