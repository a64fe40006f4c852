// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"testing"
	"time"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver/oci"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver/oci/ocitest"
)

// BenchmarkModuleSource: what a module from a registry costs a task's
// start, against a real registry served in-process over loopback, for the
// small C module and the 2.5 MB Go module: StartTask until the guest's
// first output, the module compiled on the node before, from /local and
// from a digest reference already pulled, alternating (start/local and
// start/oci-digest); the target is a difference (delta-ms: the median of
// oci-digest minus local over the pairs) of at most 1 ms. What the pull
// itself costs is oci's BenchmarkPull.
func BenchmarkModuleSource(b *testing.B) {
	for _, g := range []struct {
		name, module string
		args         []string
	}{
		{"c", "probe", []string{"hello"}},
		{"go", "hello-go", nil},
	} {
		reg := ocitest.NewRegistry(b, "", "")
		manifest := reg.Push(b, "bench/"+g.module, "v1", ocitest.WasmArtifact(b, moduleBytes(b, g.module)))
		byDigest := oci.Scheme + reg.Host + "/bench/" + g.module + "@" + manifest

		// Both starts in one driver and one run, alternating, so that the
		// machine's drift is shared.
		b.Run(g.name+"/start", func(b *testing.B) {
			d := benchDriver(b, b.TempDir(), 0)
			d.config.InsecureRegistries = []string{reg.Host}
			task := func(module string) func() time.Duration {
				return func() time.Duration {
					cfg := benchTask(b, g.module, g.args)
					if module != "" {
						tc := TaskConfig{Module: module, Args: g.args}
						if err := cfg.EncodeConcreteDriverConfig(&tc); err != nil {
							b.Fatal(err)
						}
					}
					waitSpare(b, d)
					return startTask(b, d, cfg)
				}
			}
			local, fromOCI := task(""), task(byDigest)
			local()   // compiles the module into the node's cache
			fromOCI() // pulls it
			var ls, ocis, deltas []time.Duration
			for b.Loop() {
				l, o := local(), fromOCI()
				ls, ocis, deltas = append(ls, l), append(ocis, o), append(deltas, o-l)
			}
			b.ReportMetric(ms(percentile(ls, 0.5)), "local-p50-ms")
			b.ReportMetric(ms(percentile(ocis, 0.5)), "oci-digest-p50-ms")
			// The median of the pairs' differences: each pair ran back to
			// back, so the machine's drift cancels out.
			b.ReportMetric(ms(percentile(deltas, 0.5)), "delta-ms")
		})
	}
}
