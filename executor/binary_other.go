// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build !linux

package executor

import (
	"errors"
	"io"
)

// runnable: only Linux runs the embedded program (from a memfd).
func runnable(io.Reader) (string, error) {
	return "", errors.New("the embedded executor program runs on Linux only")
}
