// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/nomad/helper/pluginutils/hclspecutils"
	"github.com/hashicorp/nomad/helper/pluginutils/hclutils"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"
	"github.com/shoenig/test/must"
)

// decode decodes an HCL config block with spec as Nomad does, returning
// its diagnostics.
func decode(t *testing.T, spec *hclspec.Spec, src string, out any) hcl.Diagnostics {
	t.Helper()
	dec, diags := hclspecutils.Convert(spec)
	must.False(t, diags.HasErrors())
	val, diags, errs := hclutils.ParseHclInterface(hclutils.HclConfigToInterface(t, src), dec, nil)
	if diags.HasErrors() {
		return diags
	}
	must.SliceEmpty(t, errs)
	var tc drivers.TaskConfig
	must.NoError(t, tc.EncodeDriverConfig(val))
	must.NoError(t, tc.DecodeDriverConfig(out))
	return nil
}

func TestTaskConfigDecoding(t *testing.T) {
	t.Parallel()
	var tc TaskConfig
	diags := decode(t, taskConfigSpec, `config {
  module = "local/app.wasm"
  args   = ["a", "b"]
  sha256 = "`+"ab"+`"
}`, &tc)
	must.Nil(t, diags)
	must.Eq(t, TaskConfig{Module: "local/app.wasm", Args: []string{"a", "b"}, Sha256: "ab", Entrypoint: "_start", Mounts: []HostMount{}}, tc)
}

func TestTaskConfigRejectsUnknownAndMissingFields(t *testing.T) {
	t.Parallel()
	var tc TaskConfig
	diags := decode(t, taskConfigSpec, `config {
  module = "local/app.wasm"
  modul  = "typo"
}`, &tc)
	must.True(t, diags.HasErrors())
	must.StrContains(t, diags.Error(), `No argument or block type is named "modul"`)

	diags = decode(t, taskConfigSpec, `config {
  args = ["x"]
}`, &tc)
	must.True(t, diags.HasErrors())
	must.StrContains(t, diags.Error(), `Missing required argument; The argument "module" is required`)
}

func TestPluginConfigDecoding(t *testing.T) {
	t.Parallel()
	var c Config
	must.Nil(t, decode(t, configSpec, `config {}`, &c))
	must.Eq(t, EngineAuto, c.Engine)
	must.NoError(t, c.Validate())
	must.Eq(t, DefaultCacheDir(), c.CacheDir)

	diags := decode(t, configSpec, `config {
  cache_dir = "/var/cache/x"
  engien = "compiler"
}`, &c)
	must.True(t, diags.HasErrors())
	must.StrContains(t, diags.Error(), `No argument or block type is named "engien". Did you mean "engine"?`)
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		c    Config
		want string
	}{
		{Config{Engine: "jit"}, `engine "jit" is not one of auto, compiler, interpreter`},
		{Config{Engine: "auto", CacheDir: "relative/dir"}, `cache_dir "relative/dir" must be an absolute path`},
	}
	for _, c := range cases {
		must.ErrorContains(t, c.c.Validate(), c.want)
	}
	tc := TaskConfig{}
	must.ErrorContains(t, tc.Validate(), "module is required: set it to the module's path in the task, for example local/app.wasm")
}
