// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/testmodule"
)

// TestCompileErrorClass: a compile failure is blamed on the module only if
// the module itself is at fault; running out of memory or disk, or a
// compiler failing on a valid module, is the node's.
func TestCompileErrorClass(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	valid, err := os.ReadFile(testmodule.Path(t, "probe"))
	must.NoError(t, err)
	malformed := []byte("\x00asm\x01\x00\x00\x00\x01\x03\xff\xff\xff")

	err = compileError(ctx, "m.wasm", valid, fmt.Errorf("mmap: %w", syscall.ENOMEM))
	must.Eq(t, executor.ClassNode, executor.ClassOf(err))
	must.ErrorContains(t, err, "for want of resources on this node")

	err = compileError(ctx, "m.wasm", valid, errors.New("compilationcache: checksum mismatch"))
	must.Eq(t, executor.ClassNode, executor.ClassOf(err))
	must.ErrorContains(t, err, "module m.wasm is valid, but this node failed to compile it")

	err = compileError(ctx, "m.wasm", malformed, errors.New("section 1: unexpected EOF"))
	must.Eq(t, executor.ClassJob, executor.ClassOf(err))
	must.ErrorContains(t, err, "module m.wasm is malformed or uses WebAssembly features this node does not support")
}

// TestCacheErrorClass: a cache directory that cannot be used is the
// operator's to fix, unless the disk is full.
func TestCacheErrorClass(t *testing.T) {
	t.Parallel()
	must.Eq(t, executor.ClassOperator, executor.ClassOf(cacheError(syscall.EACCES)))
	must.Eq(t, executor.ClassNode, executor.ClassOf(cacheError(fmt.Errorf("write: %w", syscall.ENOSPC))))
}
