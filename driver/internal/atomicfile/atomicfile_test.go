// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package atomicfile

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/shoenig/test/must"
)

// TestWrite: the file holds what was written, replaces what was there,
// its directory is made, and no temporary file is left beside it.
func TestWrite(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "sub", "record.json")
	must.NoError(t, Write(file, []byte("one")))
	must.NoError(t, Write(file, []byte("two")))
	b, err := os.ReadFile(file)
	must.NoError(t, err)
	must.Eq(t, "two", string(b))
	entries, err := os.ReadDir(filepath.Dir(file))
	must.NoError(t, err)
	must.Len(t, 1, entries)
}
