// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hashicorp/nomad/helper/pluginutils/hclspecutils"
	"github.com/hashicorp/nomad/helper/pluginutils/hclutils"
	"github.com/hashicorp/nomad/plugins/drivers"
)

// FuzzTaskConfig: whatever a job's config block holds (as the client gets
// it: a map decoded by the task config's schema, here from JSON), decoding
// and validation never panic, and a config that validates has what start
// relies on.
func FuzzTaskConfig(f *testing.F) {
	for _, seed := range []string{
		`{"module": "local/app.wasm"}`,
		`{"module": "local/app.wasm", "args": ["a", "b"], "sha256": "00", "entrypoint": "run"}`,
		`{"module": "local/app.wasm", "listeners": ["http", "HTTP"]}`,
		`{"module": "local/app.wasm", "http": [{"port": "http", "max_concurrency": 0, "timeout": "-1s"}]}`,
		`{"module": "local/app.wasm", "http": [{"port": "http", "metrics_port": "http"}]}`,
		`{"module": "local/app.wasm", "logs": [{"max_files": 1001, "max_file_size": -1}]}`,
		`{"module": "oci://ghcr.io/acme/app:v1", "auth": [{"username": "u", "password": "p"}]}`,
		`{"module": "local/app.wasm", "auth": [{"username": "u"}]}`,
		`{"module": 7, "unknown": true}`,
		`{}`,
	} {
		f.Add(seed)
	}
	dec, diags := hclspecutils.Convert(taskConfigSpec)
	if diags.HasErrors() {
		f.Fatal(diags)
	}
	f.Fuzz(func(t *testing.T, src string) {
		var m map[string]any
		if json.Unmarshal([]byte(src), &m) != nil {
			return
		}
		val, diags, errs := hclutils.ParseHclInterface(m, dec, nil)
		if diags.HasErrors() || len(errs) > 0 {
			return
		}
		var cfg drivers.TaskConfig
		if cfg.EncodeDriverConfig(val) != nil {
			return
		}
		var tc TaskConfig
		if cfg.DecodeDriverConfig(&tc) != nil {
			return
		}
		if err := tc.Validate(); err != nil {
			if err.Error() == "" {
				t.Fatal("an empty error")
			}
			return
		}
		if tc.Module == "" || tc.Entrypoint == "" {
			t.Fatalf("a valid config without module or entrypoint: %+v", tc)
		}
		if tc.HTTP.Port != "" {
			if tc.HTTP.MaxConcurrency < 1 || tc.HTTP.MaxConcurrency > maxHTTPConcurrency {
				t.Fatalf("a valid http block with max_concurrency %d", tc.HTTP.MaxConcurrency)
			}
			if d, err := time.ParseDuration(tc.HTTP.Timeout); err != nil || d <= 0 {
				t.Fatalf("a valid http block with timeout %q", tc.HTTP.Timeout)
			}
		}
		if tc.Logs.MaxFiles < 0 || tc.Logs.MaxFileSize < 0 {
			t.Fatalf("valid logs limits below zero: %+v", tc.Logs)
		}
	})
}
