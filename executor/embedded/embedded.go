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
	"io/fs"
	"sync"
)

//go:embed bin
var files embed.FS

// Name is the program's file name in bin/.
const Name = "wasm-executor"

// Digest is the hex sha256 of bin/wasm-executor, set by the build
// (-ldflags -X). An embedded program that does not match it is not used.
var Digest string

var (
	once    sync.Once
	program []byte
)

// Executor is the embedded executor program, or nil when this build has
// none (or one that is not the build's).
func Executor() []byte {
	once.Do(func() { program = verified(files, Digest) })
	return program
}

// verified is bin/wasm-executor in fsys when its sha256 is digest, else nil.
func verified(fsys fs.FS, digest string) []byte {
	if digest == "" {
		return nil
	}
	b, err := fs.ReadFile(fsys, "bin/"+Name)
	if err != nil {
		return nil
	}
	sum := sha256.Sum256(b)
	if hex.EncodeToString(sum[:]) != digest {
		return nil
	}
	return b
}
