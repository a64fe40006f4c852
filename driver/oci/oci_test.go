// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver/oci/ocitest"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestParse: a reference names its registry and a tag or digest.
func TestParse(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ module, err string }{
		{"oci://ghcr.io/wasm/probe:v1", ""},
		{"oci://localhost/probe@sha256:" + strings.Repeat("ab", 32), ""},
		{"oci://wasm/probe:v1", "names its registry"},
		{"oci://ghcr.io/wasm/probe", "names no tag or digest"},
		{"oci://ghcr.io/wasm/Probe:v1", "is not an OCI reference"},
	} {
		must.True(t, IsReference(tc.module))
		ref, err := Parse(tc.module)
		if tc.err != "" {
			must.ErrorContains(t, err, tc.err, must.Sprint(tc.module))
			continue
		}
		must.NoError(t, err, must.Sprint(tc.module))
		must.Eq(t, strings.TrimPrefix(tc.module, Scheme), ref.String())
	}
	must.False(t, IsReference("local/app.wasm"))
}

// TestPull: what each kind of image yields, what the node's record saves
// a later start, and the class of each refusal.
func TestPull(t *testing.T) {
	t.Parallel()
	reg := ocitest.NewRegistry(t, "", "")
	locked := ocitest.NewRegistry(t, "alice", "s3cret")
	module, other := []byte("\x00asm\x01\x00\x00\x00 one"), []byte("\x00asm\x01\x00\x00\x00 two")
	manifest := reg.Push(t, "wasm/app", "v1", ocitest.WasmArtifact(t, module))
	reg.Push(t, "wasm/image", "v1", ocitest.TarImage(t, map[string][]byte{"app/app.wasm": module, "README": []byte("hi")}))
	reg.Push(t, "wasm/two", "v1", ocitest.TarImage(t, map[string][]byte{"a.wasm": module, "b.wasm": other}))
	orasLike, err := mutate.AppendLayers(empty.Image, static.NewLayer(module, ocitest.WasmLayerMediaType))
	must.NoError(t, err)
	reg.Push(t, "wasm/oras", "v1", orasLike)
	locked.Push(t, "wasm/app", "v1", ocitest.WasmArtifact(t, module))

	p := &Puller{Dir: t.TempDir(), Insecure: []string{reg.Host, locked.Host}}
	pull := func(p *Puller, module string, creds *Credentials) (*Module, error) {
		t.Helper()
		ref, err := Parse(module)
		must.NoError(t, err)
		return p.Pull(context.Background(), ref, creds)
	}

	for _, repo := range []string{"wasm/app", "wasm/image", "wasm/oras"} {
		m, err := pull(p, Scheme+reg.Host+"/"+repo+":v1", nil)
		must.NoError(t, err, must.Sprint(repo))
		must.Eq(t, sha(module), m.Sha256, must.Sprint(repo))
		b, err := os.ReadFile(m.File)
		must.NoError(t, err)
		must.Eq(t, module, b, must.Sprint(repo))
	}

	// A tag is resolved again, and what the node has is not pulled again.
	m, err := pull(p, Scheme+reg.Host+"/wasm/app:v1", nil)
	must.NoError(t, err)
	must.True(t, m.Cached && m.Resolved)
	must.Eq(t, manifest, m.Manifest)

	// A copy that is still what was pulled is kept.
	must.False(t, p.ForgetIfDamaged(m))
	must.FileExists(t, m.File)

	// A digest already pulled asks no registry.
	byDigest := Scheme + reg.Host + "/wasm/app@" + manifest
	locked.Server.Close()
	reg.Server.Close()
	m, err = pull(p, byDigest, nil)
	must.NoError(t, err)
	must.True(t, m.Cached)
	must.False(t, m.Resolved)

	// A damaged copy is forgotten: the next pull asks the registry.
	must.NoError(t, os.WriteFile(m.File, other, 0o644))
	must.True(t, p.ForgetIfDamaged(m))
	must.FileNotExists(t, m.File)
	_, err = pull(p, byDigest, nil)
	must.ErrorContains(t, err, "cannot be reached")
	must.Eq(t, executor.ClassNode, executor.ClassOf(err))
}

// TestPullRefused: each way a pull can be wrong, with its class and
// without the password.
func TestPullRefused(t *testing.T) {
	t.Parallel()
	open := ocitest.NewRegistry(t, "", "")
	locked := ocitest.NewRegistry(t, "alice", "s3cret")
	module := []byte("\x00asm\x01\x00\x00\x00")
	open.Push(t, "wasm/app", "v1", ocitest.WasmArtifact(t, module))
	open.Push(t, "wasm/two", "v1", ocitest.TarImage(t, map[string][]byte{"a.wasm": module, "b.wasm": module}))
	open.Push(t, "wasm/none", "v1", ocitest.TarImage(t, map[string][]byte{"README": module}))
	locked.Push(t, "wasm/app", "v1", ocitest.WasmArtifact(t, module))
	insecure := []string{open.Host, locked.Host}

	for _, tc := range []struct {
		what, module string
		puller       Puller
		creds        *Credentials
		class        executor.Class
		err          string
	}{
		{"no such tag", open.Host + "/wasm/app:v9", Puller{}, nil, executor.ClassJob, "was not found"},
		{"two modules in the layer", open.Host + "/wasm/two:v1", Puller{}, nil, executor.ClassJob, "holds 2 .wasm files (a.wasm, b.wasm)"},
		{"no module in the layer", open.Host + "/wasm/none:v1", Puller{}, nil, executor.ClassJob, "holds no .wasm file"},
		{"too large", open.Host + "/wasm/app:v1", Puller{MaxBytes: 4}, nil, executor.ClassJob, "more than this node's max_module_bytes (4)"},
		{"no credentials", locked.Host + "/wasm/app:v1", Puller{}, nil, executor.ClassJob, "refused the credentials"},
		{"wrong credentials", locked.Host + "/wasm/app:v1", Puller{}, &Credentials{Username: "alice", Password: "wrong"}, executor.ClassJob, "refused the credentials"},
		{"the node's credentials lose to the task's", locked.Host + "/wasm/app:v1", Puller{Credentials: []Credentials{{Registry: locked.Host, Username: "alice", Password: "s3cret"}}},
			&Credentials{Username: "alice", Password: "wrong"}, executor.ClassJob, "refused the credentials"},
	} {
		p := tc.puller
		p.Dir, p.Insecure = t.TempDir(), insecure
		ref, err := Parse(Scheme + tc.module)
		must.NoError(t, err)
		_, err = p.Pull(context.Background(), ref, tc.creds)
		must.ErrorContains(t, err, tc.err, must.Sprint(tc.what))
		must.Eq(t, tc.class, executor.ClassOf(err), must.Sprint(tc.what))
		must.StrNotContains(t, err.Error(), "s3cret", must.Sprint(tc.what))
		must.StrNotContains(t, err.Error(), "wrong", must.Sprint(tc.what))
	}

	// The node's credentials for the registry, where the task gives none.
	p := &Puller{Dir: t.TempDir(), Insecure: insecure, Credentials: []Credentials{{Registry: locked.Host, Username: "alice", Password: "s3cret"}}}
	ref, err := Parse(Scheme + locked.Host + "/wasm/app:v1")
	must.NoError(t, err)
	_, err = p.Pull(context.Background(), ref, nil)
	must.NoError(t, err)
	must.StrNotContains(t, p.Credentials[0].String(), "s3cret")
	must.StrNotContains(t, p.Credentials[0].GoString(), "s3cret")

	// Plain HTTP only to a registry the operator listed.
	strict := &Puller{Dir: t.TempDir()}
	ref, err = Parse(Scheme + open.Host + "/wasm/app:v1")
	must.NoError(t, err)
	_, err = strict.Pull(context.Background(), ref, nil)
	must.ErrorContains(t, err, "insecure_registries")
	must.Eq(t, executor.ClassOperator, executor.ClassOf(err))
}

// FuzzParseOCI: whatever follows oci://, parsing never panics, and a
// reference it accepts names a registry and a tag or digest, and reads the
// same when parsed again.
func FuzzParseOCI(f *testing.F) {
	for _, seed := range []string{
		"oci://ghcr.io/acme/app:v1",
		"oci://127.0.0.1:5000/wasm/probe@sha256:" + strings.Repeat("ab", 32),
		"oci://localhost/app:latest",
		"oci://localhost:5000/a/b/c:1.0-rc.1",
		"oci://app:v1",
		"oci://ghcr.io/acme/app",
		"oci://ghcr.io/ACME/app:v1",
		"oci://ghcr.io//app:v1",
		"oci://ghcr.io/acme/app@sha256:short",
		"oci://[::1]:5000/app:v1",
		"oci://",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, module string) {
		src, err := Parse(module)
		if err != nil {
			return
		}
		reg := src.ref.Context().RegistryStr()
		if first, _, _ := strings.Cut(src.raw, "/"); reg != first && (first != "docker.io" || reg != name.DefaultRegistry) {
			t.Fatalf("%q parsed with registry %q, not the %q it names", module, reg, first)
		}
		again, err := Parse(Scheme + src.ref.String())
		if err != nil {
			t.Fatalf("%q parsed as %q, which does not parse: %v", module, src.ref, err)
		}
		if again.ref.String() != src.ref.String() {
			t.Fatalf("%q parsed as %q, then as %q", module, src.ref, again.ref)
		}
	})
}
