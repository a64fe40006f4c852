// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoenig/test/wait"
)

// waitFor polls cond until it holds, failing after a minute; the optional
// why says what was last seen.
func waitFor(t *testing.T, cond func() bool, why ...func() string) {
	t.Helper()
	err := wait.InitialSuccess(wait.BoolFunc(cond), wait.Timeout(60*time.Second), wait.Gap(200*time.Millisecond)).Run()
	if err != nil {
		msg := err.Error()
		for _, w := range why {
			msg += ": " + w()
		}
		t.Fatal(msg)
	}
}

// readLinks returns the targets of the symlinks in dir.
func readLinks(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var targets []string
	for _, e := range entries {
		if target, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil {
			targets = append(targets, target)
		}
	}
	return targets, nil
}
