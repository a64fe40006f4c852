// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build !linux

package executor

import "errors"

// runnable: only Linux runs the embedded program (from a memfd).
func runnable([]byte) (string, error) {
	return "", errors.New("the embedded executor program runs on Linux only")
}
