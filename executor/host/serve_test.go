// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package host

import (
	"testing"

	"github.com/shoenig/test/must"

	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor"
	"github.com/nomad-driver-wasm/nomad-driver-wasm/executor/proto"
)

// TestRunAsArgument: the shared executor's user crosses its command line
// whole; the argument is refused for an executor of its own, and when it
// is not a user.
func TestRunAsArgument(t *testing.T) {
	u := &proto.RunAs{Name: "nobody", Uid: 65534, Gid: 65534, Groups: []uint32{65534, 100}}
	arg := executor.RunAsFlag + "=" + executor.RunAsArg(u)
	o, err := parseArgs([]string{executor.SharedFlag, arg})
	must.NoError(t, err)
	must.Eq(t, u.Name, o.runAs.Name)
	must.Eq(t, u.Uid, o.runAs.Uid)
	must.Eq(t, u.Gid, o.runAs.Gid)
	must.Eq(t, u.Groups, o.runAs.Groups)

	_, err = parseArgs([]string{arg})
	must.ErrorContains(t, err, "-run-as is for a shared executor (-shared)")
	_, err = parseArgs([]string{executor.SharedFlag, executor.RunAsFlag + "=nobody:65534"})
	must.ErrorContains(t, err, `-run-as="nobody:65534": not a user`)
	_, err = parseArgs([]string{executor.SharedFlag, executor.RunAsFlag + "={}"})
	must.ErrorContains(t, err, "not a user")
}

// TestWarmGroupsArgument: a spare's groups cross its command line as IDs;
// anything else is refused.
func TestWarmGroupsArgument(t *testing.T) {
	o, err := parseArgs([]string{executor.WarmEngineFlag + "=compiler", executor.WarmGroupsFlag + "=65534,100"})
	must.NoError(t, err)
	must.Eq(t, []uint32{65534, 100}, o.warm.Groups)
	o, err = parseArgs([]string{executor.WarmEngineFlag + "=compiler"})
	must.NoError(t, err)
	must.SliceEmpty(t, o.warm.Groups)
	_, err = parseArgs([]string{executor.WarmEngineFlag + "=compiler", executor.WarmGroupsFlag + "=65534,nogroup"})
	must.ErrorContains(t, err, `-warm-groups=65534,nogroup: "nogroup" is not a group ID`)
	for _, args := range [][]string{{executor.WarmGroupsFlag + "=65534"}, {executor.SharedFlag, executor.WarmEngineFlag + "=compiler", executor.WarmGroupsFlag + "=65534"}} {
		_, err = parseArgs(args)
		must.ErrorContains(t, err, "-warm-groups is for a spare executor (-warm-engine), not -shared")
	}
}
