// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package ocitest serves a real OCI registry (go-containerregistry's)
// in-process over loopback, for tests, and builds the images a task may
// name: Wasm artifacts and images of one layer.
//
// It must not import package oci: it writes the artifacts' media types
// on its own, from the CNCF Wasm OCI artifact layout, so that a test
// holds oci to that layout rather than to itself.
package ocitest

import (
	"archive/tar"
	"bytes"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/shoenig/test/must"
)

// The CNCF Wasm OCI artifact's media types.
const (
	WasmConfigMediaType = types.MediaType("application/vnd.wasm.config.v0+json")
	WasmLayerMediaType  = types.MediaType("application/wasm")
)

// Registry is a registry served over loopback, optionally behind basic
// auth; it stops when the test ends.
type Registry struct {
	// Server serves it; close it to take the registry down.
	Server *httptest.Server
	// Host is its host:port, as a reference names it.
	Host string
	user string
	pass string
}

// NewRegistry serves a registry that asks for user and pass, or for
// nothing when user is empty.
func NewRegistry(t testing.TB, user, pass string) *Registry {
	t.Helper()
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r := &Registry{user: user, pass: pass}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if user != "" {
			u, p, ok := req.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		reg.ServeHTTP(w, req)
	}))
	t.Cleanup(r.Server.Close)
	r.Host = strings.TrimPrefix(r.Server.URL, "http://")
	return r
}

// Push writes img under repo:tag and returns its manifest digest.
func (r *Registry) Push(t testing.TB, repo, tag string, img v1.Image) string {
	t.Helper()
	ref, err := name.ParseReference(r.Host+"/"+repo+":"+tag, name.Insecure)
	must.NoError(t, err)
	must.NoError(t, remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: r.user, Password: r.pass})))
	d, err := img.Digest()
	must.NoError(t, err)
	return d.String()
}

// WasmArtifact is module as a CNCF Wasm artifact.
func WasmArtifact(t testing.TB, module []byte) v1.Image {
	t.Helper()
	img, err := mutate.AppendLayers(mutate.MediaType(empty.Image, types.OCIManifestSchema1), static.NewLayer(module, WasmLayerMediaType))
	must.NoError(t, err)
	return mutate.ConfigMediaType(img, WasmConfigMediaType)
}

// TarImage is an image of one layer holding files.
func TarImage(t testing.TB, files map[string][]byte) v1.Image {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		b := files[name]
		must.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg}))
		_, err := tw.Write(b)
		must.NoError(t, err)
	}
	must.NoError(t, tw.Close())
	layer, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf.Bytes())), nil })
	must.NoError(t, err)
	img, err := mutate.AppendLayers(empty.Image, layer)
	must.NoError(t, err)
	return img
}
