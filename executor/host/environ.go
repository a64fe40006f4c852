// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// The guest's environment: the program's, built once from the task's
// variables, and each instance's, the program's with the instance's own
// after it; the WASI host serves it to the guest (Environ, and package
// wasi's environ.go for why it is not wazero's).

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
