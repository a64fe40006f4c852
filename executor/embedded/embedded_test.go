// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package embedded

import (
	"crypto/sha256"
	"encoding/hex"
	"testing"
	"testing/fstest"

	"github.com/shoenig/test/must"
)

func TestVerified(t *testing.T) {
	program := []byte("\x7fELF an executor")
	sum := sha256.Sum256(program)
	digest := hex.EncodeToString(sum[:])
	fsys := fstest.MapFS{"bin/" + Name: {Data: program}}

	must.Eq(t, program, verified(fsys, digest))
	// A build that did not embed it (no digest: go build, go test) uses
	// none, even when an earlier build left one.
	must.Nil(t, verified(fsys, ""))
	// One that is not the build's is not used.
	must.Nil(t, verified(fsys, "00"+digest[2:]))
	must.Nil(t, verified(fstest.MapFS{"bin/README.md": {Data: []byte("x")}}, digest))
}

func TestThisBuildHasNone(t *testing.T) {
	// go test sets no Digest: the tests start executors from their own
	// binary (with -race), never from a program an earlier build left.
	must.Nil(t, Executor())
}
