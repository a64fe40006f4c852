// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"testing"

	"github.com/shoenig/test/must"
	"golang.org/x/sys/unix"
)

// TestHaveGroups: the process's supplementary groups are told in any
// order, and told apart from others.
func TestHaveGroups(t *testing.T) {
	have, err := unix.Getgroups()
	must.NoError(t, err)
	want := make([]uint32, len(have))
	for i, g := range have {
		want[len(have)-1-i] = uint32(g)
	}
	must.True(t, haveGroups(want))
	must.False(t, haveGroups(append(want, 4242)))
	if len(want) > 0 {
		must.False(t, haveGroups(want[1:]))
		other := append([]uint32{4242}, want[1:]...)
		must.False(t, haveGroups(other), must.Sprint("as many groups, one of them another"))
	} else {
		must.False(t, haveGroups([]uint32{4242}))
	}
}
