// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package oci

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver/oci/ocitest"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

// BenchmarkPull: what a module from a registry costs to pull, against a
// real registry served in-process over loopback, for the small C module
// and the 2.5 MB Go module:
//   - cold: a tag resolved and the module downloaded into an empty cache
//     (p50-ms);
//   - digest-cached: a digest reference already on the node: no request
//     at all (p50-µs).
//
// What it costs a task's start is the driver's BenchmarkModuleSource.
func BenchmarkPull(b *testing.B) {
	for _, g := range []struct{ name, module string }{
		{"c", "probe"},
		{"go", "hello-go"},
	} {
		module, err := os.ReadFile(testmodule.Path(b, g.module))
		must.NoError(b, err)
		reg := ocitest.NewRegistry(b, "", "")
		manifest := reg.Push(b, "bench/"+g.module, "v1", ocitest.WasmArtifact(b, module))
		byTag := Scheme + reg.Host + "/bench/" + g.module + ":v1"
		byDigest := Scheme + reg.Host + "/bench/" + g.module + "@" + manifest
		puller := func(dir string) *Puller {
			return &Puller{Dir: dir, Insecure: []string{reg.Host}}
		}
		pull := func(b *testing.B, p *Puller, ref string) time.Duration {
			b.Helper()
			src, err := Parse(ref)
			if err != nil {
				b.Fatal(err)
			}
			began := time.Now()
			if _, err := p.Pull(context.Background(), src, nil); err != nil {
				b.Fatal(err)
			}
			return time.Since(began)
		}

		b.Run(g.name+"/cold", func(b *testing.B) {
			root := b.TempDir()
			var ds []time.Duration
			for i := 0; b.Loop(); i++ {
				ds = append(ds, pull(b, puller(filepath.Join(root, strconv.Itoa(i))), byTag))
			}
			b.ReportMetric(float64(median(ds))/float64(time.Millisecond), "p50-ms")
		})
		b.Run(g.name+"/digest-cached", func(b *testing.B) {
			p := puller(b.TempDir())
			pull(b, p, byDigest)
			var ds []time.Duration
			for b.Loop() {
				ds = append(ds, pull(b, p, byDigest))
			}
			b.ReportMetric(float64(median(ds))/float64(time.Microsecond), "p50-µs")
		})
	}
}

// median is the 50th percentile of ds, as the driver's benchmarks take it.
func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[int(float64(len(s)-1)*0.5)]
}
