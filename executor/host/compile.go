// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/host/modcache"
)

// compileOnly is the compile process (executor.Compile): it joins the
// task's cgroups, so that what compiling takes counts against the task's
// memory, then compiles the module f (its descriptor 3) into the node's
// cache as the shared executor will load it, and returns. It runs as root,
// the only writer of the cache.
func compileOnly(o compileOptions, f *os.File) error {
	if err := joinCgroups(o.cgroups); err != nil {
		return executor.NodeErrorf("%v", err)
	}
	engine, err := resolveEngine(o.engine)
	if err != nil {
		return executor.OperatorErrorf("%v", err)
	}
	defer f.Close()
	b, err := readAll(f)
	if err != nil {
		return executor.NodeErrorf("read module %s: %v", o.name, err)
	}
	cache := modcache.Cache{Dir: o.cacheDir, Logger: hclog.NewNullLogger(), Validate: validateConfig()}
	ctx := context.Background()
	c, err := compileSource(ctx, cache, engine, o.interruptible, moduleDigest(b), o.name, func() []byte {
		src, _ := splitData(b)
		return src
	})
	if err != nil {
		return err
	}
	return c.close(ctx)
}
