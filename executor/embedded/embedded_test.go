// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package embedded

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"testing"
	"testing/fstest"

	"github.com/shoenig/test/must"
)

func TestOpen(t *testing.T) {
	program := []byte("\x7fELF an executor")
	sum := sha256.Sum256(program)
	digest := hex.EncodeToString(sum[:])
	fsys := fstest.MapFS{"bin/" + Name: {Data: program}}

	f := open(fsys, digest)
	must.NotNil(t, f)
	b, err := io.ReadAll(f)
	must.NoError(t, err)
	must.NoError(t, f.Close())
	must.Eq(t, program, b)
	// A build that did not embed it (no digest: go build, go test) uses
	// none, even when an earlier build left one.
	must.Nil(t, open(fsys, ""))
	// One that is not the build's is not used.
	must.Nil(t, open(fsys, "00"+digest[2:]))
	must.Nil(t, open(fstest.MapFS{"bin/README.md": {Data: []byte("x")}}, digest))
}

func TestThisBuildHasNone(t *testing.T) {
	// go test sets no Digest: the tests start executors from their own
	// binary (with -race), never from a program an earlier build left.
	must.Nil(t, Open())
}
