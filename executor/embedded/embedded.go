// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package embedded holds the executor program (executor/cmd/wasm-executor)
// inside the plugin binary, so that the plugin stays one file to install
// while its executors start from a program that does not link Nomad's
// packages: about 10 ms less of each executor's start (package
// initialisation), most of what launching a spare executor costs.
//
// The build puts the program in bin/ and builds the plugin with Digest set
// to its sha256 (executor/embedded/build.sh). Any other build (go build,
// go test) has no Digest, and its executors start from the plugin binary
// itself, as the tests' do from the test binary: a program left in bin/ by
// an earlier build may be older than the code it would run beside.
package embedded

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io"
	"io/fs"
)

//go:embed bin
var files embed.FS

// Name is the program's file name in bin/.
const Name = "wasm-executor"

// Digest is the hex sha256 of bin/wasm-executor, set by the build
// (-ldflags -X). An embedded program that does not match it is not used.
var Digest string

// Open opens the embedded executor program, to be read once (it is not
// copied: its bytes are the plugin binary's), or returns nil when this
// build has none, or one that is not the build's.
func Open() fs.File {
	return open(files, Digest)
}

// open opens bin/wasm-executor in fsys when its sha256 is digest.
func open(fsys fs.FS, digest string) fs.File {
	if digest == "" {
		return nil
	}
	name := "bin/" + Name
	f, err := fsys.Open(name)
	if err != nil {
		return nil
	}
	h := sha256.New()
	_, err = io.Copy(h, f)
	_ = f.Close()
	if err != nil || hex.EncodeToString(h.Sum(nil)) != digest {
		return nil
	}
	if f, err = fsys.Open(name); err != nil {
		return nil
	}
	return f
}
