// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"os"
	"slices"
	"syscall"
	"testing"

	"github.com/shoenig/test/must"
	"golang.org/x/sys/unix"
)

// TestHaveGroups: the process's supplementary groups are told in any
// order, and told apart from others, of another number or of as many. As
// root it gives itself two groups for the test (and its own back after),
// so that there are groups to compare whatever it had.
func TestHaveGroups(t *testing.T) {
	if os.Geteuid() == 0 {
		had, err := unix.Getgroups()
		must.NoError(t, err)
		defer func() { must.NoError(t, syscall.Setgroups(had)) }()
		must.NoError(t, syscall.Setgroups([]int{4241, 4243}))
	}
	have, err := unix.Getgroups()
	must.NoError(t, err)
	want := slices.Clone(have)
	slices.Reverse(want)
	must.True(t, haveGroups(want))
	must.False(t, haveGroups(append(want, 4242)))
	if len(want) > 0 {
		must.False(t, haveGroups(want[1:]))
		other := append([]int{4242}, want[1:]...)
		must.False(t, haveGroups(other), must.Sprint("as many groups, one of them another"))
	} else {
		must.False(t, haveGroups([]int{4242}))
	}
}
