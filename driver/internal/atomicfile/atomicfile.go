// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

// Package atomicfile writes a file whole or not at all: the driver's
// records (the shared executor's address, a pulled module's manifest) are
// read by later drivers, which must never find half of one.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write writes b to file through a temporary file beside it and a rename,
// making the file's directory first if need be.
func Write(file string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		_ = tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
