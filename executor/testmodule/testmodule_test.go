// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package testmodule

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/shoenig/test/must"
)

// ExportEnv makes TestExport write every module into the directory it
// names (e2e/cgroup2.sh uses it for its virtual machine).
const ExportEnv = "WASM_TESTMODULE_EXPORT"

// TestExport: every test module builds from its sources, and each is a
// WebAssembly binary.
func TestExport(t *testing.T) {
	dir := os.Getenv(ExportEnv)
	if dir == "" {
		dir = t.TempDir()
	}
	must.NoError(t, os.MkdirAll(dir, 0o755))
	Export(t, dir)
	for name := range recipes {
		b, err := os.ReadFile(filepath.Join(dir, name+".wasm"))
		must.NoError(t, err)
		must.Eq(t, "\x00asm", string(b[:4]), must.Sprintf("module %s", name))
	}
}
