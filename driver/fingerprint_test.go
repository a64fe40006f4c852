// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/nomad/helper/testlog"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"
	"golang.org/x/mod/modfile"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/fingerprint"
)

// wazeroInGoMod is the wazero version that go.mod requires.
func wazeroInGoMod(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../go.mod")
	must.NoError(t, err)
	f, err := modfile.Parse("go.mod", b, nil)
	must.NoError(t, err)
	for _, r := range f.Require {
		if r.Mod.Path == "github.com/tetratelabs/wazero" {
			return r.Mod.Version
		}
	}
	t.Fatal("wazero not in go.mod")
	return ""
}

// TestFingerprintIsPeriodic checks that the node is fingerprinted again and
// that a cache dir that becomes unusable turns the driver unhealthy.
func TestFingerprintIsPeriodic(t *testing.T) {
	t.Parallel()
	cache := filepath.Join(t.TempDir(), "cache")
	h := newHarness(t, cache)
	h.driver.fingerprintPeriod = 50 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := h.Fingerprint(ctx)
	must.NoError(t, err)

	next := func() *drivers.Fingerprint {
		select {
		case fp := <-ch:
			return fp
		case <-time.After(10 * time.Second):
			t.Fatal("no fingerprint")
		}
		return nil
	}
	fp := next()
	must.Eq(t, drivers.HealthStateHealthy, fp.Health)
	// The attributes are what an executor reports of the runtime it links
	// and the configuration guests run with.
	str := func(name string) string {
		a, ok := fp.Attributes[name]
		must.True(t, ok, must.Sprintf("attribute %s missing", name))
		s, ok := a.GetString()
		must.True(t, ok)
		return s
	}
	must.Eq(t, "wazero", str(fingerprint.AttrRuntime))
	must.Eq(t, wazeroInGoMod(t), str(fingerprint.AttrRuntimeVersion))
	must.Eq(t, "preview1", str(fingerprint.AttrWASI))
	must.Eq(t, executor.Version, str(fingerprint.AttrVersion))
	must.SliceContains(t, []string{EngineCompiler, EngineInterpreter}, str(fingerprint.AttrEngine))
	for feature, want := range map[string]bool{"simd": true, "bulk_memory": true, "threads": false, "memory64": false} {
		b, ok := fp.Attributes[fingerprint.AttrFeaturePrefix+feature].GetBool()
		must.True(t, ok, must.Sprint(feature))
		must.Eq(t, want, b, must.Sprint(feature))
	}

	must.NoError(t, os.RemoveAll(cache))
	must.NoError(t, os.WriteFile(cache, nil, 0o644))
	deadline := time.Now().Add(10 * time.Second)
	for fp.Health == drivers.HealthStateHealthy && time.Now().Before(deadline) {
		fp = next()
	}
	must.Eq(t, drivers.HealthStateUnhealthy, fp.Health)
	must.StrContains(t, fp.HealthDescription, "is not usable")
}

// TestFingerprintWithoutExecutor: a node where no executor can start has
// the driver undetected, with the reason.
func TestFingerprintWithoutExecutor(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := New(ctx, testlog.HCLogger(t))
	d.executors.binary = filepath.Join(t.TempDir(), "missing-plugin-binary")
	fp := d.fingerprint(ctx)
	must.Eq(t, drivers.HealthStateUndetected, fp.Health)
	must.StrContains(t, fp.HealthDescription, "no wasm executor could be started on this node")
	must.StrContains(t, fp.HealthDescription, "missing-plugin-binary")
}
