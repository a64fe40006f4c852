// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build e2e

package e2e

import (
	"io"
	"log"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

// TestOCIModule: on the real node, a job whose module is oci://… runs the
// module pulled from a registry (one served by this test over loopback,
// listed in the plugin's insecure_registries), and says so in its events.
func TestOCIModule(t *testing.T) {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	b, err := os.ReadFile(testmodule.Path(t, "probe"))
	must.NoError(t, err)
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), static.NewLayer(b, "application/wasm"))
	must.NoError(t, err)
	img = mutate.ConfigMediaType(img, "application/vnd.wasm.config.v0+json")
	ref, err := name.ParseReference(host+"/wasm/probe:v1", name.Insecure)
	must.NoError(t, err)
	must.NoError(t, remote.Write(ref, img))

	c := StartCluster(t, ClientOptions{Addr: "127.0.0.1", InsecureRegistries: []string{host}})
	job := c.parseJob(t, `
job "oci" {
  type = "batch"
  group "g" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    task "probe" {
      driver = "wasm"
      config {
        module = "oci://`+host+`/wasm/probe:v1"
        args   = ["hello"]
      }
    }
  }
}`, nil)
	c.register(t, job)
	alloc := c.waitAllocs(t, *job.ID, 1, status("complete"))[0]
	must.StrContains(t, c.logs(t, alloc, "probe", "stdout"), "hello from wasm\n")
	pulled := false
	for _, e := range c.taskState(t, alloc.ID, "probe").Events {
		pulled = pulled || strings.Contains(e.DisplayMessage, "pulled from its registry")
	}
	must.True(t, pulled, must.Sprint("no event says the module was pulled"))
}
