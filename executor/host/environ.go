// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero/api"
)

// The guest's environment is served by the driver's environ_get and
// environ_sizes_get, from the instance's own list, not by wazero's from
// the module configuration: wazero's WithEnv copies the configuration and
// all the variables set so far on every call, so a task's fifty NOMAD_*
// variables plus an HTTP request's twenty cost thousands of map inserts per
// instance (a third of the CPU of a small HTTP handler's instance).

// environ is an instance's environment: "KEY=VALUE" entries.
type environ []string

// checkEnv refuses an environment a guest cannot be given.
func checkEnv(env map[string]string) error {
	for k, v := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) {
			return fmt.Errorf("environment variable %q cannot be passed to a WebAssembly guest: a name must be non-empty without '=' or NUL, a value without NUL", k)
		}
	}
	return nil
}

// guestVar says whether a guest can be given the variable name=value.
func guestVar(name, value string) bool {
	return name != "" && !strings.ContainsAny(name, "=\x00") && !strings.ContainsRune(value, 0)
}

// envOf is vars as an environment, sorted by name, without the variables
// a guest cannot be given (a NUL or '=' in a name, a NUL in a value).
func envOf(vars map[string]string) environ {
	env := make(environ, 0, len(vars))
	for _, k := range slices.Sorted(maps.Keys(vars)) {
		if v := vars[k]; guestVar(k, v) {
			env = append(env, k+"="+v)
		}
	}
	return env
}

// envName is the name of an entry "NAME=value".
func envName(kv string) string {
	k, _, _ := strings.Cut(kv, "=")
	return k
}

// instanceEnviron is the program's environment with extra's entries after
// it, which win. extra's names must be unique and its entries fit for a
// guest (envOf, cgi.Env). Built per HTTP request, so without a map of its
// own or a sort: only a clash with the program's names (rare) costs a
// filter.
func (p *program) instanceEnviron(extra environ) environ {
	base := p.environ()
	if len(extra) == 0 {
		return base
	}
	names := p.envNames()
	var wins map[string]bool
	for _, kv := range extra {
		if k := envName(kv); names[k] {
			if wins == nil {
				wins = map[string]bool{}
			}
			wins[k] = true
		}
	}
	env := make(environ, 0, len(base)+len(extra))
	if wins == nil {
		env = append(env, base...)
	} else {
		for _, kv := range base {
			if !wins[envName(kv)] {
				env = append(env, kv)
			}
		}
	}
	return append(env, extra...)
}

// size is what environ_sizes_get reports: the bytes of all entries, each
// with its NUL.
func (e environ) size() uint32 {
	n := 0
	for _, kv := range e {
		n += len(kv) + 1
	}
	return uint32(n)
}

func instanceEnv(ctx context.Context) environ {
	if in, ok := ctx.Value(instanceKey{}).(*instance); ok {
		return in.environ
	}
	return nil
}

// environSizesGet is WASI's environ_sizes_get(environc, environ_buf_size).
func environSizesGet(ctx context.Context, mod api.Module, stack []uint64) {
	env := instanceEnv(ctx)
	mem := mod.Memory()
	if !mem.WriteUint32Le(uint32(stack[0]), uint32(len(env))) || !mem.WriteUint32Le(uint32(stack[1]), env.size()) {
		stack[0] = errnoFault
		return
	}
	stack[0] = errnoSuccess
}

// environGet is WASI's environ_get(environ, environ_buf): a pointer per
// entry at environ, the NUL-terminated entries at environ_buf.
func environGet(ctx context.Context, mod api.Module, stack []uint64) {
	env := instanceEnv(ctx)
	ptrs, buf := uint32(stack[0]), uint32(stack[1])
	mem := mod.Memory()
	offsets, ok := mem.Read(ptrs, uint32(len(env))*4)
	if !ok {
		stack[0] = errnoFault
		return
	}
	bytes, ok := mem.Read(buf, env.size())
	if !ok {
		stack[0] = errnoFault
		return
	}
	at := uint32(0)
	for i, kv := range env {
		le.PutUint32(offsets[i*4:], buf+at)
		copy(bytes[at:], kv)
		at += uint32(len(kv))
		bytes[at] = 0
		at++
	}
	stack[0] = errnoSuccess
}
