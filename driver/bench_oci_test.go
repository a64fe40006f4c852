// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package driver

import (
	"context"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// BenchmarkModuleSource: what a module from a registry costs, against a
// real registry served in-process over loopback, for the small C module
// and the 2.5 MB Go module:
//   - pull/cold: a tag resolved and the module downloaded into an empty
//     cache (p50-ms);
//   - pull/digest-cached: a digest reference already on the node: no
//     request at all (p50-µs);
//   - start/local and start/oci-digest: StartTask until the guest's first
//     output, the module compiled on the node before, from /local and from
//     a digest reference already pulled, alternating; the target is a
//     difference (delta-ms: the median of oci-digest minus local over the
//     pairs) of at most 1 ms.
func BenchmarkModuleSource(b *testing.B) {
	for _, g := range []struct {
		name, module string
		args         []string
	}{
		{"c", "probe", []string{"hello"}},
		{"go", "hello-go", nil},
	} {
		reg := newTestRegistry(b, "", "")
		manifest := reg.push(b, "bench/"+g.module, "v1", wasmArtifact(b, moduleBytes(b, g.module)))
		byTag := ociScheme + reg.host + "/bench/" + g.module + ":v1"
		byDigest := ociScheme + reg.host + "/bench/" + g.module + "@" + manifest
		puller := func(dir string) *ociPuller {
			return &ociPuller{dir: dir, insecure: []string{reg.host}}
		}
		pull := func(b *testing.B, p *ociPuller, ref string) time.Duration {
			b.Helper()
			src, err := parseOCI(ref)
			if err != nil {
				b.Fatal(err)
			}
			began := time.Now()
			if _, err := p.pull(context.Background(), src, nil); err != nil {
				b.Fatal(err)
			}
			return time.Since(began)
		}

		b.Run(g.name+"/pull/cold", func(b *testing.B) {
			root := b.TempDir()
			var ds []time.Duration
			for i := 0; b.Loop(); i++ {
				ds = append(ds, pull(b, puller(filepath.Join(root, strconv.Itoa(i))), byTag))
			}
			b.ReportMetric(ms(percentile(ds, 0.5)), "p50-ms")
		})
		b.Run(g.name+"/pull/digest-cached", func(b *testing.B) {
			p := puller(b.TempDir())
			pull(b, p, byDigest)
			var ds []time.Duration
			for b.Loop() {
				ds = append(ds, pull(b, p, byDigest))
			}
			b.ReportMetric(float64(percentile(ds, 0.5))/float64(time.Microsecond), "p50-µs")
		})

		// Both starts in one driver and one run, alternating, so that the
		// machine's drift is shared.
		b.Run(g.name+"/start", func(b *testing.B) {
			d := benchDriver(b, b.TempDir(), 0)
			d.config.InsecureRegistries = []string{reg.host}
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
			local, oci := task(""), task(byDigest)
			local() // compiles the module into the node's cache
			oci()   // pulls it
			var ls, ocis, deltas []time.Duration
			for b.Loop() {
				l, o := local(), oci()
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
