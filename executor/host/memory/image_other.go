// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

//go:build !linux

package memory

import (
	"errors"
	"os"
)

var errNoMemfd = errors.New("memory images are copied here: no memfd")

// imageFile: there is no memfd to map here; images are copied.
func imageFile(int, []Part) (*os.File, error) { return nil, errNoMemfd }

func mapImage(*os.File, []byte) error { return errNoMemfd }
