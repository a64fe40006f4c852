// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package cgroupstest holds what the tests of cgroups, of the driver that
// uses it and of the executor that joins the cgroups need of the node's
// cgroups. Only tests import it.
package cgroupstest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoenig/test/must"
)

// Require returns the node's cgroup version, as version (cgroups.Version)
// reads it. It skips a test where cgroups cannot be made (not root, no
// cgroups with the cpu and memory controllers), except in CI, where that
// fails. WASM_TEST_CGROUP, where set, is the version the run must find
// (the cgroup v2 machine of make test-cgroup2 sets it to v2).
func Require(t testing.TB, version func() (string, error)) string {
	t.Helper()
	v, err := version()
	if want := os.Getenv("WASM_TEST_CGROUP"); want != "" && v != want {
		t.Fatalf("WASM_TEST_CGROUP=%s, but the node's cgroups are %q (%v)", want, v, err)
	}
	if err == nil && os.Geteuid() == 0 {
		return v
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI must run the cgroup tests: cgroups %q (%v), uid %d", v, err, os.Geteuid())
	}
	t.Skipf("cgroups v1 or v2, as root, are needed: cgroups %q (%v), uid %d", v, err, os.Geteuid())
	return ""
}

// Read is the content of a cgroup file, trimmed.
func Read(t testing.TB, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	must.NoError(t, err)
	return strings.TrimSpace(string(b))
}
