// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/fingerprint"
)

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
	must.MapContainsKey(t, fp.Attributes, fingerprint.AttrEngine)

	must.NoError(t, os.RemoveAll(cache))
	must.NoError(t, os.WriteFile(cache, nil, 0o644))
	deadline := time.Now().Add(10 * time.Second)
	for fp.Health == drivers.HealthStateHealthy && time.Now().Before(deadline) {
		fp = next()
	}
	must.Eq(t, drivers.HealthStateUnhealthy, fp.Health)
	must.StrContains(t, fp.HealthDescription, "is not usable")
}
