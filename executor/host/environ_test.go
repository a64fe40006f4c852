// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"sync"
	"testing"

	"github.com/shoenig/test/must"
)

// TestInstanceEnviron: the program's variables sorted, then the
// instance's own, which win over the program's; names a guest cannot take
// are refused in the program and left out by envOf.
func TestInstanceEnviron(t *testing.T) {
	t.Parallel()
	env := map[string]string{"B": "2", "A": "1", "PATH_INFO": "task"}
	p := &program{spec: programSpec{Env: env}}
	p.environ = sync.OnceValue(func() environ { return envOf(env) })
	p.envNames = sync.OnceValue(func() map[string]bool { return map[string]bool{"A": true, "B": true, "PATH_INFO": true} })
	extra := envOf(map[string]string{"PATH_INFO": "/x", "HTTP_Z": "z", "BAD=NAME": "v", "NUL": "a\x00b", "": "empty"})
	must.Eq(t, environ{"HTTP_Z=z", "PATH_INFO=/x"}, extra)
	got := p.instanceEnviron(extra)
	must.Eq(t, environ{"A=1", "B=2", "HTTP_Z=z", "PATH_INFO=/x"}, got)
	must.Eq(t, environ{"A=1", "B=2", "PATH_INFO=task"}, p.instanceEnviron(nil))
	// Without a clash, the program's entries are kept as they are.
	must.Eq(t, environ{"A=1", "B=2", "PATH_INFO=task", "Q=1"}, p.instanceEnviron(environ{"Q=1"}))

	must.NoError(t, checkEnv(env))
	for _, bad := range []map[string]string{{"": "x"}, {"A=B": "x"}, {"A\x00": "x"}, {"A": "x\x00y"}} {
		must.ErrorContains(t, checkEnv(bad), "cannot be passed to a WebAssembly guest")
	}
}
