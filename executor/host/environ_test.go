// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"sync"
	"testing"

	"github.com/shoenig/test/must"
)

// TestInstanceEnviron: the program's variables sorted, then the instance's
// own sorted, which win over the program's; names a guest cannot take are
// refused in the program and left out of a request's.
func TestInstanceEnviron(t *testing.T) {
	t.Parallel()
	env := map[string]string{"B": "2", "A": "1", "PATH_INFO": "task"}
	p := &program{spec: programSpec{Env: env}}
	p.environ = sync.OnceValue(func() environ { return environ{"A=1", "B=2", "PATH_INFO=task"} })
	got := p.instanceEnviron(map[string]string{"PATH_INFO": "/x", "HTTP_Z": "z", "BAD=NAME": "v", "NUL": "a\x00b"})
	must.Eq(t, environ{"A=1", "B=2", "HTTP_Z=z", "PATH_INFO=/x"}, got)
	must.Eq(t, uint32(len("A=1")+1+len("B=2")+1+len("HTTP_Z=z")+1+len("PATH_INFO=/x")+1), got.size())
	must.Eq(t, environ{"A=1", "B=2", "PATH_INFO=task"}, p.instanceEnviron(nil))

	must.NoError(t, checkEnv(env))
	for _, bad := range []map[string]string{{"": "x"}, {"A=B": "x"}, {"A\x00": "x"}, {"A": "x\x00y"}} {
		must.ErrorContains(t, checkEnv(bad), "cannot be passed to a WebAssembly guest")
	}
}
