// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package oci pulls WebAssembly modules from OCI registries into the
// node's record: module = "oci://REGISTRY/REPOSITORY:TAG" or
// "oci://REGISTRY/REPOSITORY@sha256:DIGEST". The driver hands the pulled
// file to the executor, which reads it as it reads a module in the task's
// view (github.com/google/go-containerregistry: a registry client and,
// for the tests, a registry in-process).
//
// It must not import the driver: the plugin config's settings (cache
// directory, insecure registries, credentials, size bound) arrive as a
// Puller's fields, the task's credentials as Pull's. Nor does it run or
// check a module: the executor hashes every module it loads and refuses
// a pulled one that is no longer what was pulled. Its errors carry their
// class (executor.Class): the job's, the operator's or the node's.
//
// What is pulled: the one layer of media type wasmLayerMediaType, the
// module itself (a Wasm artifact, config media type wasmConfigMediaType,
// or any manifest with such a layer, as oras push makes), or the one
// .wasm file in the tar of an image of one layer (any other file is
// ignored; two .wasm files are refused, since the driver cannot know
// which is meant). An index is read for its wasm architecture manifest.
//
// The node's record, under Puller.Dir:
//   - modules/<sha256>.wasm: a module, named by the SHA-256 of its bytes;
//   - manifests/<algorithm>-<hex>: the module's SHA-256 for a manifest
//     digest, so that a digest reference already pulled never reaches the
//     network. A tag is resolved again at every start (a HEAD request), so
//     a tag that moves is followed.
package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/driver/internal/atomicfile"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
)

// Scheme is how a module setting names an OCI reference.
const Scheme = "oci://"

const (
	wasmConfigMediaType = types.MediaType("application/vnd.wasm.config.v0+json")
	wasmLayerMediaType  = types.MediaType("application/wasm")
)

// pullTimeout bounds one pull.
const pullTimeout = 5 * time.Minute

// Reference is a module in an OCI registry, as a task config names it.
type Reference struct {
	ref name.Reference
	// raw is the reference without the scheme.
	raw string
}

// String is the reference without the scheme, as the registry client
// reads it.
func (r Reference) String() string { return r.ref.String() }

// IsReference says whether a module setting names an OCI reference.
func IsReference(module string) bool { return strings.HasPrefix(module, Scheme) }

// Parse parses module = "oci://…". The registry must be named: an OCI
// reference without one would silently mean Docker Hub.
func Parse(module string) (Reference, error) {
	s := strings.TrimPrefix(module, Scheme)
	first, _, found := strings.Cut(s, "/")
	if !found || !strings.ContainsAny(first, ".:") && first != "localhost" {
		return Reference{}, fmt.Errorf("module %q: an OCI reference names its registry, then the repository: oci://REGISTRY/REPOSITORY:TAG or oci://REGISTRY/REPOSITORY@sha256:DIGEST", module)
	}
	ref, err := name.ParseReference(s, name.StrictValidation)
	if err != nil {
		// StrictValidation refuses a reference without a tag; say so.
		if _, err2 := name.ParseReference(s); err2 == nil {
			return Reference{}, fmt.Errorf("module %q names no tag or digest: add :TAG or @sha256:DIGEST", module)
		}
		return Reference{}, fmt.Errorf("module %q is not an OCI reference: %w", module, err)
	}
	return Reference{ref: ref, raw: s}, nil
}

// Puller pulls modules into the node's record.
type Puller struct {
	// Dir holds the node's record (<cache_dir>/oci).
	Dir string
	// Insecure are the registries (host:port) that may be reached over
	// plain HTTP; any other must serve HTTPS.
	Insecure []string
	// Credentials are the node's, per registry, for a task that gives
	// none.
	Credentials []Credentials
	// MaxBytes bounds a module's size; 0 means no bound.
	MaxBytes int64
}

// Credentials are a registry's username and password.
type Credentials struct {
	// Registry is the registry (host:port) they are for; unused in a
	// task's own.
	Registry, Username, Password string
}

// GoString keeps the password out of %#v.
func (c Credentials) GoString() string {
	return fmt.Sprintf("oci.Credentials{Registry: %q, Username: %q, Password: <redacted>}", c.Registry, c.Username)
}

// String keeps the password out of %v.
func (c Credentials) String() string { return c.GoString() }

// Module is a module pulled from a registry.
type Module struct {
	// File holds the module; Sha256 is the SHA-256 of its bytes, Manifest
	// the digest of the manifest it came from.
	File, Sha256, Manifest string
	// Cached: the module was on the node already; Resolved: the registry
	// was asked what the reference names (a tag), though nothing was
	// pulled.
	Cached, Resolved bool
}

// Pull returns the module src names, from the node's record or the
// registry, with the task's credentials where it gives some (else the
// Puller's for the registry). Its errors are classed: the job's (no such
// module, not a Wasm artifact, refused credentials, too large), the
// operator's (plain HTTP to a registry not listed in Insecure), or the
// node's (the registry cannot be reached, the disk).
func (p *Puller) Pull(ctx context.Context, src Reference, task *Credentials) (*Module, error) {
	ctx, cancel := context.WithTimeout(ctx, pullTimeout)
	defer cancel()
	if d, ok := src.ref.(name.Digest); ok {
		if m, ok := p.recorded(d.DigestStr()); ok {
			return m, nil
		}
	}
	// Plain HTTP only for a listed registry (name.Insecure lets the client
	// fall back to it), and never to one that is not (the guard refuses
	// what the client would try on its own for loopback and private
	// addresses).
	reg := src.ref.Context().RegistryStr()
	allowed := slices.Contains(p.Insecure, reg)
	if allowed {
		ref, err := name.ParseReference(src.raw, name.StrictValidation, name.Insecure)
		if err != nil {
			return nil, executor.JobErrorf("%v", err)
		}
		src.ref = ref
	}
	guard := &plainHTTPGuard{next: remote.DefaultTransport, allowed: allowed}
	opts := []remote.Option{remote.WithContext(ctx), remote.WithAuth(p.authFor(src.ref, task)), remote.WithTransport(guard)}
	desc, err := remote.Get(src.ref, opts...)
	if guard.refused.Load() {
		return nil, executor.OperatorErrorf("module %s: registry %s is reached over plain HTTP, which the node allows only for the registries in the plugin config's insecure_registries: list it there, or serve it over HTTPS", src.ref, reg)
	}
	if err != nil {
		return nil, p.classify(src, err)
	}
	manifest := desc.Digest.String()
	if m, ok := p.recorded(manifest); ok {
		m.Resolved = true
		return m, nil
	}
	img, err := p.image(src, desc)
	if err != nil {
		return nil, err
	}
	layer, err := p.moduleLayer(src, img)
	if err != nil {
		return nil, err
	}
	m, err := p.store(src, layer, manifest)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// image is the manifest desc describes, or the wasm one of an index.
func (p *Puller) image(src Reference, desc *remote.Descriptor) (v1.Image, error) {
	if !desc.MediaType.IsIndex() {
		img, err := desc.Image()
		if err != nil {
			return nil, p.classify(src, err)
		}
		return img, nil
	}
	idx, err := desc.ImageIndex()
	if err != nil {
		return nil, p.classify(src, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, p.classify(src, err)
	}
	var platforms []string
	for _, m := range im.Manifests {
		if m.Platform == nil {
			continue
		}
		if m.Platform.Architecture == "wasm" {
			img, err := idx.Image(m.Digest)
			if err != nil {
				return nil, p.classify(src, err)
			}
			return img, nil
		}
		platforms = append(platforms, m.Platform.OS+"/"+m.Platform.Architecture)
	}
	return nil, executor.JobErrorf("module %s: the index has no manifest for the wasm architecture (it has %s)", src.ref, strings.Join(platforms, ", "))
}

// moduleLayer reads the module out of img: the artifact's wasm layer, or
// the one .wasm file in its one layer.
func (p *Puller) moduleLayer(src Reference, img v1.Image) (io.ReadCloser, error) {
	m, err := img.Manifest()
	if err != nil {
		return nil, p.classify(src, err)
	}
	var wasm []v1.Descriptor
	for _, l := range m.Layers {
		if l.MediaType == wasmLayerMediaType {
			wasm = append(wasm, l)
		}
	}
	if len(wasm) > 1 || len(wasm) == 0 && m.Config.MediaType == wasmConfigMediaType {
		return nil, executor.JobErrorf("module %s: a Wasm artifact has one layer of media type %s; this one has %d", src.ref, wasmLayerMediaType, len(wasm))
	}
	if len(wasm) == 1 {
		if err := p.checkSize(src, wasm[0].Size); err != nil {
			return nil, err
		}
		l, err := img.LayerByDigest(wasm[0].Digest)
		if err != nil {
			return nil, p.classify(src, err)
		}
		rc, err := l.Compressed()
		if err != nil {
			return nil, p.classify(src, err)
		}
		return rc, nil
	}
	if len(m.Layers) != 1 {
		return nil, executor.JobErrorf("module %s is neither a Wasm artifact (config media type %s) nor an image of one layer (it has %d): push the module as a Wasm artifact", src.ref, wasmConfigMediaType, len(m.Layers))
	}
	if err := p.checkSize(src, m.Layers[0].Size); err != nil {
		return nil, err
	}
	l, err := img.LayerByDigest(m.Layers[0].Digest)
	if err != nil {
		return nil, p.classify(src, err)
	}
	rc, err := l.Uncompressed()
	if err != nil {
		return nil, p.classify(src, err)
	}
	return p.wasmInTar(src, rc)
}

// wasmInTar finds the one .wasm file of a layer's tar.
func (p *Puller) wasmInTar(src Reference, rc io.ReadCloser) (io.ReadCloser, error) {
	tr := tar.NewReader(rc)
	var found []string
	var module []byte
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			_ = rc.Close()
			return nil, p.classify(src, err)
		}
		if h.Typeflag != tar.TypeReg || path.Ext(h.Name) != ".wasm" {
			continue
		}
		found = append(found, h.Name)
		if len(found) > 1 {
			continue
		}
		if err := p.checkSize(src, h.Size); err != nil {
			_ = rc.Close()
			return nil, err
		}
		if module, err = io.ReadAll(io.LimitReader(tr, p.limit())); err != nil {
			_ = rc.Close()
			return nil, p.classify(src, err)
		}
	}
	_ = rc.Close()
	switch len(found) {
	case 0:
		return nil, executor.JobErrorf("module %s: its image's layer holds no .wasm file", src.ref)
	case 1:
		return io.NopCloser(bytes.NewReader(module)), nil
	}
	return nil, executor.JobErrorf("module %s: its image's layer holds %d .wasm files (%s), and the driver cannot know which to run: push one, or the module alone as a Wasm artifact", src.ref, len(found), strings.Join(found, ", "))
}

func (p *Puller) limit() int64 {
	if p.MaxBytes > 0 {
		return p.MaxBytes + 1
	}
	return 1 << 62
}

func (p *Puller) checkSize(src Reference, size int64) error {
	if p.MaxBytes > 0 && size > p.MaxBytes {
		return executor.JobErrorf("module %s is %d bytes, more than this node's max_module_bytes (%d)", src.ref, size, p.MaxBytes)
	}
	return nil
}

// store writes the module to the node's record, named by its SHA-256, and
// records the manifest it came from.
func (p *Puller) store(src Reference, r io.ReadCloser, manifest string) (*Module, error) {
	defer r.Close()
	dir := filepath.Join(p.Dir, "modules")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, executor.NodeErrorf("module %s: create %s: %v", src.ref, dir, err)
	}
	tmp, err := os.CreateTemp(dir, ".pull-*")
	if err != nil {
		return nil, executor.NodeErrorf("module %s: %v", src.ref, err)
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(r, p.limit()))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, p.classify(src, err)
	}
	if err := p.checkSize(src, n); err != nil {
		return nil, err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	file := filepath.Join(dir, sum+".wasm")
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return nil, executor.NodeErrorf("module %s: %v", src.ref, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return nil, executor.NodeErrorf("module %s: %v", src.ref, err)
	}
	if err := atomicfile.Write(p.manifestRecord(manifest), []byte(sum)); err != nil {
		return nil, executor.NodeErrorf("module %s: record its manifest: %v", src.ref, err)
	}
	return &Module{File: file, Sha256: sum, Manifest: manifest}, nil
}

func (p *Puller) manifestRecord(digest string) string {
	return filepath.Join(p.Dir, "manifests", strings.ReplaceAll(digest, ":", "-"))
}

// recorded is the module pulled before from the manifest digest, if the
// node still has it. Its content is not hashed here: the executor hashes
// every module it loads anyway and refuses one that is not the sha256
// pulled (StartRequest.module_file_pulled), and the driver then removes the
// damaged copy (ForgetIfDamaged), so that a cached start costs no second
// hash.
func (p *Puller) recorded(digest string) (*Module, bool) {
	b, err := os.ReadFile(p.manifestRecord(digest))
	if err != nil {
		return nil, false
	}
	sum := strings.TrimSpace(string(b))
	file := filepath.Join(p.Dir, "modules", sum+".wasm")
	if st, err := os.Stat(file); err != nil || !st.Mode().IsRegular() {
		return nil, false
	}
	return &Module{File: file, Sha256: sum, Manifest: digest, Cached: true}, true
}

// ForgetIfDamaged removes the node's copy of m, and its manifest's
// record, if the copy is no longer what was pulled; it reports whether it
// did. The next start pulls the module again.
func (p *Puller) ForgetIfDamaged(m *Module) bool {
	f, err := os.Open(m.File)
	if err == nil {
		h := sha256.New()
		_, err = io.Copy(h, f)
		_ = f.Close()
		if err == nil && hex.EncodeToString(h.Sum(nil)) == m.Sha256 {
			return false
		}
	}
	_ = os.Remove(m.File)
	_ = os.Remove(p.manifestRecord(m.Manifest))
	return true
}

// authFor is the task's credentials, else the plugin config's for the
// reference's registry, else none.
func (p *Puller) authFor(ref name.Reference, task *Credentials) authn.Authenticator {
	if task != nil && (task.Username != "" || task.Password != "") {
		return authn.FromConfig(authn.AuthConfig{Username: task.Username, Password: task.Password})
	}
	reg := ref.Context().RegistryStr()
	for _, a := range p.Credentials {
		if a.Registry == reg {
			return authn.FromConfig(authn.AuthConfig{Username: a.Username, Password: a.Password})
		}
	}
	return authn.Anonymous
}

// plainHTTPGuard refuses plain HTTP unless allowed, and remembers that it
// did.
type plainHTTPGuard struct {
	next    http.RoundTripper
	allowed bool
	refused atomic.Bool
}

func (g *plainHTTPGuard) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.URL.Scheme == "http" && !g.allowed {
		g.refused.Store(true)
		return nil, errors.New("plain HTTP refused: the registry is not in insecure_registries")
	}
	return g.next.RoundTrip(r)
}

// classify turns what the registry client returned into an error of its
// class, without credentials (go-containerregistry's errors carry none).
func (p *Puller) classify(src Reference, err error) error {
	var terr *transport.Error
	var nerr net.Error
	switch {
	case errors.As(err, &terr) && (terr.StatusCode == http.StatusUnauthorized || terr.StatusCode == http.StatusForbidden):
		return executor.JobErrorf("module %s: the registry refused the credentials (HTTP %d): set the task config's auth block, or the plugin config's registry_auth for %s", src.ref, terr.StatusCode, src.ref.Context().RegistryStr())
	case errors.As(err, &terr) && terr.StatusCode == http.StatusNotFound:
		return executor.NotFoundErrorf("module %s was not found in its registry: %v", src.ref, err)
	case errors.As(err, &terr) && terr.StatusCode >= 500:
		return executor.NodeErrorf("module %s: the registry failed: %v", src.ref, err)
	case errors.As(err, &terr):
		return executor.JobErrorf("module %s: the registry refused it: %v", src.ref, err)
	case errors.As(err, &nerr), errors.Is(err, context.DeadlineExceeded):
		return executor.NodeErrorf("module %s: the registry cannot be reached: %v", src.ref, err)
	}
	return executor.NodeErrorf("module %s: pull failed: %v", src.ref, err)
}
