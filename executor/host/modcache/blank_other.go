// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build !linux

package modcache

import (
	"errors"

	"github.com/tetratelabs/wazero"
)

// blankCache: no /proc/self/fd here to name a directory by descriptor.
func blankCache() (int, wazero.CompilationCache, string, error) {
	return -1, nil, "", errors.New("a blank runtime needs /proc/self/fd (Linux)")
}

func pointAt(int, string) error { return errors.New("unsupported") }

func closeFD(int) {}
