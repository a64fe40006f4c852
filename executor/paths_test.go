// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package executor

import (
	"strings"
	"testing"

	"github.com/shoenig/test/must"
)

func TestResolveGuestPath(t *testing.T) {
	t.Parallel()
	mounts := []Mount{{GuestPath: "/local", HostPath: "/h/local"}, {GuestPath: "/alloc", HostPath: "/h/alloc"}}
	cases := []struct {
		in, guest, rel, err string
	}{
		{in: "local/app.wasm", guest: "/local", rel: "app.wasm"},
		{in: "/local/sub/app.wasm", guest: "/local", rel: "sub/app.wasm"},
		{in: "./alloc//data/x.wasm", guest: "/alloc", rel: "data/x.wasm"},
		{in: "/alloc", guest: "/alloc", rel: "."},
		{in: "localx/app.wasm", err: "is outside the task's view (/local, /alloc)"},
		{in: "/etc/passwd", err: "is outside the task's view"},
		{in: "app.wasm", err: "is outside the task's view"},
		{in: "local/../alloc/x", err: `must not contain ".."`},
		{in: "", err: "path is empty"},
	}
	for _, c := range cases {
		m, rel, err := ResolveGuestPath(mounts, c.in)
		if c.err != "" {
			must.ErrorContains(t, err, c.err, must.Sprint(c.in))
			continue
		}
		must.NoError(t, err)
		must.Eq(t, c.guest, m.GuestPath)
		must.Eq(t, c.rel, rel)
		must.False(t, strings.HasPrefix(rel, "/"))
	}
}
